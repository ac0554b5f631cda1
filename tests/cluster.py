"""Several `relay serve` processes on one PostgreSQL or MySQL database, for the scale-out
tests."""

from __future__ import annotations

import signal
import smtplib
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import mysql, pg
from tests.support import free_port

START_TIMEOUT = 30.0


@dataclass
class Node:
    """One `relay serve` child process with its own config file and log file."""

    name: str
    directory: Path
    db_url: str
    upstream_port: int
    roles: tuple[str, ...] = ("smtp", "web", "delivery")
    smtp_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    reuse_port: bool = False
    delivery: str = ""
    listener_extra: str = ""
    server_extra: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Where the process logs."""
        return self.directory / f"{self.name}.log"

    def config_text(self) -> str:
        """The node's relay.toml: its listener named after it, relaying all to the upstream."""
        return f"""
[server]
log_level = "info"
shutdown_timeout = 5.0
roles = {list(self.roles)!r}
{self.server_extra}
[[listener]]
name = "{self.name}"
address = "127.0.0.1:{self.smtp_port}"
reuse_port = {str(self.reuse_port).lower()}
{self.listener_extra}
[web]
address = "127.0.0.1:{self.web_port}"
[storage]
url = "{self.db_url}"
pool_size = 4
[[route]]
match = "*"
action = "relay"
upstream = "sink"
[upstream.sink]
host = "127.0.0.1"
port = {self.upstream_port}
tls = "none"
[delivery]
{self.delivery}
"""

    def start(self) -> Node:
        """Start the process (without waiting for it)."""
        config = self.directory / f"{self.name}.toml"
        config.write_text(self.config_text(), encoding="utf-8")
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "relay", "serve", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        return self

    def log(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self) -> Node:
        """Wait for the process's own last start-up line ("mode ..."; a helper's, which may
        come first, does not count); fail with the log if it exits."""
        deadline = time.monotonic() + START_TIMEOUT
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")
            lines = self.log().splitlines()
            if any(" mode relay: " in x and " smtp-helper-" not in x for x in lines):
                return self
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not start:\n{self.log()}")

    def end(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send `sig` and wait for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(30)

    def memory(self, field: str = "VmRSS") -> int:
        """A memory figure of the process from /proc (VmRSS, VmHWM), in bytes."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text(encoding="ascii")
        for line in status.splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def reset_peak(self) -> None:
        """Start measuring the peak resident size (VmHWM) from now (Linux clear_refs)."""
        assert self.proc is not None
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5", encoding="ascii")

    def delivered(self) -> int:
        """How many recipients this process logged as delivered."""
        return self.log().count(": delivered (")


def start_all(nodes: list[Node]) -> list[Node]:
    """Start every node at once (they race to create the schema), then wait for each."""
    for node in nodes:
        node.start()
    return [node.wait_ready() for node in nodes]


def stop_all(nodes: list[Node]) -> None:
    """Stop whatever still runs (SIGTERM, else SIGKILL)."""
    for node in nodes:
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGTERM)
    for node in nodes:
        if node.proc is None:
            continue
        try:
            node.proc.wait(30)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(10)


def message(n: int) -> bytes:
    """The n-th test message, small and unique."""
    return (
        f"From: load@example.com\r\nTo: r{n}@example.net\r\nSubject: load {n}\r\n"
        f"Message-ID: <load-{n}@example.com>\r\n\r\nMessage number {n}.\r\n"
    ).encode()


def send_all(
    numbers: range, ports: list[int], accepted: list[int], per_connection: int = 50
) -> None:
    """Send message n to r{n}@example.net for each n, over connections to `ports` in turn
    (a new one every `per_connection` messages). A message a process did not answer 250 to
    goes to the next port, as an MTA would retry; `accepted` gets each n answered 250."""
    turn = 0
    client: smtplib.SMTP | None = None
    sent_here = 0
    for n in numbers:
        while True:
            try:
                if client is None or sent_here >= per_connection:
                    if client is not None:
                        client.quit()
                    client = smtplib.SMTP("127.0.0.1", ports[turn % len(ports)], timeout=30)
                    sent_here = 0
                client.sendmail("load@example.com", [f"r{n}@example.net"], message(n))
                accepted.append(n)
                sent_here += 1
                break
            except (smtplib.SMTPException, OSError):
                client, turn = None, turn + 1  # that process is gone: the next one
    if client is not None:
        client.quit()


async def query(db_url: str, sql: str, *args: Any) -> list[Any]:
    """Run one statement on `db_url`'s database, PostgreSQL or MySQL ($1, $2... become
    MySQL's %s); return its rows."""
    if db_url.startswith("mysql"):
        for n in range(len(args), 0, -1):
            sql = sql.replace(f"${n}", "%s")
        return await mysql.query(sql, *args, url=db_url)
    return await pg.query(sql, *args, url=db_url)


async def recipient_states(db_url: str) -> Counter[tuple[str, int]]:
    """(status, attempts) of every recipient row, counted."""
    rows = await query(db_url, "SELECT status, attempts FROM recipient")
    return Counter((str(r[0]), int(r[1])) for r in rows)


async def leases_of(db_url: str, pid: int) -> int:
    """Recipients leased (status sending) by the process with this pid."""
    rows = await query(
        db_url,
        "SELECT count(*) FROM recipient WHERE status = 'sending' AND lease_owner LIKE $1",
        f"%:{pid}:%",
    )
    return int(rows[0][0])
