"""`relay serve` as a real process: start-up lines, flags over file, clean stop, bind errors."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import mail
from tests.support import free_port

START_TIMEOUT = 20.0


class Served:
    """A `relay serve` child process with its log file."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, smtp: int, web: int) -> None:
        self.proc, self.log, self.smtp_port, self.web_port = proc, log, smtp, web

    def log_text(self) -> str:
        """Everything the process logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self) -> None:
        """Wait until /healthz answers (or fail with the log)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"relay exited with {self.proc.returncode}:\n{self.log_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.web_port}/healthz").status_code == 200:
                    return
            time.sleep(0.05)
        pytest.fail(f"relay did not become ready:\n{self.log_text()}")


def start(tmp_path: Path, *extra: str, config_text: str = "") -> Served:
    """Start `python -m relay serve` with a config file and --smtp/--web/--db flags."""
    smtp, web = free_port(), free_port()
    config = tmp_path / "relay.toml"
    config.write_text(
        config_text
        or "[[listener]]\naddress = '127.0.0.1:1'\n[web]\naddress = '127.0.0.1:2'\n"
        "[server]\nshutdown_timeout = 5.0\n"
    )
    log = tmp_path / "relay.log"
    args = [
        sys.executable, "-m", "relay", "serve", "--config", str(config),
        "--smtp", f"127.0.0.1:{smtp}", "--web", f"127.0.0.1:{web}",
        "--db", f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}", *extra,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    return Served(proc, log, smtp, web)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A ready `relay serve` process, killed at the end if still running."""
    s = start(tmp_path)
    try:
        s.wait_ready()
        yield s
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def smtp_line(sock: socket.socket) -> bytes:
    """Read one full SMTP reply (all continuation lines)."""
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
        lines = data.split(b"\r\n")
        if len(lines) > 1 and all(len(line) < 4 or line[3:4] == b" " for line in lines[-2:-1]):
            return data


def test_start_up_logs_listeners_database_and_mode(served: Served, tmp_path: Path) -> None:
    """At start it logs where SMTP and web listen (flags over file), the database, the mode."""
    log = served.log_text()
    assert f"smtp listener 'smtp' (smtp) on 127.0.0.1:{served.smtp_port}:" in log
    assert f"web UI on http://127.0.0.1:{served.web_port}/" in log
    assert f"database sqlite+aiosqlite:///{tmp_path / 'relay.db'} (SQLite, WAL" in log
    assert "mode capture" in log


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_lets_the_transaction_in_flight_finish(
    served: Served, tmp_path: Path, sig: signal.Signals
) -> None:
    """On SIGTERM/SIGINT: idle clients get 421, new ones are refused, DATA in flight gets 250."""
    with (
        socket.create_connection(("127.0.0.1", served.smtp_port), timeout=10) as busy,
        socket.create_connection(("127.0.0.1", served.smtp_port), timeout=10) as idle,
    ):
        talk_through_stop(served, busy, idle, sig)
    assert served.proc.wait(10) == 0
    with sqlite3.connect(tmp_path / "relay.db") as db:
        assert db.execute("SELECT count(*) FROM message").fetchone()[0] == 1
    assert "stopped" in served.log_text()


def talk_through_stop(
    served: Served, busy: socket.socket, idle: socket.socket, sig: signal.Signals
) -> None:
    """Start a transaction on `busy`, signal the server, and finish the transaction."""
    assert smtp_line(busy).startswith(b"220") and smtp_line(idle).startswith(b"220")
    for command in (
        b"EHLO c\r\n",
        b"MAIL FROM:<s@example.com>\r\n",
        b"RCPT TO:<r@example.org>\r\n",
    ):
        busy.sendall(command)
        assert smtp_line(busy)[:1] == b"2"
    busy.sendall(b"DATA\r\n")
    assert smtp_line(busy).startswith(b"354")
    body = mail.plain()
    busy.sendall(body[:40])

    os.kill(served.proc.pid, sig)
    assert smtp_line(idle).startswith(b"421")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the listening socket closes
        try:
            socket.create_connection(("127.0.0.1", served.smtp_port), timeout=1).close()
        except OSError:
            break
        time.sleep(0.02)
    else:
        pytest.fail("still accepting connections after the stop signal")

    busy.sendall(body[40:] + b".\r\n")
    assert smtp_line(busy).startswith(b"250")


def test_port_in_use_stops_with_one_sentence(tmp_path: Path) -> None:
    """A listener that cannot bind stops start-up with one line naming it, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "relay", "serve", "--smtp", f"127.0.0.1:{port}",
             "--web", f"127.0.0.1:{free_port()}",
             "--db", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"],
            capture_output=True, text=True, timeout=START_TIMEOUT, cwd=tmp_path, check=False,
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"listener 'smtp' cannot listen on 127.0.0.1:{port}: Address already in use" in (
        proc.stderr
    )
    assert "Traceback" not in proc.stderr
