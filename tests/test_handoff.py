"""Ingest hands a lone message straight to this process's delivery worker (SQLite): its
recipients are leased in the transaction that stores it and sent from there, with no
claim; a crash in between leaves a lease that lapses and is claimed like any other."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from relay.status import Status
from relay.store import Store
from relay.store.queue import Batch, Lease
from relay.store.schema import recipient
from tests import upstream as up
from tests.queueing import (
    FakeClock,
    new_message,
    recipients,
    relay_config,
    running_worker,
    upstream_at,
    wait_for_status,
)
from tests.upstream import Upstream

A, B = "alice@example.com", "bob@example.com"


async def _lease(store: Store, message_id: str) -> tuple[str, str | None, float | None]:
    """A message's only recipient: status, lease owner, lease end, as stored."""
    query = select(recipient.c.status, recipient.c.lease_owner, recipient.c.lease_until).where(
        recipient.c.message_id == message_id
    )
    async with store.db.reader.connect() as conn:
        row = (await conn.execute(query)).one()
    return row.status, row.lease_owner, row.lease_until


async def test_a_lone_message_is_sent_with_no_claim(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message committed alone is leased to the idle worker in the transaction that
    stores it and sent from there: no claim ever picks its recipient up."""
    with Upstream().start() as upstream:
        config = relay_config(sqlite_url, {"smarthost": upstream_at(upstream.port)})
        async with running_worker(config) as (store, worker):
            await asyncio.wait_for(worker.sleeping.wait(), 10)  # its first (empty) claim
            claimed: list[str] = []
            claim = store.queue.claim_batch

            async def watched(*args: Any, **kwargs: Any) -> Batch:
                batch = await claim(*args, **kwargs)
                claimed.extend(c.address for c in batch.claims)
                return batch

            monkeypatch.setattr(store.queue, "claim_batch", watched)
            new = new_message([A])
            await store.add_message(new)
            rows = await wait_for_status(store, new.id, {A: Status.DELIVERED})
    assert claimed == []
    assert rows[A].attempts == 1
    assert [t.rcpt_tos for t in upstream.transactions] == [(A,)]


async def test_after_a_crash_mid_hand_off_the_lapsed_lease_is_claimed(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hand-off's lease commits with the message: a process that dies before it sends
    leaves the recipient leased, not lost; once the lease lapses a claim delivers it,
    with no attempt counted for the send that never happened."""
    clock = FakeClock()
    with Upstream().start() as upstream:
        config = relay_config(sqlite_url, {"smarthost": upstream_at(upstream.port)})
        async with running_worker(config, clock) as (store, worker):
            await asyncio.wait_for(worker.sleeping.wait(), 10)
            committed: list[Batch | None] = []

            def crash(lease: Lease, leased: Batch | None) -> set[str]:
                committed.append(leased)  # and the process dies before it sends
                return set()

            monkeypatch.setattr(worker, "take", crash)
            new = new_message([A], received_at=clock.now())
            await store.add_message(new)
            (leased,) = committed
            assert leased is not None and [c.address for c in leased.claims] == [A]
            status, owner, until = await _lease(store, new.id)
            assert (status, owner, until) == (
                Status.SENDING.value,
                worker.owner,
                clock.now() + config.delivery.lease,
            )
            await asyncio.wait_for(worker.sleeping.wait(), 10)  # woken: nothing to claim yet
            assert (await recipients(store, new.id))[A].status == Status.SENDING
            assert upstream.transactions == []
            clock.advance(config.delivery.lease + 1)
            worker.poke()
            rows = await wait_for_status(store, new.id, {A: Status.DELIVERED})
    assert rows[A].attempts == 1
    assert [t.rcpt_tos for t in upstream.transactions] == [(A,)]


async def test_mail_for_a_destination_with_no_lane_free_waits_for_the_claims(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hand-off takes a message only when each of its destinations has a lane free:
    one that arrives while the only connection is busy is claimed in turn, as before."""
    with Upstream().start() as upstream:
        upstream.script(A, up.SLOW)
        smarthost = upstream_at(upstream.port, max_connections=1)
        config = relay_config(sqlite_url, {"smarthost": smarthost})
        async with running_worker(config) as (store, worker):
            await asyncio.wait_for(worker.sleeping.wait(), 10)
            claimed: list[str] = []
            some = asyncio.Event()
            claim = store.queue.claim_batch

            async def watched(*args: Any, **kwargs: Any) -> Batch:
                batch = await claim(*args, **kwargs)
                claimed.extend(c.address for c in batch.claims)
                if batch.claims:
                    some.set()
                return batch

            monkeypatch.setattr(store.queue, "claim_batch", watched)
            first, second = new_message([A]), new_message([B])
            await store.add_message(first)
            await upstream.until(lambda u: u.holding == 1)
            await store.add_message(second)
            await asyncio.wait_for(some.wait(), 10)  # claimed while the first is held
            upstream.release()
            await wait_for_status(store, first.id, {A: Status.DELIVERED})
            await wait_for_status(store, second.id, {B: Status.DELIVERED})
    assert claimed == [B]
    assert [t.rcpt_tos for t in upstream.delivered] == [(A,), (B,)]
