"""/metrics in the Prometheus text format (read back with prometheus_client's parser),
the delivery hooks, one registry per relay, and /readyz."""

from __future__ import annotations

import asyncio
import dataclasses
import poplib
import smtplib
import time
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.config import ListenerConfig, WebhookConfig
from relay.status import Status
from tests import mail
from tests import pop3_support as pop3
from tests.queueing import relay_config, upstream_at
from tests.receiver import Receiver
from tests.support import RunningRelay, free_port, make_config
from tests.test_capture import send
from tests.test_store import new_message
from tests.upstream import Upstream

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


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


def scraped_until(
    running: RunningRelay, done: Callable[[Samples], bool], within: float = 20
) -> Samples:
    """The samples of /metrics once `done` holds for them (what a worker records comes
    just after what the test can see), or the last ones after `within` seconds."""
    deadline = time.monotonic() + within
    found = samples(running)
    while not done(found) and time.monotonic() < deadline:
        time.sleep(0.05)
        found = samples(running)
    return found


def test_webhook_events_posts_durations_and_backlog(db_url: str) -> None:
    """Events raised per webhook and event (at ingest, and in the delivery's transaction);
    POSTs by result (a 500 then 200: retrying then delivered; past max_age: failed), their
    durations, and the backlog of a receiver that is down, read from the database."""
    refused = [f"http://127.0.0.1:{free_port()}/hook" for _ in range(2)]
    receiver = Receiver().start()
    receiver.script(500)
    with Upstream().start() as upstream:
        hooks = (
            WebhookConfig(url=f"{receiver.url}?token=secret", events=("received", "delivered")),
            WebhookConfig(url=refused[0], events=("received",), max_age="0s"),
            WebhookConfig(url=refused[1], events=("received",), max_age="1h"),
        )
        config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
        running = RunningRelay(dataclasses.replace(config, webhook=hooks)).start()
        try:
            send(running, mail.plain(), ["ann@ourcompany.example"])
            receiver.wait(lambda r: len(r.accepted()) == 2)
            ok, gone, down = (
                {"webhook": receiver.url},
                {"webhook": refused[0]},
                {"webhook": refused[1]},
            )

            def settled(found: Samples) -> bool:
                return (
                    value(found, "relay_webhook_posts_total", result="delivered", **ok) == 2
                    and value(found, "relay_webhook_posts_total", result="failed", **gone) == 1
                    and value(found, "relay_webhook_backlog", **ok) == 0
                    and value(found, "relay_webhook_posts_total", result="retrying", **down) >= 1
                )

            found = scraped_until(running, settled)
        finally:
            running.stop()
            receiver.stop()
    raised = "relay_webhook_events_raised_total"
    assert value(found, raised, event="received", **ok) == 1
    assert value(found, raised, event="delivered", **ok) == 1
    assert value(found, raised, event="received", **gone) == 1
    assert value(found, raised, event="received", **down) == 1
    assert value(found, "relay_webhook_posts_total", result="retrying", **ok) == 1
    assert value(found, "relay_webhook_posts_total", result="delivered", **ok) == 2
    assert value(found, "relay_webhook_post_duration_seconds_count", **ok) == 3
    assert value(found, "relay_webhook_posts_total", result="retrying", **gone) == 0
    assert value(found, "relay_webhook_posts_total", result="failed", **gone) == 1
    assert value(found, "relay_webhook_backlog", **ok) == 0
    assert value(found, "relay_webhook_backlog", **gone) == 0
    assert value(found, "relay_webhook_backlog", **down) == 1
    assert not any("secret" in dict(labels).get("webhook", "") for _, labels in found)


SESSIONS = "relay_pop3_sessions_active"


def _pop3_login_fails(running: RunningRelay, user: str, password: str) -> poplib.POP3:
    """A POP3 connection whose login as `user` was refused (left open)."""
    client = poplib.POP3("127.0.0.1", running.port("pop3"), timeout=10)
    client.user(user)
    with pytest.raises(poplib.error_proto):
        client.pass_(password)
    return client


def test_pop3_sessions_logins_retrievals_and_deletions(db_url: str) -> None:
    """Open POP3 sessions per listener; logins ok, failed (a wrong password) and locked (the
    shared mailbox in another session); RETR counted with its bytes (TOP not); the
    deletions a QUIT commits."""
    pop = {"listener": "pop3"}
    running = RunningRelay(pop3.pop3_config(db_url)).start()
    try:
        sizes = [len(running.raw(pop3.send(running, pop3.message(f"m{i}")))) for i in range(2)]
        wrong = _pop3_login_fails(running, "bob", "not bob's password")
        alice = pop3.plain(running, "alice")
        locked = _pop3_login_fails(running, "bob", pop3.PASSWORDS["bob"])
        during = samples(running)
        alice.top(1, 0)
        alice.retr(1)
        alice.retr(2)
        alice.dele(1)
        alice.quit()
        for client in (wrong, locked):
            client.quit()
        # The server ends a session just after its QUIT's answer.
        after = scraped_until(running, lambda f: value(f, SESSIONS, **pop) == 0)
    finally:
        running.stop()
    assert value(during, SESSIONS, **pop) == 3
    assert value(after, SESSIONS, **pop) == 0
    assert value(after, "relay_pop3_logins_total", result="ok", **pop) == 1
    assert value(after, "relay_pop3_logins_total", result="failed", **pop) == 1
    assert value(after, "relay_pop3_logins_total", result="locked", **pop) == 1
    assert value(after, "relay_pop3_retrieved_messages_total", **pop) == 2
    assert value(after, "relay_pop3_retrieved_bytes_total", **pop) == sum(sizes)
    assert value(after, "relay_pop3_deleted_messages_total", **pop) == 1
