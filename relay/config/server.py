"""[server]: settings of the whole process (its name, roles, helpers, event loop)."""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass
from typing import Literal

from relay.config.settings import setting
from relay.config.values import non_negative

Role = Literal["smtp", "web", "delivery"]
ROLES: tuple[Role, ...] = ("smtp", "web", "delivery")


def check_roles(value: tuple[str, ...]) -> str | None:
    """A check: a non-empty list of roles, each once."""
    if not value or len(set(value)) != len(value):
        return "a non-empty list of roles, each once: smtp, web, delivery"
    return None


MAX_SMTP_PROCESSES = 64


def _check_processes(value: int) -> str | None:
    if 1 <= value <= MAX_SMTP_PROCESSES:
        return None
    return f"a whole number from 1 to {MAX_SMTP_PROCESSES}"


@dataclass(frozen=True)
class ServerConfig:
    """[server]: settings of the whole process."""

    hostname: str = setting(
        "", "Name in the SMTP banner and our Received header; empty: this machine's host name."
    )
    shutdown_timeout: float = setting(
        10.0,
        "Seconds that SMTP sessions and deliveries in flight get to finish after SIGTERM/SIGINT"
        " (unfinished deliveries are queued again).",
        non_negative,
    )
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info", "Least severe log level that is printed."
    )
    event_loop: Literal["auto", "asyncio", "uvloop"] = setting(
        "auto",
        "Event loop: auto uses uvloop when it is installed (pip install 'relay[speed]'),"
        " else asyncio's own; uvloop fails at start when it is missing.",
    )
    roles: tuple[Role, ...] = setting(
        ROLES,
        "What this process runs: smtp (the listeners), web (the UI and API), delivery (the"
        " queue worker); split them over processes that share one PostgreSQL database to"
        " scale ingest and delivery apart. `relay serve --role` overrides it.",
        check_roles,
    )
    smtp_processes: int = setting(
        1,
        "Processes that accept SMTP on the listeners' ports (SO_REUSEPORT, Linux): this one"
        " and smtp_processes - 1 helpers it starts, which run only the listeners and store"
        " what they accept; the web UI and delivery stay here. More than 1 puts more cores"
        " to work on ingest; every listener then needs a fixed port.",
        _check_processes,
    )
    smtp_in_primary: bool = setting(
        True,
        "With smtp_processes above 1: whether this process accepts SMTP too (true), or"
        " leaves it all to its helpers and keeps its core for delivery and the web UI"
        " (false: for relay mode under load).",
    )

    @property
    def host_name(self) -> str:
        """The configured host name, or this machine's (without a slow FQDN lookup)."""
        return self.hostname or _machine_name()


@functools.cache
def _machine_name() -> str:
    """This machine's host name, asked once (every message's Received: header uses it)."""
    return socket.gethostname() or "localhost"
