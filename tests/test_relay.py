"""End to end: SMTP in, routed at RCPT, relayed to a real upstream; a killed process resumes."""

from __future__ import annotations

import logging
import signal
import smtplib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.config import RouteConfig
from relay.status import Status
from relay.store import RecipientRow
from tests import mail
from tests import upstream as up
from tests.queueing import relay_config, upstream_at, wait_for_status
from tests.serving import Serving
from tests.support import RunningRelay, free_port
from tests.upstream import Upstream

STAGING = (
    RouteConfig(match="*@ourcompany.example", action="relay", upstream="smarthost"),
    RouteConfig(match="blocked.example", action="reject"),
)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A running scriptable upstream on 127.0.0.1."""
    with Upstream().start() as server:
        yield server


def test_routes_decide_each_recipient_at_rcpt(
    sqlite_url: str, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    """reject answers 550 5.7.1 at RCPT; relay is queued and delivered; the rest is kept."""
    config = relay_config(sqlite_url, {"smarthost": upstream_at(upstream.port)}, STAGING)
    caplog.set_level(logging.INFO, logger="relay.app")
    relay = RunningRelay(config).start()
    try:
        with relay.smtp() as client:
            client.ehlo("client.example")
            client.mail("app@example.com")
            code, reply = client.rcpt("x@blocked.example")
            assert (code, reply[:5]) == (550, b"5.7.1")
            assert client.rcpt("dev@ourcompany.example")[0] == 250
            assert client.rcpt("someone@gmail.example")[0] == 250
            code, reply = client.data(mail.plain())
            assert code == 250, reply
        message_id = reply.decode().rsplit(" ", 1)[-1]
        rows: dict[str, RecipientRow] = relay.call(
            wait_for_status(
                relay.relay.store,
                message_id,
                {"dev@ourcompany.example": Status.DELIVERED},
            )
        )
    finally:
        relay.stop()
    assert set(rows) == {"dev@ourcompany.example", "someone@gmail.example"}
    assert rows["dev@ourcompany.example"].route == "relay:smarthost"
    assert (rows["someone@gmail.example"].route, rows["someone@gmail.example"].status) == (
        "capture",
        Status.CAPTURED,
    )
    assert [t.rcpt_tos for t in upstream.delivered] == [("dev@ourcompany.example",)]
    assert upstream.delivered[0].data.endswith(mail.wire_form(mail.plain()))
    assert (
        "mode mixed: *@ourcompany.example: relay via smarthost; blocked.example: reject;"
        " everything else: capture"
    ) in caplog.messages


def _status(db: Path, address: str) -> tuple[str, int]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT status, attempts FROM recipient WHERE address = ?", (address,)
        ).fetchone()
    return str(row[0]), int(row[1])


@pytest.mark.slow
def test_a_process_killed_mid_delivery_delivers_after_restart(
    tmp_path: Path, upstream: Upstream
) -> None:
    """SIGKILL while the upstream holds DATA: the lease is taken back on restart, mail goes."""
    rcpt = "dev@ourcompany.example"
    upstream.script(rcpt, up.SLOW)  # the first attempt never gets its reply
    db = tmp_path / "relay.db"
    smtp_port = free_port()
    config = tmp_path / "relay.toml"
    config.write_text(
        f"""
[[listener]]
address = "127.0.0.1:{smtp_port}"
[web]
address = "127.0.0.1:{free_port()}"
[storage]
url = "sqlite+aiosqlite:///{db}"
[[route]]
match = "*"
action = "relay"
upstream = "smarthost"
[upstream.smarthost]
host = "127.0.0.1"
port = {upstream.port}
tls = "none"
"""
    )
    first = Serving(config)
    try:
        first.expect("mode relay: everything: relay via smarthost")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            client.sendmail("app@example.com", [rcpt], mail.plain())
        upstream.wait(lambda u: u.holding == 1)
        assert _status(db, rcpt) == (Status.SENDING, 0)
    finally:
        first.end(signal.SIGKILL)
    assert upstream.delivered_to(rcpt) == 0

    second = Serving(config)
    try:
        second.expect("left unfinished by the last run are queued again")
        upstream.wait(lambda u: u.delivered_to(rcpt) == 1)
        second.expect(f"to=<{rcpt}> via 127.0.0.1:{upstream.port}: delivered")
        assert _status(db, rcpt) == (Status.DELIVERED, 1)
    finally:
        assert second.end(signal.SIGTERM) == 0
