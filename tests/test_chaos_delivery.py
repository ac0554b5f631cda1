"""Chaos on the way out, for drills: delivery-leg rules make the worker act as if the
upstream had answered (or refused or timed out) without sending anything; the attempt is
recorded as injected and shown as such in the API, the UI and `relay queue show`."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.config import ChaosConfig, ChaosMatch, ChaosRuleConfig, Config, RouteConfig
from relay.status import Status
from relay.store import RecipientRow
from tests import mail
from tests.queueing import relay_config, upstream_at, wait_for_status
from tests.support import RunningRelay, queue_id
from tests.upstream import Upstream

TO_DEST = (RouteConfig(match="*@dest.example", action="relay", upstream="smarthost"),)
"""Mail to dest.example goes to the smarthost; the rest (bounces to the sender) is kept."""


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """The recording upstream."""
    with Upstream().start() as server:
        yield server


def drilled(url: str, upstream: Upstream, *rules: ChaosRuleConfig, **delivery: Any) -> Config:
    """Relay to dest.example through `upstream`, with chaos on and `rules`."""
    config = relay_config(url, {"smarthost": upstream_at(upstream.port)}, TO_DEST, **delivery)
    return dataclasses.replace(config, chaos=ChaosConfig(enabled=True, rule=rules))


def send(relay: RunningRelay, *rcpts: str) -> str:
    """Send one plain message from app@example.com; its id."""
    with relay.smtp() as client:
        client.ehlo()
        client.mail("app@example.com")
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250
        code, reply = client.data(mail.plain())
    assert code == 250, reply
    return queue_id(reply)


def settle(relay: RunningRelay, message_id: str, **statuses: Status) -> dict[str, RecipientRow]:
    """Wait until each recipient (by local part @dest.example) has its status."""
    wanted = {f"{local}@dest.example": status for local, status in statuses.items()}
    rows: dict[str, RecipientRow] = relay.call(
        wait_for_status(relay.relay.store, message_id, wanted)
    )
    return rows


def attempts(relay: RunningRelay, message_id: str) -> list[Any]:
    """Every recorded attempt of a message, oldest first."""
    return list(relay.call(relay.relay.store.timeline.attempts(message_id)))


DEST = ChaosMatch(destination="relay:smarthost")


@pytest.mark.parametrize(
    ("rule", "status", "reply"),
    [
        (ChaosRuleConfig(leg="delivery", match=DEST, code=451), Status.DEFERRED, (451, "4.0.0")),
        (
            ChaosRuleConfig(leg="delivery", match=DEST, code=554, enhanced="5.7.1", text="no"),
            Status.FAILED,
            (554, "5.7.1"),
        ),
        (
            ChaosRuleConfig(leg="delivery", match=DEST, action="refused"),
            Status.DEFERRED,
            (None, "4.4.1"),
        ),
        (
            ChaosRuleConfig(leg="delivery", match=DEST, action="timeout"),
            Status.DEFERRED,
            (None, "4.4.1"),
        ),
    ],
    ids=["451", "554", "refused", "timeout"],
)
def test_an_injected_failure_is_recorded_as_such_and_nothing_is_sent(
    sqlite_url: str,
    upstream: Upstream,
    rule: ChaosRuleConfig,
    status: Status,
    reply: tuple[int | None, str],
) -> None:
    """A reply, a refused or a timed-out connection: the recipient is deferred or failed
    as by a real one, its attempt is marked injected and names the rule, and the upstream
    saw not even a connection."""
    relay = RunningRelay(drilled(sqlite_url, upstream, rule)).start()
    try:
        message_id = send(relay, "bob@dest.example")
        rows = settle(relay, message_id, bob=status)
        [attempt] = attempts(relay, message_id)
    finally:
        relay.stop()
    bob = rows["bob@dest.example"]
    assert (bob.last_code, bob.last_enhanced) == reply
    assert bob.last_text is not None and bob.last_text.startswith("[chaos rule 1] ")
    assert (attempt.injected, attempt.host, attempt.code) == (True, "", reply[0])
    assert upstream.connections == [] and upstream.transactions == []


def test_a_recipient_match_drills_one_recipient_the_others_are_sent(
    sqlite_url: str, upstream: Upstream
) -> None:
    """Only the recipient the rule matches gets the injected reply; the other recipient of
    the same message is delivered for real, alone."""
    rule = ChaosRuleConfig(leg="delivery", match=ChaosMatch(recipient="drill-*@dest.example"))
    relay = RunningRelay(drilled(sqlite_url, upstream, rule)).start()
    try:
        message_id = send(relay, "drill-a@dest.example", "real@dest.example")
        settle(relay, message_id, **{"drill-a": Status.DEFERRED, "real": Status.DELIVERED})
        injected = {a.address: a.injected for a in attempts(relay, message_id)}
    finally:
        relay.stop()
    assert injected == {"drill-a@dest.example": True, "real@dest.example": False}
    assert [t.rcpt_tos for t in upstream.transactions] == [("real@dest.example",)]


def test_after_a_first_drill_the_retry_is_real(sqlite_url: str, upstream: Upstream) -> None:
    """first = 1: the first attempt is injected, the retry goes to the upstream and
    delivers; the history shows both, told apart."""
    rule = ChaosRuleConfig(leg="delivery", match=DEST, code=421, first=1)
    config = drilled(sqlite_url, upstream, rule, retry_schedule=(0.2,), retry_jitter=0.0)
    relay = RunningRelay(config).start()
    try:
        message_id = send(relay, "bob@dest.example")
        settle(relay, message_id, bob=Status.DELIVERED)
        history = [(a.injected, a.code) for a in attempts(relay, message_id)]
    finally:
        relay.stop()
    assert history == [(True, 421), (False, 250)]
    assert len(upstream.delivered) == 1


def test_a_drilled_hard_failure_bounces_to_the_sender(sqlite_url: str, upstream: Upstream) -> None:
    """An injected 5xx fails the recipient and, with dsn on, bounces to the sender as a
    real one would (the bounce is kept: its route captures)."""
    rule = ChaosRuleConfig(
        leg="delivery", match=DEST, code=550, enhanced="5.1.1", text="no such user"
    )
    relay = RunningRelay(drilled(sqlite_url, upstream, rule, dsn=True)).start()
    try:
        message_id = send(relay, "bob@dest.example")
        settle(relay, message_id, bob=Status.FAILED)
        page = relay.call(relay.relay.store.messages.page(0, 10))
    finally:
        relay.stop()
    bounce = [m for m in page.messages if m.id != message_id]
    assert len(bounce) == 1 and bounce[0].mail_from == ""
    assert upstream.connections == []


def test_injected_attempts_show_in_the_api_the_ui_the_cli_and_metrics(
    sqlite_url: str, upstream: Upstream
) -> None:
    """The deliveries API says Injected, the message page marks the attempt "injected by
    chaos", `relay queue show` names no host but "(injected by chaos)" (and "injected":
    true in --json), and /metrics counts the rule's hit."""
    rule = ChaosRuleConfig(leg="delivery", match=DEST, code=451)
    relay = RunningRelay(drilled(sqlite_url, upstream, rule)).start()
    try:
        message_id = send(relay, "bob@dest.example")
        settle(relay, message_id, bob=Status.DEFERRED)
        with httpx.Client(base_url=relay.web_url) as web:
            api = web.get(f"/api/v1/message/{message_id}/deliveries").json()
            page = web.get(f"/message/{message_id}", params={"tab": "deliveries"}).text
            metrics = web.get("/metrics").text.splitlines()
        shown = queue_show(sqlite_url, message_id)
        data = json.loads(queue_show(sqlite_url, message_id, "--json"))
    finally:
        relay.stop()
    [history] = [r["History"] for r in api["Recipients"]]
    assert [(a["Injected"], a["Code"]) for a in history] == [(True, 451)]
    assert 'class="badge injected"' in page and "injected by chaos" in page
    assert "(injected by chaos)" in shown and "[chaos rule 1]" in shown
    assert data["recipients"][0]["history"][0]["injected"] is True
    assert 'relay_chaos_hits_total{leg="delivery",rule="1",stage="delivery"} 1.0' in metrics


def queue_show(db_url: str, message_id: str, *flags: str) -> str:
    """What `relay queue show ID` prints for the database at `db_url`."""
    result = subprocess.run(
        [sys.executable, "-m", "relay", "queue", "show", message_id, "--db", db_url, *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(db_url.split(":///", 1)[1]).parent,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
