"""/metrics in the Prometheus text format (read back with prometheus_client's parser),
the delivery hooks, one registry per relay, and /readyz."""

from __future__ import annotations

import asyncio
import dataclasses
import smtplib
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from relay.config import ListenerConfig
from relay.status import Status
from tests import mail
from tests.queueing import relay_config, upstream_at
from tests.support import RunningRelay, make_config
from tests.test_capture import send
from tests.test_store import new_message
from tests.upstream import Upstream


def samples(relay: RunningRelay) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape of /metrics: (name, labels) → value."""
    with httpx.Client(base_url=relay.web_url) as web:
        response = web.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """One sample's value (0 when absent)."""
    return found.get((name, frozenset(labels.items())), 0.0)


def test_received_messages_bytes_and_refusals_by_listener(relay: RunningRelay) -> None:
    """Accepted and refused messages are counted per listener and result, with bytes."""
    send(relay, mail.plain(), ["bob@example.org"])
    send(relay, mail.plain(), ["carol@example.org"])
    with relay.smtp() as client:
        client.ehlo("client.example")
        client.mail("s@example.com")
        client.rcpt("bob@example.org")
        code, _ = client.data(b"Subject: long\r\n\r\n" + b"x" * 70000 + b"\r\n")
    assert code == 500
    found = samples(relay)
    listener = {"listener": "smtp"}
    assert value(found, "relay_messages_received_total", result="accepted", **listener) == 2
    assert value(found, "relay_messages_received_total", result="rejected", **listener) == 1
    assert value(found, "relay_received_bytes_total", **listener) == 2 * len(
        mail.wire_form(mail.plain())
    )


def test_active_sessions_are_reported_per_listener(relay: RunningRelay) -> None:
    """An open SMTP session shows in relay_smtp_sessions_active, and goes when closed."""
    client = smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=10)
    try:
        client.ehlo("client.example")
        assert value(samples(relay), "relay_smtp_sessions_active", listener="smtp") == 1
    finally:
        client.quit()
    relay.call(asyncio.wait_for(relay.relay.listeners[0].idle.wait(), 10))
    assert value(samples(relay), "relay_smtp_sessions_active", listener="smtp") == 0


def test_recipients_by_status_and_queue_figures_come_from_the_database(
    relay: RunningRelay,
) -> None:
    """Recipients per status, queue depth and the oldest deferred age are read at scrape."""
    store = relay.relay.store
    old = new_message(b"Subject: old\r\n\r\nx\r\n", ["a@example.com"], when=time.time() - 600)
    old = dataclasses.replace(
        old, recipients=[dataclasses.replace(old.recipients[0], status=Status.DEFERRED)]
    )
    relay.call(store.add_message(old))
    send(relay, mail.plain(), ["bob@example.org", "carol@example.org"])
    found = samples(relay)
    assert value(found, "relay_recipients", status="captured") == 2
    assert value(found, "relay_recipients", status="deferred") == 1
    assert value(found, "relay_recipients", status="failed") == 0
    assert value(found, "relay_queue_depth") == 1
    assert 590 < value(found, "relay_oldest_deferred_age_seconds") < 700


def _attempts_recorded(
    running: RunningRelay, count: int
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of /metrics once `count` delivery attempts are recorded (the worker
    records just after the upstream's 250), or after 10 s."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = httpx.get(f"{running.web_url}/metrics").text
        found = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        if value(found, "relay_delivery_attempt_duration_seconds_count", **DEST) == count:
            break
        time.sleep(0.05)
    return found


def test_deliveries_and_upstream_connections_from_a_real_relay(sqlite_url: str) -> None:
    """Relayed mail shows as deliveries by destination and outcome, attempt durations, and
    the pooled connection kept open for reuse."""
    with Upstream().start() as upstream:
        upstream.script("gone@ourcompany.example", "550 5.1.1 no such user")
        config = relay_config(sqlite_url, {"smarthost": upstream_at(upstream.port)})
        running = RunningRelay(config).start()
        try:
            send(running, mail.plain(), ["ann@ourcompany.example", "gone@ourcompany.example"])
            # The second message only once the first is recorded: its connection is then
            # idle in the pool, and the second reuses it instead of opening another.
            _attempts_recorded(running, 1)
            send(running, mail.plain(), ["bob@ourcompany.example"])
            upstream.wait(lambda u: len(u.delivered) == 2)
            found = _attempts_recorded(running, 2)
        finally:
            running.stop()
    assert value(found, "relay_deliveries_total", outcome="delivered", **DEST) == 2
    assert value(found, "relay_deliveries_total", outcome="failed", **DEST) == 1
    assert value(found, "relay_delivery_attempt_duration_seconds_count", **DEST) == 2
    open_now = value(found, "relay_upstream_connections_open", destination="upstream:smarthost")
    assert open_now == 1


DEST = {"destination": "relay:smarthost"}


def test_two_relays_in_one_process_keep_their_own_figures(
    relay: RunningRelay, tmp_path: object
) -> None:
    """Each relay has its own registry: mail to one is not counted by the other."""
    other = RunningRelay(make_config(f"sqlite+aiosqlite:///{tmp_path}/other.db")).start()
    try:
        send(relay, mail.plain(), ["bob@example.org"])
        mine, theirs = samples(relay), samples(other)
    finally:
        other.stop()
    name = "relay_messages_received_total"
    assert value(mine, name, listener="smtp", result="accepted") == 1
    assert value(theirs, name, listener="smtp", result="accepted") == 0


def test_readyz_is_ready_while_serving_and_not_when_a_listener_stops(
    relay: RunningRelay,
) -> None:
    """/readyz: 200 with the database reachable and listeners bound; 503 naming a stopped one."""
    with httpx.Client(base_url=relay.web_url) as web:
        ready = web.get("/readyz")
        relay.call(relay.relay.listeners[0].stop(0))
        stopped = web.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "problems": []}
    assert stopped.status_code == 503
    assert stopped.json()["problems"] == ["listener 'smtp' is not accepting connections"]


def test_listeners_named_apart_are_counted_apart(sqlite_url: str) -> None:
    """Two listeners: each one's messages count under its own name."""
    config = dataclasses.replace(
        make_config(sqlite_url),
        listener=(
            ListenerConfig(name="one", address="127.0.0.1:0"),
            ListenerConfig(name="two", address="127.0.0.1:0"),
        ),
    )
    running = RunningRelay(config).start()
    try:
        with running.smtp("two") as client:
            client.sendmail("s@example.com", ["b@example.org"], mail.plain())
        found = samples(running)
    finally:
        running.stop()
    name = "relay_messages_received_total"
    assert value(found, name, listener="two", result="accepted") == 1
    assert value(found, name, listener="one", result="accepted") == 0
