"""The worker's scheduling: woken by commits, destinations in parallel, bounces."""

from __future__ import annotations

import asyncio
import email
import socket
from collections.abc import Iterator
from email import policy

import pytest

from relay.config import RouteConfig
from relay.status import Status
from tests import upstream as up
from tests.queueing import (
    new_message,
    recipients,
    relay_config,
    running_worker,
    upstream_at,
    wait_for_status,
)
from tests.upstream import Upstream

A, B = "alice@example.com", "bob@example.com"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A running scriptable upstream on 127.0.0.1."""
    with Upstream().start() as server:
        yield server


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port on 127.0.0.1 that takes connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(100)
        yield sock.getsockname()[1]


async def test_an_idle_worker_is_woken_by_a_commit(db_url: str, upstream: Upstream) -> None:
    """With the fallback poll an hour away, a new message is still sent at once."""
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)}, poll_interval=3600)
    async with running_worker(config) as (store, worker):
        await asyncio.wait_for(worker.sleeping.wait(), 10)
        new = new_message([A])
        await store.add_message(new)
        await wait_for_status(store, new.id, {A: Status.DELIVERED}, within=10)


async def test_a_dead_destination_does_not_delay_a_live_one(
    db_url: str, upstream: Upstream, black_hole: int
) -> None:
    """Messages stuck on a silent upstream leave another upstream's mail untouched."""
    routes = (
        RouteConfig(match="dead.example", action="relay", upstream="dead"),
        RouteConfig(match="*", action="relay", upstream="smarthost"),
    )
    dead = upstream_at(black_hole, connect_timeout=120, max_connections=2)
    config = relay_config(db_url, {"dead": dead, "smarthost": upstream_at(upstream.port)}, routes)
    async with running_worker(config, grace=0.1) as (store, worker):
        stuck = [new_message([f"u{i}@dead.example"], rules=routes) for i in range(10)]
        for new in stuck:
            await store.add_message(new)
        live = new_message([A], rules=routes)
        await store.add_message(live)
        await wait_for_status(store, live.id, {A: Status.DELIVERED}, within=15)
        waiting = [await recipients(store, new.id) for new in stuck]
        assert {r.status for rows in waiting for r in rows.values()} <= {
            Status.SENDING,
            Status.QUEUED,
        }
        await worker.stop(0.1)
        after = [await recipients(store, new.id) for new in stuck]
    assert {(r.status, r.attempts) for rows in after for r in rows.values()} == {(Status.QUEUED, 0)}


async def test_permanent_failure_bounces_to_the_sender_when_enabled(
    db_url: str, upstream: Upstream
) -> None:
    """With dsn = true a 550 sends an RFC 3464 report from <> to the envelope sender."""
    upstream.script(B, up.RCPT_550)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)}, dsn=True)
    async with running_worker(config) as (store, _):
        new = new_message([A, B], mail_from="sender@example.com")
        await store.add_message(new)
        await wait_for_status(store, new.id, {A: Status.DELIVERED, B: Status.FAILED})
        await upstream.until(lambda u: any(t.mail_from == "" for t in u.delivered))
    (bounce,) = [t for t in upstream.delivered if t.mail_from == ""]
    assert bounce.rcpt_tos == ("sender@example.com",)
    report = email.message_from_bytes(bounce.data, policy=policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    text = bounce.data.decode()
    assert f"Final-Recipient: rfc822; {B}" in text
    assert "Status: 5.1.1" in text
    assert "Diagnostic-Code: smtp; 550 5.1.1 No such user here" in text
    assert A not in text.split("message/delivery-status", 1)[1].split("rfc822-headers")[0]


@pytest.mark.parametrize(
    ("dsn", "sender"), [(True, ""), (True, "<>"), (False, "sender@example.com")]
)
async def test_no_bounce_to_a_null_sender_or_when_disabled(
    db_url: str, upstream: Upstream, dsn: bool, sender: str
) -> None:
    """A failure never bounces to <>, and bounces are off unless dsn = true."""
    upstream.script(A, up.RCPT_550)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)}, dsn=dsn)
    async with running_worker(config) as (store, _):
        new = new_message([A], mail_from=sender)
        await store.add_message(new)
        await wait_for_status(store, new.id, {A: Status.FAILED})
        page = await store.messages.page()
    assert [m.id for m in page.messages] == [new.id]


@pytest.mark.parametrize("where", ["connect", "reply"])
async def test_timeouts_defer(db_url: str, upstream: Upstream, black_hole: int, where: str) -> None:
    """No greeting within connect_timeout, or no reply within command_timeout: deferred."""
    if where == "connect":
        settings = upstream_at(black_hole, connect_timeout=0.3)
    else:
        upstream.script(A, up.SLOW)
        settings = upstream_at(upstream.port, command_timeout=0.3)
    config = relay_config(db_url, {"smarthost": settings})
    async with running_worker(config) as (store, _):
        new = new_message([A])
        await store.add_message(new)
        rows = await wait_for_status(store, new.id, {A: Status.DEFERRED})
        upstream.release()
    assert rows[A].last_code is None
    assert "timed out" in (rows[A].last_text or "")
    assert rows[A].last_enhanced == ("4.4.1" if where == "connect" else "4.4.2")


async def test_leases_are_renewed_while_a_delivery_runs(db_url: str, upstream: Upstream) -> None:
    """A long delivery keeps its lease: another worker cannot take the recipient over."""
    from sqlalchemy import select

    from relay.store.schema import recipient
    from tests.queueing import FakeClock

    clock = FakeClock()
    upstream.script(A, up.SLOW)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)}, lease=0.3)
    async with running_worker(config, clock) as (store, first):
        new = new_message([A], received_at=clock.now())
        await store.add_message(new)
        await upstream.until(lambda u: u.holding == 1)
        clock.advance(100)  # the lease as first taken has long lapsed

        async def lease_until() -> float:
            async with store.db.reader.connect() as conn:
                query = select(recipient.c.lease_until).where(recipient.c.message_id == new.id)
                return float((await conn.execute(query)).scalar_one())

        async with asyncio.timeout(10):
            while await lease_until() <= clock.now():  # noqa: ASYNC110 (renewal sends no event)
                await asyncio.sleep(0.05)
        assert await store.queue.claim("another-process", clock.now(), 0.3, 10) == []
        upstream.release()
        await wait_for_status(store, new.id, {A: Status.DELIVERED})
        assert first.in_flight == 0
    assert upstream.delivered_to(A) == 1


async def test_a_message_deleted_during_its_delivery_is_let_go_quietly(
    db_url: str, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator deletes a message while the upstream holds its DATA reply: the result
    has no recipient left to record, and that is no error; the next message goes out."""
    import logging

    upstream.script(A, up.SLOW)
    config = relay_config(db_url, {"smarthost": upstream_at(upstream.port)})
    async with running_worker(config) as (store, _):
        doomed = new_message([A])
        await store.add_message(doomed)
        await upstream.until(lambda u: u.holding == 1)
        assert await store.delete_messages([doomed.id]) == [doomed.id]
        upstream.release()
        after = new_message([B])
        await store.add_message(after)
        await wait_for_status(store, after.id, {B: Status.DELIVERED})
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert upstream.delivered_to(A) == 1
