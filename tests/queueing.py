"""Helpers for queue and delivery tests: messages to store, a clock the test moves, waits."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import types
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from relay import ids, mime, routing
from relay.config import Config, DeliveryConfig, RouteConfig, StorageConfig, UpstreamConfig
from relay.delivery.mx import MxResolver
from relay.delivery.worker import Worker
from relay.status import Status
from relay.store import NewMessage, NewRecipient, RecipientRow, Store
from tests.support import make_config

NO_POLL = 3600.0
"""A fallback poll so slow that a test passing with it shows the worker was woken."""

TO_SMARTHOST = (RouteConfig(match="*", action="relay", upstream="smarthost"),)


class FakeClock:
    """A wall clock that only moves when the test says so."""

    def __init__(self, start: float | None = None) -> None:
        self.value = time.time() if start is None else start

    def now(self) -> float:
        """The current (fake) time in epoch seconds."""
        return self.value

    def advance(self, seconds: float) -> float:
        """Move the clock forward; return the new time."""
        self.value += seconds
        return self.value


def raw_message(subject: str = "Hello", body: str = "Hello there.\r\n") -> bytes:
    """A small RFC 5322 message."""
    return (
        f"From: Sender <sender@example.com>\r\n"
        f"To: someone@example.net\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{ids.new_id()}@example.com>\r\n"
        f"\r\n"
        f"{body}"
    ).encode()


def new_message(
    recipients: Iterable[str | NewRecipient],
    *,
    route: str = "relay:smarthost",
    status: Status = Status.QUEUED,
    mail_from: str = "sender@example.com",
    received_at: float | None = None,
    raw: bytes | None = None,
    rules: Sequence[RouteConfig] | None = None,
) -> NewMessage:
    """A message as SMTP would hand it to the store.

    Plain addresses get `route` and `status`, or with `rules` the route those give them.
    """
    raw = raw_message() if raw is None else raw
    rcpts: list[NewRecipient] = []
    for r in recipients:
        if isinstance(r, NewRecipient):
            rcpts.append(r)
        elif rules is not None:
            decision = routing.route(r, rules)
            relayed = decision.action == "relay"
            rcpts.append(
                NewRecipient(r, decision.label, Status.QUEUED if relayed else Status.CAPTURED)
            )
        else:
            rcpts.append(NewRecipient(r, route=route, status=status))
    return NewMessage(
        id=ids.new_id(),
        received_at=time.time() if received_at is None else received_at,
        mail_from=mail_from,
        recipients=rcpts,
        raw=raw,
        summary=mime.summary.full(raw),
        listener="test",
        peer="127.0.0.1",
    )


@asynccontextmanager
async def open_store(db_url: str) -> AsyncIterator[Store]:
    """A Store on `db_url`, opened (schema created) and closed after."""
    store = Store(StorageConfig(url=db_url))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def recipients(store: Store, message_id: str) -> dict[str, RecipientRow]:
    """A stored message's recipients by address."""
    row = await store.messages.get(message_id)
    assert row is not None
    return {r.address: r for r in row.recipients}


async def wait_until(
    store: Store,
    message_id: str,
    done: Callable[[dict[str, RecipientRow]], bool],
    within: float = 20,
) -> dict[str, RecipientRow]:
    """Wait (on the store's events, never sleeping blind) until `done(recipients)` holds."""
    async with store.events.subscribe() as events:
        async with asyncio.timeout(within):
            while True:
                rows = await recipients(store, message_id)
                if done(rows):
                    return rows
                await events.get()


async def wait_for_status(
    store: Store, message_id: str, statuses: dict[str, Status], within: float = 20
) -> dict[str, RecipientRow]:
    """Wait until each named recipient has the given status."""
    return await wait_until(
        store,
        message_id,
        lambda rows: all(rows[a].status == s for a, s in statuses.items()),
        within,
    )


async def all_recipients(
    store: Store, done: Callable[[RecipientRow], bool], within: float = 60
) -> list[RecipientRow]:
    """Every stored recipient, once `done` holds for each (woken by store events)."""
    async with store.events.subscribe() as events:
        async with asyncio.timeout(within):
            while True:
                page = await store.messages.page(0, 10_000)
                rows = [r for m in page.messages for r in m.recipients]
                if rows and all(done(r) for r in rows):
                    return rows
                await events.get()


def settled(now: float | None = None) -> Callable[[RecipientRow], bool]:
    """A recipient done with for now: delivered, failed or deferred after an attempt, or
    queued and held back (a rate limit, a pause) beyond `now` (None: the real time)."""

    def done(r: RecipientRow) -> bool:
        if r.status in (Status.DELIVERED, Status.FAILED, Status.DEFERRED):
            return True
        later = r.next_attempt_at is not None and r.next_attempt_at > (now or time.time())
        return r.status == Status.QUEUED and later

    return done


def upstream_at(port: int, **settings: Any) -> UpstreamConfig:
    """An [upstream] on 127.0.0.1:`port`, plain text unless `settings` say otherwise."""
    settings.setdefault("tls", "none")
    return UpstreamConfig(host="127.0.0.1", port=port, **settings)


def relay_config(
    db_url: str,
    upstreams: Mapping[str, UpstreamConfig],
    routes: tuple[RouteConfig, ...] = TO_SMARTHOST,
    **delivery: Any,
) -> Config:
    """A Config relaying through `upstreams` by `routes`; `delivery` overrides [delivery]."""
    delivery.setdefault("poll_interval", NO_POLL)
    return make_config(
        db_url,
        route=routes,
        upstream=types.MappingProxyType(dict(upstreams)),
        delivery=dataclasses.replace(DeliveryConfig(), **delivery),
    )


@asynccontextmanager
async def running_worker(
    config: Config,
    clock: FakeClock | None = None,
    resolver: MxResolver | None = None,
    grace: float = 1.0,
) -> AsyncIterator[tuple[Store, Worker]]:
    """A store and a started worker on `config`; stopped and closed after."""
    async with open_store(config.storage.url) as store:
        worker = Worker(config, store, clock=clock, resolver=resolver, rng=random.Random(7))
        await worker.start()
        try:
            yield store, worker
        finally:
            await worker.stop(grace)
