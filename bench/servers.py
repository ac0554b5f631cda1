"""The SMTP servers under test, each run as its own process on a loopback port.

relay (capture mode, a fresh SQLite file), the aiosmtpd null handler (the Python ceiling),
Postfix's smtp-sink (the no-storage ceiling) and a throwaway Postfix. Each one is started,
awaited until it answers with its 220 banner, measured, and stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import fair, postfix

HOST = "127.0.0.1"
SMTP_SINK = "/usr/sbin/smtp-sink"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _poll(ready: Callable[[], bool], timeout: float, what: str, pause: float) -> None:
    """Call `ready` every `pause` seconds until it says True; RuntimeError naming `what`
    after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout:.0f}s")
        time.sleep(pause)


def wait_banner(port: int, proc: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    """Return once 127.0.0.1:`port` greets with 220; fail if `proc` dies first."""

    def greets() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it listened")
        try:
            with socket.create_connection((HOST, port), timeout=2) as sock:
                if sock.recv(512).startswith(b"220"):
                    sock.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        return False

    _poll(greets, timeout, f"nothing answered on {HOST}:{port}", 0.02)


def wait_http(url: str, timeout: float = 60) -> None:
    """Return once `url` answers 200."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    _poll(answers, timeout, f"{url} did not answer", 0.05)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds used by `pid` and its descendants, including reaped children."""
    ticks = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = sum(int(f) for f in fields[11:15]) / ticks
    total = 0.0
    for candidate, used in cpu.items():
        node = candidate
        while node > 1 and node != pid:
            node = parent.get(node, 0)
        if node == pid:
            total += used
    return total


class Server:
    """A server process on a loopback port; subclasses say how to start it."""

    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The process whose tree does the work (for CPU accounting)."""
        assert self.proc is not None
        return self.proc.pid

    def command(self) -> list[str]:
        """The command line that serves on `self.port`."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the process and wait for its banner."""
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL)
        wait_banner(self.port, self.proc)

    def settle(self) -> None:
        """Wait until work left over from a run is done (nothing by default)."""

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 15 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Relay(Server):
    """relay serve with the shipped relay.toml (capture mode), into a fresh SQLite file;
    `smtp_processes` None keeps the shipped setting (named relay), a number sets it
    (named relay-Np; the first process accepts SMTP too unless `smtp_in_primary` is
    false, relay-Np-h)."""

    name = "relay"

    def __init__(
        self,
        workdir: Path,
        event_loop: str = "auto",
        db_url: str | None = None,
        smtp_processes: int | None = None,
        smtp_in_primary: bool = True,
    ) -> None:
        super().__init__()
        self.workdir = workdir
        self.event_loop = event_loop
        self.smtp_processes = smtp_processes
        self.smtp_in_primary = smtp_in_primary
        if smtp_processes is not None:
            self.name = f"relay-{smtp_processes}p"  # its helpers' CPU counts as its own
            if not smtp_in_primary:
                self.name += "-h"  # only the helpers accept SMTP
        self.db_url = db_url or f"sqlite+aiosqlite:///{workdir / 'relay.db'}"
        backend = backend_label(self.db_url)
        if backend:
            self.name += f"-{backend}"  # beside SQLite's figures: relay-mysql, relay-pg
        self.web_port = free_port()

    def config_text(self) -> str:
        """The relay.toml of the run: the shipped one, with this run's addresses and
        database, and only the [server] keys this variant changes."""
        server: dict[str, object] = {}
        if self.event_loop != "auto":
            server["event_loop"] = self.event_loop
        if self.smtp_processes is not None:
            server["smtp_processes"] = self.smtp_processes
        if not self.smtp_in_primary:
            server["smtp_in_primary"] = False
        return fair.shipped_config(
            f"{HOST}:{self.port}", f"{HOST}:{self.web_port}", self.db_url, server
        )

    def settle(self) -> None:
        """Wait until relay has done what the run left (its search indexer): that work
        is billed to relay, not to whichever server runs next."""
        fair.wait_quiet(self.pid)

    def start(self) -> None:
        """Start relay and wait for its web port too, which opens after its helpers (if
        any) all accept mail."""
        super().start()
        wait_http(f"http://{HOST}:{self.web_port}/healthz")

    def command(self) -> list[str]:
        """relay serve with a config file written for the run."""
        config = self.workdir / "relay.toml"
        config.write_text(self.config_text())
        return [sys.executable, "-m", "relay", "serve", "--config", str(config)]


def backend_label(db_url: str) -> str:
    """ "mysql" or "pg" for a MySQL/MariaDB or PostgreSQL URL, "" for SQLite."""
    scheme = db_url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in ("mysql", "mariadb"):
        return "mysql"
    return "pg" if scheme in ("postgresql", "postgres") else ""


class NullSMTP(Server):
    """aiosmtpd with a handler that stores nothing."""

    name = "aiosmtpd-null"

    def __init__(self, event_loop: str = "asyncio") -> None:
        super().__init__()
        self.event_loop = event_loop

    def command(self) -> list[str]:
        """python -m bench.nullsmtp."""
        return [
            sys.executable,
            "-m",
            "bench.nullsmtp",
            f"{HOST}:{self.port}",
            "--loop",
            self.event_loop,
        ]


class Sink(Server):
    """Postfix's smtp-sink: speaks SMTP, keeps nothing, written in C."""

    name = "smtp-sink"

    def command(self) -> list[str]:
        """smtp-sink on the port, with the privileges of nobody."""
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        return [SMTP_SINK, *user, f"{HOST}:{self.port}", "512"]


class PostfixServer(Server):
    """A throwaway Postfix relaying everything to its own smtp-sink."""

    name = "postfix"

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.sink = Sink()
        self.instance = postfix.Postfix(workdir / "postfix", self.port, self.sink.port)

    @property
    def pid(self) -> int:
        """Postfix's master: smtpd, cleanup, qmgr and smtp are its children."""
        assert self.instance.master_pid is not None
        return self.instance.master_pid

    def start(self) -> None:
        """Start the sink, then Postfix."""
        self.sink.start()
        try:
            self.instance.start()
            wait_banner(self.port, None)
        except BaseException:
            self.stop()
            raise

    def settle(self) -> None:
        """Let Postfix relay what it queued, so that runs do not overlap."""
        self.instance.wait_empty()

    def stop(self) -> None:
        """Stop Postfix, then the sink."""
        try:
            self.instance.stop()
        finally:
            self.sink.stop()


def smtp_sink_available() -> bool:
    """Whether smtp-sink (Debian package postfix) is installed."""
    return os.path.exists(SMTP_SINK) or shutil.which("smtp-sink") is not None


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    """Start every server; stop them all on the way out."""
    started: list[Server] = []
    try:
        for server in servers:
            server.start()
            started.append(server)
        yield
    finally:
        for server in reversed(started):
            server.stop()
