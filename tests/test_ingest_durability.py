"""A 250 means the message is committed: checked over SMTP with many concurrent clients, and
by killing the process in the middle of a stream of messages."""

from __future__ import annotations

import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import mail
from tests.support import RunningRelay, free_port, make_config, queue_id

CLIENTS = 8


def in_database(db: Path, message_ids: list[str]) -> set[str]:
    """Which of `message_ids` a fresh connection finds in the SQLite file."""
    with sqlite3.connect(db) as conn:
        marks = ",".join("?" * len(message_ids))
        rows = conn.execute(f"SELECT id FROM message WHERE id IN ({marks})", message_ids)
        return {str(r[0]) for r in rows}


def stream(port: int, sent: list[str], stop: threading.Event, check: Callable[[str], None]) -> None:
    """Send messages on one connection until `stop` or the server goes; record each 250."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            client.ehlo("client.example")
            while not stop.is_set():
                client.mail("app@example.com")
                client.rcpt("dev@example.com")
                code, reply = client.data(mail.plain())
                assert code == 250, reply
                message_id = queue_id(reply)
                check(message_id)
                sent.append(message_id)
    except (smtplib.SMTPException, OSError):
        if not stop.is_set():
            raise


def test_every_250_names_a_committed_message(sqlite_url: str) -> None:
    """With clients sending at once, each message is in the database, for another
    connection, by the time its client reads the 250."""
    relay = RunningRelay(make_config(sqlite_url)).start()
    db = Path(sqlite_url.split("///", 1)[1])
    missing: list[str] = []
    sent: list[str] = []
    stop = threading.Event()

    def check(message_id: str) -> None:
        if not in_database(db, [message_id]):
            missing.append(message_id)
        if len(sent) >= CLIENTS * 15:
            stop.set()

    try:
        threads = [
            threading.Thread(target=stream, args=(relay.smtp_port, sent, stop, check))
            for _ in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        stop.set()
        relay.stop()
    assert len(sent) >= CLIENTS * 15
    assert missing == []


@pytest.mark.slow
def test_a_killed_process_keeps_every_message_it_answered_250(tmp_path: Path) -> None:
    """SIGKILL in the middle of a stream from several clients: every message that got its
    250 is in the database when it is opened again."""
    db = tmp_path / "relay.db"
    port = free_port()
    config = tmp_path / "relay.toml"
    config.write_text(
        f'[server]\nlog_level = "warning"\n[[listener]]\naddress = "127.0.0.1:{port}"\n'
        f'[web]\naddress = "127.0.0.1:{free_port()}"\n[storage]\nurl = "sqlite+aiosqlite:///{db}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--config", str(config)],
        stderr=subprocess.DEVNULL,
    )
    sent: list[str] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 30
        while True:  # await the listener
            assert proc.poll() is None, "relay exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "relay did not listen"
                time.sleep(0.05)
        threads = [
            threading.Thread(target=stream, args=(port, sent, stop, lambda _id: None))
            for _ in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        while len(sent) < 200:
            assert time.monotonic() < deadline + 60, f"only {len(sent)} messages accepted"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        stop.set()
        proc.wait(10)
        answered = list(sent)
        for thread in threads:
            thread.join(30)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(answered) >= 200
    assert in_database(db, answered) == set(answered)
