"""[[route]], [upstream.NAME], [mx] and [delivery]: where relayed mail goes, how
connections to it are made, and how the queue worker retries."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from relay.config.limits import DestinationLimits
from relay.config.settings import setting
from relay.config.values import check_pattern, check_schedule, fraction, positive


@dataclass(frozen=True)
class RouteConfig:
    """[[route]]: what happens to recipients that match; the first matching rule wins."""

    match: str = setting(
        "*",
        "Recipient domain (example.com, *.example.com, *) or full-address pattern"
        " (*@example.com, ops-*@example.com); case-insensitive.",
        check_pattern,
    )
    action: Literal["relay", "capture", "reject"] = setting(
        "capture", "relay: deliver upstream; capture: keep; reject: 550 5.7.1 at RCPT."
    )
    upstream: str = setting(
        "", 'With action = relay: the name of an [upstream.NAME] table, or "mx".'
    )


TlsMode = Literal["starttls", "implicit", "opportunistic", "none"]
TlsSetting = Literal["auto", "starttls", "implicit", "opportunistic", "none"]
_TLS_HELP = (
    "auto: opportunistic without a username, starttls with one (a password never crosses"
    " in clear); starttls: require STARTTLS; implicit: TLS from the first byte (port 465);"
    " opportunistic: STARTTLS when offered, plain text otherwise; none: never TLS."
)


def tls_mode(tls: TlsSetting, username: str) -> TlsMode:
    """The TLS a connection uses: "auto" is opportunistic, or starttls when it logs in."""
    if tls != "auto":
        return tls
    return "starttls" if username else "opportunistic"


@dataclass(frozen=True)
class ConnectionSettings:
    """How connections to one destination are made and pooled (shared by upstreams and MX)."""

    tls: Literal["auto", "starttls", "implicit", "opportunistic", "none"] = setting(
        "auto", _TLS_HELP
    )
    verify: bool = setting(
        True, "Check the server's certificate and host name (TLS); false accepts any."
    )
    ca_file: str = setting(
        "", "PEM file of CA certificates to verify the server with; empty: the system's."
    )
    max_connections: int = setting(
        4, "Most connections open at once to this destination.", positive
    )
    max_messages_per_connection: int = setting(
        100,
        "Messages sent over one connection before it is closed and a new one opened.",
        positive,
    )
    max_recipients: int = setting(
        100, "Most recipients in one SMTP transaction; more are sent in further ones.", positive
    )
    idle_timeout: float = setting(
        30.0, "Seconds an unused connection stays open for reuse before it is closed.", positive
    )
    connect_timeout: float = setting(
        30.0,
        "Seconds to connect and get the greeting (and finish TLS) before giving up.",
        positive,
    )
    command_timeout: float = setting(
        300.0, "Seconds to wait for the reply to one SMTP command, DATA included.", positive
    )


@dataclass(frozen=True)
class UpstreamConfig(ConnectionSettings, DestinationLimits):
    """[upstream.NAME]: an SMTP server that relayed mail is handed to."""

    host: str = setting("127.0.0.1", "Host name or address of the upstream.")
    port: int = setting(25, "Port of the upstream.", positive)
    username: str = setting("", "User name for SMTP AUTH; empty: no AUTH.")
    password_env: str = setting(
        "", "Name of the environment variable that holds the AUTH password (read at start)."
    )
    password: str = field(default="", repr=False, metadata={"internal": True})


@dataclass(frozen=True)
class MxConfig(ConnectionSettings, DestinationLimits):
    """[mx]: direct delivery to the recipient domain's MX hosts (routes with upstream = "mx");
    its limits apply to each domain on its own, `[mx.domains."DOMAIN"]` sets a domain's."""

    port: int = setting(25, "Port of every MX host.", positive)
    tls: Literal["auto", "starttls", "implicit", "opportunistic", "none"] = setting(
        "opportunistic", _TLS_HELP
    )
    verify: bool = setting(
        False,
        "Check MX certificates and host names; off by default as for opportunistic TLS"
        " (RFC 7435): encrypted beats plain text even unauthenticated.",
    )
    domains: Mapping[str, DestinationLimits] = field(
        default_factory=lambda: types.MappingProxyType({})
    )

    def limits_for(self, domain: str) -> DestinationLimits:
        """The rate limit and breaker of MX delivery to `domain` (its own table, else [mx])."""
        return self.domains.get(domain, self)


@dataclass(frozen=True)
class DeliveryConfig:
    """[delivery]: the queue worker, retries and bounces."""

    retry_schedule: tuple[float, ...] = setting(
        (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0),
        "Seconds to wait after the 1st, 2nd, ... failed attempt; the last value repeats.",
        check_schedule,
    )
    retry_jitter: float = setting(
        0.1,
        "Each wait is moved at random by up to this fraction, so that retries spread out.",
        fraction,
    )
    max_age: float = setting(
        432000.0,
        "Seconds after receipt when a message that still cannot be delivered fails"
        " (5 days, RFC 5321 4.5.4.1); the last reply is kept.",
        positive,
    )
    lease: float = setting(
        300.0,
        "Seconds a worker holds the recipients it is sending, renewed while it runs; a lease"
        " that lapses (a killed process) is taken up again.",
        positive,
    )
    poll_interval: float = setting(
        15.0,
        "Fallback: most seconds between looks at the queue when nothing wakes the worker.",
        positive,
    )
    batch_size: int = setting(100, "Recipients claimed from the queue at a time.", positive)
    max_in_flight: int = setting(
        1000,
        "Most recipients claimed and not finished at once, over all destinations (each"
        " destination's max_connections caps its own connections).",
        positive,
    )
    dsn: bool = setting(
        False,
        "Send a delivery status notification (RFC 3464) to the envelope sender when a"
        " recipient fails for good; never to a null sender.",
    )
