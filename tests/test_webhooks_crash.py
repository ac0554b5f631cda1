"""Webhooks survive SIGKILL: `relay serve` killed while events are pending (the receiver
down, or half-way through sending them), then restarted: every event arrives, each
message's in order."""

from __future__ import annotations

import signal
import smtplib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.receiver import Receiver
from tests.serving import Ports, Serving, kill_if_running, write_config
from tests.upstream import Upstream

pytestmark = pytest.mark.slow

MESSAGES = 150

CONFIG = """
[[route]]
match = "*"
action = "relay"
upstream = "smarthost"
[upstream.smarthost]
host = "127.0.0.1"
port = {port}
tls = "none"
[delivery]
poll_interval = 1.0
[[webhook]]
url = "{url}"
events = ["received", "delivered"]
timeout = 2.0
"""


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A recording SMTP upstream."""
    with Upstream().start() as server:
        yield server


def _pending(db: Path) -> int:
    """How many events wait in the outbox of the SQLite file `db`."""
    with sqlite3.connect(db) as conn:
        found = conn.execute("SELECT count(*) FROM webhook_event WHERE state = 'pending'")
        return int(found.fetchone()[0])


def _until(check: Callable[[], bool], within: float) -> None:
    """Wait until `check()` holds (a file another process writes: polled)."""
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def _send(port: int, count: int) -> None:
    """Send `count` messages, one recipient each, on one SMTP connection."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for i in range(count):
            body = f"From: a@example.com\r\nTo: b@example.org\r\nSubject: n{i}\r\n\r\nhi\r\n"
            smtp.sendmail("a@example.com", [f"u{i}@example.org"], body)


@pytest.mark.parametrize("moment", ["receiver down", "half sent"])
def test_sigkill_loses_no_pending_event(tmp_path: Path, upstream: Upstream, moment: str) -> None:
    """Killed with events pending, relay sends every one after its restart (at least
    once), and a message's `received` comes before its `delivered`."""
    receiver = Receiver()
    if moment == "half sent":
        receiver.start()
    ports = Ports.free()
    db = tmp_path / "relay.db"
    config = write_config(
        tmp_path / "relay.toml", ports, db, CONFIG.format(port=upstream.port, url=receiver.url)
    )
    first = Serving(config).ready()
    try:
        _send(ports.smtp, MESSAGES)
        upstream.wait(lambda u: len(u.delivered) >= MESSAGES, within=60)
        if moment == "half sent":
            receiver.wait(lambda r: len(r.accepted()) >= MESSAGES // 2, within=60)
        else:  # every delivery recorded, and every event waiting
            _until(lambda: _pending(db) == 2 * MESSAGES, within=60)
        first.kill()
    finally:
        kill_if_running(first)
    if moment == "receiver down":
        assert _pending(db) == 2 * MESSAGES
        receiver.start()
    second = Serving(config).ready()
    try:
        receiver.wait(lambda r: len({e["id"] for e in r.events()}) >= 2 * MESSAGES, within=120)
    finally:
        assert second.end(signal.SIGTERM) == 0
        receiver.stop()
    events = receiver.events()
    assert len({e["id"] for e in events}) == 2 * MESSAGES
    order: dict[str, list[str]] = {}
    for event in events:
        seen = order.setdefault(event["message"]["id"], [])
        if event["event"] not in seen:
            seen.append(event["event"])
    assert len(order) == MESSAGES
    assert {tuple(names) for names in order.values()} == {("received", "delivered")}
