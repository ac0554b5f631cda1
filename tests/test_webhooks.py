"""Webhooks against a real HTTP receiver: payloads, signatures, retries after 500, a hang
or a refused connection, order per message, the give-up age, match, held and released."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from relay import routing
from relay.config import Config, WebhookConfig
from relay.events import signing
from relay.events.worker import EventSender
from relay.status import Status
from relay.store import EventRow, Store
from tests import upstream as up
from tests.queueing import (
    TO_SMARTHOST,
    new_message,
    open_store,
    raw_message,
    relay_config,
    running_worker,
    upstream_at,
    wait_for_status,
)
from tests.receiver import HANG, Receiver
from tests.upstream import Upstream

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-for-tests"
A, B = "alice@example.com", "bob@example.com"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free port, answering 200."""
    found = Receiver().start()
    yield found
    found.stop()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A recording SMTP upstream."""
    with Upstream().start() as server:
        yield server


def hook(url: str, **settings: object) -> WebhookConfig:
    """A [[webhook]] to `url`, signed with SECRET, quick to time out."""
    settings.setdefault("timeout", 2.0)
    return WebhookConfig(url=url, secret=SECRET, **settings)  # type: ignore[arg-type]


def with_hooks(db_url: str, port: int, *hooks: WebhookConfig) -> Config:
    """A config relaying to the upstream on `port`, retrying at once, with `hooks`."""
    config = relay_config(db_url, {"smarthost": upstream_at(port)}, retry_schedule=(0.2,))
    return dataclasses.replace(config, webhook=hooks)


async def done_events(store: Store, count: int, within: float = 20) -> list[EventRow]:
    """The stored events, once there are `count` and none is pending any more."""
    deadline = time.monotonic() + within
    while True:
        rows = await store.webhooks.recent()
        if len(rows) == count and all(r.state != "pending" for r in rows):
            return rows
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)


@asynccontextmanager
async def delivering(config: Config) -> AsyncIterator[tuple[Store, EventSender]]:
    """A store with a delivery worker and the webhooks' sender running on `config`."""
    async with running_worker(config) as (store, _worker):
        store.configure(config.webhook, config.suppression)
        sender = EventSender(config.webhook, store)
        await sender.start()
        try:
            yield store, sender
        finally:
            await sender.stop()


async def test_delivery_events_carry_message_recipient_and_attempt(
    db_url: str, receiver: Receiver, upstream: Upstream
) -> None:
    """A relayed recipient raises `delivered` with the message, the recipient, its
    destination and the attempt (host, code, enhanced code, text, duration)."""
    config = with_hooks(db_url, upstream.port, hook(receiver.url, events=("delivered",)))
    async with delivering(config) as (store, _sender):
        new = new_message([A], raw=raw_message("Invoice 7"))
        await store.add_message(new)
        await receiver.until(lambda r: len(r.events("delivered")) == 1)
    [body] = receiver.events()
    assert body["event"] == "delivered" and len(body["id"]) == 26 and body["time"].endswith("Z")
    assert body["message"]["id"] == new.id
    assert body["message"]["subject"] == "Invoice 7"
    assert body["message"]["sender"] == new.mail_from
    assert body["message"]["message_id"] == new.summary.message_id
    assert body["recipient"] == {"address": A, "status": "delivered"}
    assert body["destination"] == "relay:smarthost"
    attempt = body["attempt"]
    assert attempt["host"].startswith("127.0.0.1") and attempt["code"] == 250
    assert attempt["enhanced"] == "2.0.0" and attempt["duration"] >= 0


async def test_the_signature_verifies_with_the_secret_and_not_without(
    sqlite_url: str, receiver: Receiver, upstream: Upstream
) -> None:
    """X-Relay-Signature is v1= HMAC-SHA256 of "timestamp.body" under the secret; the
    event ID header is the body's ID."""
    config = with_hooks(sqlite_url, upstream.port, hook(receiver.url, events=("delivered",)))
    async with delivering(config) as (store, _sender):
        await store.add_message(new_message([A]))
        await receiver.until(lambda r: len(r.accepted()) == 1)
    [post] = receiver.accepted()
    stamp = post.headers["x-relay-timestamp"]
    assert abs(int(stamp) - time.time()) < 60
    assert post.headers["x-relay-event-id"] == post.json["id"]
    assert post.headers["content-type"] == "application/json"
    assert signing.verify(SECRET, stamp, post.body, post.headers["x-relay-signature"])
    assert not signing.verify("other", stamp, post.body, post.headers["x-relay-signature"])
    assert not signing.verify(SECRET, stamp, post.body + b" ", post.headers["x-relay-signature"])
    verify = docs_verify()  # the ten lines docs/webhooks.md shows receivers
    named = {"X-Relay-Timestamp": stamp, "X-Relay-Signature": post.headers["x-relay-signature"]}
    assert verify(SECRET, named, post.body)
    assert not verify("other", named, post.body)
    assert not verify(SECRET, {**named, "X-Relay-Timestamp": str(int(stamp) - 1)}, post.body)


def docs_verify() -> Callable[..., bool]:
    """The `verify` function of docs/webhooks.md, run as the docs print it."""
    text = (ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8")
    [code] = [block for block in text.split("```python\n")[1:] if "def verify" in block]
    code = code.split("```")[0]
    assert len(code.strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)
    found: Callable[..., bool] = namespace["verify"]
    return found


@pytest.mark.parametrize("trouble", ["500", "hang", "refused"])
async def test_an_event_is_sent_again_until_the_receiver_takes_it(
    sqlite_url: str, receiver: Receiver, upstream: Upstream, trouble: str
) -> None:
    """After a 500, a timeout or a refused connection the event is retried and arrives;
    each failed POST is recorded with its error."""
    config = with_hooks(
        sqlite_url, upstream.port, hook(receiver.url, events=("delivered",), timeout=0.5)
    )
    if trouble == "500":
        receiver.script(500, 500)
    elif trouble == "hang":
        receiver.script(HANG)
    else:
        receiver.stop()
    async with delivering(config) as (store, _sender):
        new = new_message([A])
        await store.add_message(new)
        await wait_for_status(store, new.id, {A: Status.DELIVERED})
        if trouble == "refused":
            await asyncio.sleep(1.5)  # a try or two against the closed port
            receiver.start()
        await receiver.until(lambda r: len(r.accepted()) == 1, within=30)
        [event] = await done_events(store, 1)
        found = await store.webhooks.event(event.event_id)
    assert found is not None
    row, attempts = found
    assert row.state == "sent" and row.last_error == ""
    errors = [a.error for a in attempts[:-1]]
    assert errors and all(errors) and attempts[-1].error == ""
    expected = {"500": "HTTP 500", "hang": "no answer within", "refused": "cannot connect"}
    assert errors[0].startswith(expected[trouble])


async def test_events_of_one_message_arrive_in_order_whatever_the_retries(
    db_url: str, receiver: Receiver, upstream: Upstream
) -> None:
    """received, deferred, then delivered: the later events wait while the first is
    refused, so the receiver gets them in the order they happened."""
    config = with_hooks(db_url, upstream.port, hook(receiver.url))
    upstream.script(A, up.RCPT_451)
    receiver.script(500, 500, 500)
    async with delivering(config) as (store, _sender):
        new = new_message([A])
        await store.add_message(new)
        await receiver.until(lambda r: len(r.events()) == 3, within=30)
    assert [e["event"] for e in receiver.events()] == ["received", "deferred", "delivered"]
    ids = [e["id"] for e in receiver.events()]
    assert ids == sorted(ids)


async def test_an_event_is_given_up_after_max_age(sqlite_url: str, upstream: Upstream) -> None:
    """With the receiver down, an event is tried until it is `max_age` old, then kept
    as expired with its last error."""
    down = Receiver()  # never started: every connection is refused
    config = with_hooks(
        sqlite_url, upstream.port, hook(down.url, events=("delivered",), max_age="2s")
    )
    async with delivering(config) as (store, _sender):
        await store.add_message(new_message([A]))
        [event] = await done_events(store, 1)
        stats = await store.webhooks.stats()
    assert (
        event.state == "expired"
        and event.attempts >= 2
        and event.last_error.startswith("cannot connect")
    )
    assert event.done_at is not None and event.done_at - event.created_at >= 2.0
    assert stats[down.url].expired == 1 and stats[down.url].last_error.startswith("cannot")


async def test_match_and_events_select_what_a_webhook_gets(
    db_url: str, receiver: Receiver, upstream: Upstream
) -> None:
    """A webhook gets only the events it names, for mail its search matches."""
    config = with_hooks(
        db_url,
        upstream.port,
        hook(receiver.url, events=("received", "delivered"), match="subject:invoice"),
    )
    async with delivering(config) as (store, _sender):
        plain, invoice = (
            new_message([A], raw=raw_message("Hello")),
            new_message([B], raw=raw_message("Invoice")),
        )
        await store.add_message(plain)
        await store.add_message(invoice)
        await receiver.until(lambda r: len(r.events()) == 2)
        await wait_for_status(store, plain.id, {A: Status.DELIVERED})
        await asyncio.sleep(0.3)  # time enough for a wrong event to arrive
    assert {(e["event"], e["message"]["id"]) for e in receiver.events()} == {
        ("received", invoice.id),
        ("delivered", invoice.id),
    }


async def test_hold_and_release_raise_their_events(db_url: str, receiver: Receiver) -> None:
    """An operator's hold and release each raise an event per recipient changed, in the
    same transaction as the change."""
    config = dataclasses.replace(
        with_hooks(db_url, 9, hook(receiver.url, events=("held", "released"))),
    )
    async with open_store(db_url) as store:
        store.configure(config.webhook, config.suppression)
        new = new_message([A, B])
        await store.add_message(new)
        assert await store.actions.act("hold", new.id, time.time()) == 2
        assert await store.actions.act("release", new.id, time.time(), None) == 2
        rows = await store.webhooks.recent(message_id=new.id)
    assert sorted((r.event, r.state) for r in rows) == [
        ("held", "pending"),
        ("held", "pending"),
        ("released", "pending"),
        ("released", "pending"),
    ]


async def test_received_carries_mailpit_summary_fields(sqlite_url: str, receiver: Receiver) -> None:
    """`received` has relay's fields and, at the top, Mailpit's message summary (ID,
    MessageID, From, To, Subject, Created, Size, Snippet...), as Mailpit's webhook sends."""
    config = dataclasses.replace(
        with_hooks(sqlite_url, 9, hook(receiver.url, events=("received",))), route=()
    )
    async with open_store(sqlite_url) as store:
        store.configure(config.webhook, config.suppression)
        sender = EventSender(config.webhook, store)
        await sender.start()
        try:
            new = new_message(
                [A], raw=raw_message("Welcome"), status=Status.CAPTURED, route="capture"
            )
            await store.add_message(new)
            await receiver.until(lambda r: len(r.accepted()) == 1)
        finally:
            await sender.stop()
    [body] = receiver.events()
    assert body["event"] == "received"
    assert body["recipients"] == [{"address": A, "status": "captured", "destination": None}]
    assert body["ID"] == new.id and body["MessageID"] == new.summary.message_id
    assert body["Subject"] == "Welcome" and body["Read"] is False
    assert body["From"] == {"Name": "Sender", "Address": "sender@example.com"}
    assert body["To"] == [{"Name": "", "Address": "someone@example.net"}]
    assert body["Bcc"] == [{"Name": "", "Address": A}]
    assert body["Size"] == len(new.raw) and body["Created"].endswith("Z")
    assert {"Cc", "ReplyTo", "Tags", "Attachments", "Snippet", "Username"} <= body.keys()


async def test_a_bounce_raises_bounced_after_failed(
    db_url: str, receiver: Receiver, upstream: Upstream
) -> None:
    """A 5xx with bounces on (`dsn`) raises `failed` then `bounced` for the recipient."""
    config = with_hooks(db_url, upstream.port, hook(receiver.url, events=("failed", "bounced")))
    config = dataclasses.replace(config, delivery=dataclasses.replace(config.delivery, dsn=True))
    upstream.script(A, up.RCPT_554)
    async with delivering(config) as (store, _sender):
        new = new_message([A])
        await store.add_message(new)
        await receiver.until(lambda r: len(r.events()) == 2)
    failed, bounced = receiver.events()
    assert (failed["event"], bounced["event"]) == ("failed", "bounced")
    assert failed["message"]["id"] == bounced["message"]["id"] == new.id
    assert bounced["attempt"]["code"] == 554 and bounced["recipient"]["status"] == "failed"


async def test_releasing_captured_mail_raises_released(db_url: str) -> None:
    """Captured mail released to an address raises `released` for that recipient."""
    hooks = (hook("http://127.0.0.1:9/hook", events=("released",)),)
    async with open_store(db_url) as store:
        store.configure(hooks, store.suppressions.settings)
        new = new_message([A], status=Status.CAPTURED, route="capture")
        await store.add_message(new)
        routed = routing.route_all([A, B], TO_SMARTHOST)
        released = await store.actions.release_captured(new.id, routed, time.time())
        rows = await store.webhooks.recent(message_id=new.id)
    assert released is not None and set(released.queued) == {A, B}
    bodies = sorted(json.loads(r.body)["recipient"]["address"] for r in rows)
    assert [r.event for r in rows] == ["released", "released"] and bodies == [A, B]


async def test_a_hung_receiver_does_not_delay_another(
    sqlite_url: str, receiver: Receiver, upstream: Upstream
) -> None:
    """While one webhook's receiver hangs for its whole timeout, another webhook's
    receiver still gets the events raised meanwhile at once."""
    hung = Receiver().start()
    hung.default = HANG
    try:
        config = with_hooks(
            sqlite_url,
            upstream.port,
            hook(hung.url, events=("received",), timeout=10.0),
            hook(receiver.url, events=("received",)),
        )
        async with delivering(config) as (store, _sender):
            await store.add_message(new_message([A]))
            await hung.until(lambda r: len(r.received) == 1)
            started = time.monotonic()
            await store.add_message(new_message([B]))  # raised while the first one hangs
            await receiver.until(lambda r: len(r.accepted()) == 2)
            assert time.monotonic() - started < 5.0
    finally:
        hung.stop()


async def test_two_processes_share_the_outbox_without_sending_twice(
    pg_url: str, receiver: Receiver
) -> None:
    """Two senders on one PostgreSQL database (two relay processes) split the events:
    each arrives once, and each message's in order (received, held, released)."""
    hooks = (hook(receiver.url, events=("received", "held", "released")),)
    async with open_store(pg_url) as first, open_store(pg_url) as second:
        for store in (first, second):
            store.configure(hooks, store.suppressions.settings)
        senders = [EventSender(hooks, first), EventSender(hooks, second)]
        for sender in senders:
            await sender.start()
        try:
            news = [new_message([A]) for _ in range(20)]  # queued; no worker sends them
            for new in news:
                await first.add_message(new)
                await second.actions.act("hold", new.id, time.time())
                await first.actions.act("release", new.id, time.time())
            await receiver.until(lambda r: len(r.events()) >= 60)
            await asyncio.sleep(0.5)  # time for a repeat to show up
        finally:
            for sender in senders:
                await sender.stop()
    events = receiver.events()
    assert len(events) == len({e["id"] for e in events}) == 60
    assert sum(s.sent for s in senders) == 60
    for new in news:
        names = [e["event"] for e in events if e["message"]["id"] == new.id]
        assert names == ["received", "held", "released"]
