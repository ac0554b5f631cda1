"""The worker against a real upstream: per-recipient replies, retries, crash-safe leases."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from relay.delivery import retry
from relay.status import Status
from relay.store import Store
from relay.store.queue import Batch
from tests import upstream as up
from tests.queueing import (
    FakeClock,
    new_message,
    recipients,
    relay_config,
    running_worker,
    upstream_at,
    wait_for_status,
    wait_until,
)
from tests.upstream import Upstream

A, B, C = "alice@example.com", "bob@example.com", "carol@example.com"


@pytest.fixture(params=["pipelining", "no-pipelining"])
def upstream(request: pytest.FixtureRequest) -> Iterator[Upstream]:
    """A running scriptable upstream on 127.0.0.1, offering PIPELINING or not (the
    worker then sends its commands in one group, or one at a time)."""
    with Upstream(pipelining=request.param == "pipelining").start() as server:
        yield server


async def test_partial_failure_records_each_recipients_reply(
    db_url: str, upstream: Upstream
) -> None:
    """One recipient 550, one 250: one failed, one delivered, both attempts recorded."""
    upstream.script(B, up.RCPT_550)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config) as (store, _):
        new = new_message([A, B])
        await store.add_message(new)
        rows = await wait_for_status(store, new.id, {A: Status.DELIVERED, B: Status.FAILED})
        attempts = await store.timeline.attempts(new.id)
    assert [(t.rcpt_tos, t.reply) for t in upstream.transactions] == [((A,), up.DATA_OK)]
    assert upstream.transactions[0].data == new.raw
    assert (rows[B].last_code, rows[B].last_enhanced, rows[B].last_text) == (
        550,
        "5.1.1",
        "No such user here",
    )
    assert [(a.address, a.code, a.enhanced) for a in attempts] == [
        (A, 250, "2.0.0"),
        (B, 550, "5.1.1"),
    ]
    assert all(a.host == f"127.0.0.1:{upstream.port}" for a in attempts)


async def test_one_transaction_per_message_per_destination(db_url: str) -> None:
    """All recipients of a message for one upstream share one transaction; others get theirs."""
    from relay.config import RouteConfig

    routes = (
        RouteConfig(match="other.example", action="relay", upstream="other"),
        RouteConfig(match="*", action="relay", upstream="smarthost"),
    )
    with Upstream().start() as main, Upstream().start() as other:
        config = relay_config(
            db_url,
            {"smarthost": upstream_at(main.port), "other": upstream_at(other.port)},
            routes,
        )
        async with running_worker(config) as (store, _):
            new = new_message([A, "dave@other.example", B, C], rules=routes)
            await store.add_message(new)
            await wait_for_status(store, new.id, {a: Status.DELIVERED for a in (A, B, C)})
            await wait_for_status(store, new.id, {"dave@other.example": Status.DELIVERED})
    assert [t.rcpt_tos for t in main.transactions] == [(A, B, C)]
    assert [t.rcpt_tos for t in other.transactions] == [("dave@other.example",)]


async def test_upstream_down_then_up_defers_then_delivers(db_url: str) -> None:
    """A refused connection defers with a backoff; once the upstream is back it delivers."""
    clock = FakeClock()
    server = Upstream().start()
    server.stop()  # down: its port refuses connections
    config = relay_config(db_url, {"smarthost": upstream_at(server.port)})
    try:
        async with running_worker(config, clock) as (store, worker):
            new = new_message([A], received_at=clock.now())
            await store.add_message(new)
            rows = await wait_for_status(store, new.id, {A: Status.DEFERRED})
            assert rows[A].last_code is None
            assert rows[A].last_enhanced == retry.NO_ANSWER
            assert "cannot connect" in (rows[A].last_text or "")
            assert rows[A].next_attempt_at is not None
            server.start()
            clock.value = rows[A].next_attempt_at
            worker.poke()
            rows = await wait_for_status(store, new.id, {A: Status.DELIVERED})
            assert rows[A].attempts == 2
    finally:
        server.stop()
    assert server.delivered_to(A) == 1


@pytest.mark.parametrize("reply", [up.RCPT_550, up.RCPT_554, up.data(up.RCPT_554)])
async def test_permanent_failure_is_never_retried(
    db_url: str, upstream: Upstream, reply: str
) -> None:
    """A 5xx fails at once; days later the recipient is still failed and not tried again."""
    clock = FakeClock()
    upstream.script(A, reply)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config, clock) as (store, worker):
        failed = new_message([A], received_at=clock.now())
        await store.add_message(failed)
        await wait_for_status(store, failed.id, {A: Status.FAILED})
        clock.advance(10 * 86400)
        worker.poke()
        later = new_message([B], received_at=clock.now())  # a claim round after the jump
        await store.add_message(later)
        await wait_for_status(store, later.id, {B: Status.DELIVERED})
        rows = await recipients(store, failed.id)
    assert (rows[A].status, rows[A].attempts, rows[A].next_attempt_at) == (Status.FAILED, 1, None)
    assert sum(c.commands.count("MAIL") for c in upstream.connections) == 2  # no retry of A
    assert upstream.delivered_to(A) == 0


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (up.RCPT_421, 421),
        (up.RCPT_450, 450),
        (up.RCPT_451, 451),
        (up.RCPT_452, 452),
        (up.data(up.RCPT_451), 451),
    ],
)
async def test_transient_replies_defer_with_backoff(
    db_url: str, upstream: Upstream, reply: str, code: int
) -> None:
    """4xx at RCPT or DATA defers: next try after about a minute, the reply kept."""
    clock = FakeClock()
    upstream.script(A, reply)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config, clock) as (store, _):
        new = new_message([A], received_at=clock.now())
        await store.add_message(new)
        rows = await wait_for_status(store, new.id, {A: Status.DEFERRED})
    assert rows[A].last_code == code
    assert rows[A].next_attempt_at is not None
    assert 54 <= rows[A].next_attempt_at - clock.now() <= 66


async def test_retry_schedule_then_max_age_with_a_controlled_clock(
    db_url: str, upstream: Upstream
) -> None:
    """Waits follow 1 m, 5 m, 15 m, 30 m, 1 h, 2 h, 2 h (+-10 %); after 5 days it fails."""
    clock = FakeClock()
    upstream.script(A, *[up.RCPT_451] * 20)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    expected = [60, 300, 900, 1800, 3600, 7200, 7200]
    async with running_worker(config, clock) as (store, worker):
        new = new_message([A], received_at=clock.now())
        await store.add_message(new)
        for attempts, wait in enumerate(expected, start=1):
            rows = await wait_until(store, new.id, lambda r, n=attempts: r[A].attempts == n)
            row = rows[A]
            assert row.status == Status.DEFERRED
            assert row.next_attempt_at is not None
            assert wait * 0.9 <= row.next_attempt_at - clock.now() <= wait * 1.1
            clock.value = row.next_attempt_at  # the next try falls due: nothing sleeps
            worker.poke()
        rows = await wait_until(store, new.id, lambda r: r[A].attempts == len(expected) + 1)
        assert rows[A].status == Status.DEFERRED
        clock.value = new.received_at + 5 * 86400  # the retry after this falls past max age
        worker.poke()
        rows = await wait_for_status(store, new.id, {A: Status.FAILED})
    assert rows[A].attempts == len(expected) + 2
    assert (rows[A].last_code, rows[A].last_text) == (451, "Local error, try again later")


async def test_a_retry_falling_due_between_claim_and_sleep_is_not_slept_past(
    db_url: str, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timer may fire a hair before the retry it waits for: the claim then finds nothing
    due, and by the time the worker asks when to wake the retry is past. The worker claims
    it at once rather than sleeping until the next poll (here an hour)."""
    clock = FakeClock()
    upstream.script(A, up.RCPT_451)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config, clock) as (store, worker):
        new = new_message([A], received_at=clock.now())
        await store.add_message(new)
        rows = await wait_for_status(store, new.id, {A: Status.DEFERRED})
        due = rows[A].next_attempt_at
        assert due is not None
        claim = store.queue.claim_batch
        moved: list[float] = []

        async def claim_then_tick(*args: Any, **kwargs: Any) -> Batch:
            batch = await claim(*args, **kwargs)
            if not batch.claims and not moved:  # the due moment passes right after
                moved.append(clock.advance(0.002))
            return batch

        monkeypatch.setattr(store.queue, "claim_batch", claim_then_tick)
        clock.value = due - 0.001  # the timer fires early
        worker.poke()
        rows = await wait_for_status(store, new.id, {A: Status.DELIVERED}, within=5)
    assert moved and rows[A].attempts == 2


async def test_421_closes_the_connection_and_defers_the_transaction(
    db_url: str, upstream: Upstream
) -> None:
    """A 421 defers every recipient of the transaction; the next message uses a new connection."""
    upstream.script(A, up.RCPT_421)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config) as (store, _):
        first = new_message([A, B])
        await store.add_message(first)
        rows = await wait_for_status(store, first.id, {A: Status.DEFERRED, B: Status.DEFERRED})
        assert {r.last_code for r in rows.values()} == {421}
        await upstream.until(lambda u: not u.connections[0].open)
        second = new_message([C])
        await store.add_message(second)
        await wait_for_status(store, second.id, {C: Status.DELIVERED})
    assert len(upstream.connections) == 2
    assert upstream.delivered[0].connection == 2


async def test_dropped_mid_data_on_a_new_connection_counts_and_retries(
    db_url: str, upstream: Upstream
) -> None:
    """A connection lost during DATA defers (attempt recorded); the retry delivers once."""
    clock = FakeClock()
    upstream.script(A, up.DROP)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config, clock) as (store, worker):
        new = new_message([A], received_at=clock.now())
        await store.add_message(new)
        rows = await wait_for_status(store, new.id, {A: Status.DEFERRED})
        assert rows[A].last_enhanced == retry.BAD_CONNECTION
        assert rows[A].next_attempt_at is not None
        clock.value = rows[A].next_attempt_at
        worker.poke()
        rows = await wait_for_status(store, new.id, {A: Status.DELIVERED})
        attempts = await store.timeline.attempts(new.id)
    assert rows[A].attempts == 2
    assert [a.code for a in attempts] == [None, 250]
    assert upstream.delivered_to(A) == 1


async def test_broken_pooled_connection_is_replaced_without_counting(
    db_url: str, upstream: Upstream
) -> None:
    """A reused connection that breaks is dropped and the message sent on a new one, free."""
    upstream.script(B, up.DROP)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config) as (store, _):
        first = new_message([A])
        await store.add_message(first)
        await wait_for_status(store, first.id, {A: Status.DELIVERED})
        second = new_message([B])
        await store.add_message(second)
        rows = await wait_for_status(store, second.id, {B: Status.DELIVERED})
        attempts = await store.timeline.attempts(second.id)
    assert rows[B].attempts == 1
    assert [a.code for a in attempts] == [250]
    assert "DROPPED" in upstream.connections[0].commands
    assert [t.connection for t in upstream.delivered] == [1, 2]


async def test_connections_are_reused_with_rset(db_url: str, upstream: Upstream) -> None:
    """Messages one after another travel over one connection, RSET before each reuse."""
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config) as (store, _):
        for rcpt in (A, B, C):
            new = new_message([rcpt])
            await store.add_message(new)
            await wait_for_status(store, new.id, {rcpt: Status.DELIVERED})
    assert len(upstream.connections) == 1
    assert upstream.connections[0].commands[:5] == ["MAIL", "RSET", "MAIL", "RSET", "MAIL"]


async def test_a_reused_connection_that_says_421_is_replaced_without_counting(
    db_url: str, upstream: Upstream
) -> None:
    """A pooled connection whose server answers 421 (closing, e.g. it timed the connection
    out while it was idle) is dropped and the message sent on a new one; no attempt counted."""
    upstream.script(B, "421 4.4.2 idle too long, closing")
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config) as (store, _):
        first = new_message([A])
        await store.add_message(first)
        await wait_for_status(store, first.id, {A: Status.DELIVERED})
        second = new_message([B])
        await store.add_message(second)
        rows = await wait_for_status(store, second.id, {B: Status.DELIVERED})
        attempts = await store.timeline.attempts(second.id)
    assert rows[B].attempts == 1
    assert [a.code for a in attempts] == [250]
    assert [t.connection for t in upstream.delivered] == [1, 2]


async def test_a_connection_carries_at_most_max_messages(db_url: str, upstream: Upstream) -> None:
    """With max_messages_per_connection = 2, five messages need three connections."""
    config = relay_config(
        db_url, {"smarthost": upstream_at(upstream.port, max_messages_per_connection=2)}
    )
    async with running_worker(config) as (store, _):
        for i in range(5):
            rcpt = f"user{i}@example.com"
            new = new_message([rcpt])
            await store.add_message(new)
            await wait_for_status(store, new.id, {rcpt: Status.DELIVERED})
    per_connection = [
        sum(t.connection == c.id for t in upstream.delivered) for c in upstream.connections
    ]
    assert per_connection == [2, 2, 1]


async def test_idle_connection_is_closed_after_idle_timeout(
    db_url: str, upstream: Upstream
) -> None:
    """An unused pooled connection says QUIT once idle_timeout has passed."""
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port, idle_timeout=0.2)})
    async with running_worker(config, grace=0) as (store, _):
        new = new_message([A])
        await store.add_message(new)
        await wait_for_status(store, new.id, {A: Status.DELIVERED})
        await upstream.until(lambda u: u.open_now == 0)
        assert upstream.connections[0].commands[-1] == "QUIT"


@pytest.mark.slow
async def test_200_messages_never_open_more_than_max_connections(
    db_url: str, upstream: Upstream
) -> None:
    """200 messages to one destination with max_connections = 2: at most 2 connections."""
    config = relay_config(
        db_url,
        {
            "smarthost": upstream_at(
                upstream.port, max_connections=2, max_messages_per_connection=1000
            )
        },
    )
    async with running_worker(config) as (store, _):
        messages = [new_message([f"user{i}@example.com"]) for i in range(200)]
        for new in messages:
            await store.add_message(new)
        await upstream.until(lambda u: len(u.delivered) == 200, within=120)
        for i, new in enumerate(messages):  # each result is recorded just after its 250
            await wait_for_status(store, new.id, {f"user{i}@example.com": Status.DELIVERED})
        page = await store.messages.page(0, 500)
    assert upstream.most_open <= 2
    assert len(upstream.connections) <= 2
    assert {m.status for m in page.messages} == {Status.DELIVERED}


async def test_no_database_transaction_is_open_during_smtp(db_url: str, upstream: Upstream) -> None:
    """While an upstream holds its DATA reply, the database is free for other writers."""
    upstream.script(A, up.SLOW)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config) as (store, _):
        new = new_message([A])
        await store.add_message(new)
        await upstream.until(lambda u: u.holding == 1)
        if store.db.is_sqlite:
            path = db_url.split("///", 1)[1]
            # Waits up to 5 s for the write lock: a writer held across SMTP never lets go.
            with sqlite3.connect(path, timeout=5) as db:
                db.execute("BEGIN IMMEDIATE")
                db.rollback()
        else:
            # A short claim or read may be between statements right now; one held across
            # SMTP would stay open for as long as the upstream holds its reply.
            async with asyncio.timeout(5):
                while await _open_pg_transactions(store):  # noqa: ASYNC110 (no event to wait on)
                    await asyncio.sleep(0.05)
        assert upstream.holding == 1
        upstream.release()
        await wait_for_status(store, new.id, {A: Status.DELIVERED})


async def _open_pg_transactions(store: Store) -> int:
    """Other sessions of this database that are inside a transaction."""
    from sqlalchemy import text

    sql = (
        "SELECT count(*) FROM information_schema.innodb_trx t"
        " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
        " WHERE p.db = DATABASE() AND t.trx_mysql_thread_id <> CONNECTION_ID()"
        if store.db.is_mysql
        else "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
    )
    async with store.db.reader.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def test_stop_gives_unfinished_leases_back(db_url: str, upstream: Upstream) -> None:
    """A delivery still in flight when the grace time ends is queued again, uncounted."""
    upstream.script(A, up.SLOW)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config, grace=0.1) as (store, worker):
        new = new_message([A])
        await store.add_message(new)
        await upstream.until(lambda u: u.holding == 1)
        await worker.stop(0.1)
        rows = await recipients(store, new.id)
        assert (rows[A].status, rows[A].attempts) == (Status.QUEUED, 0)
        assert await store.timeline.attempts(new.id) == []
        upstream.release()


async def test_stop_lets_a_delivery_in_flight_finish(db_url: str, upstream: Upstream) -> None:
    """A delivery that finishes within the grace time is recorded as delivered."""
    upstream.script(A, up.SLOW)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config) as (store, worker):
        new = new_message([A])
        await store.add_message(new)
        await upstream.until(lambda u: u.holding == 1)
        stopping = asyncio.create_task(worker.stop(30))
        upstream.release()
        await stopping
        rows = await recipients(store, new.id)
    assert rows[A].status == Status.DELIVERED


async def test_mail_options_follow_the_servers_extensions(db_url: str, upstream: Upstream) -> None:
    """SIZE always, BODY=8BITMIME for 8-bit bodies, SMTPUTF8 for a non-ASCII address."""
    rcpt = "josé@example.com"
    body = "Grüße aus dem Süden.\r\n".encode()
    raw = b"Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config) as (store, _):
        new = new_message([rcpt], raw=raw)
        await store.add_message(new)
        await wait_for_status(store, new.id, {rcpt: Status.DELIVERED})
    (transaction,) = upstream.delivered
    assert transaction.rcpt_tos == (rcpt,)
    assert transaction.data == raw
    assert set(transaction.mail_options) == {f"SIZE={len(raw)}", "BODY=8BITMIME", "SMTPUTF8"}
