"""Upstream outage: the upstream refuses connections, then answers 421, then recovers.

Every recipient is deferred with the real reason recorded, retried on the configured
schedule, then delivered exactly once: the counts match.
"""

from __future__ import annotations

import pytest

from relay.status import Status
from tests import upstream as up
from tests.queueing import (
    FakeClock,
    all_recipients,
    new_message,
    relay_config,
    running_worker,
    upstream_at,
)
from tests.upstream import Upstream

SCHEDULE = (60.0, 300.0, 900.0)
MESSAGES = 60


async def test_refused_then_421_then_recovered(db_url: str, figures: dict[str, str]) -> None:
    """Refused connections and 421 defer every recipient with that reason on the schedule;
    after recovery each is delivered exactly once."""
    clock = FakeClock()
    server = Upstream().start()
    server.stop()  # its port now refuses connections
    # Each recipient on its own schedule: no circuit breaker (test_breaker.py has it).
    config = relay_config(
        db_url,
        {"smarthost": upstream_at(server.port, breaker_failures=0)},
        retry_schedule=SCHEDULE,
        retry_jitter=0.0,
    )
    try:
        async with running_worker(config, clock) as (store, worker):
            t0 = clock.now()
            news = [
                new_message([f"user{i}-{k}@example.com" for k in range(1 + i % 3)], received_at=t0)
                for i in range(MESSAGES)
            ]
            for new in news:
                await store.add_message(new)
            total = sum(len(n.recipients) for n in news)

            rows = await all_recipients(store, lambda r: r.attempts == 1)
            assert len(rows) == total
            assert {(r.status, r.last_code, r.last_enhanced) for r in rows} == {
                (Status.DEFERRED, None, "4.4.1")
            }
            assert all("Connection refused" in (r.last_text or "") for r in rows), rows[0]
            assert {r.next_attempt_at for r in rows} == {t0 + SCHEDULE[0]}

            server.greeting = up.GREETING_421
            server.start()
            t1 = clock.advance(SCHEDULE[0])
            worker.poke()
            rows = await all_recipients(store, lambda r: r.attempts == 2)
            assert {(r.status, r.last_code, r.last_enhanced, r.last_text) for r in rows} == {
                (
                    Status.DEFERRED,
                    421,
                    "4.3.2",
                    "upstream.test Service not available, closing transmission channel",
                )
            }
            assert {r.next_attempt_at for r in rows} == {t1 + SCHEDULE[1]}
            assert server.transactions == []

            server.greeting = None
            t2 = clock.advance(SCHEDULE[1])
            worker.poke()
            rows = await all_recipients(store, lambda r: r.status == Status.DELIVERED)
            attempts = [a for n in news for a in await store.timeline.attempts(n.id)]
    finally:
        server.stop()
    assert {r.attempts for r in rows} == {3}
    assert len(attempts) == 3 * total
    assert sorted({(a.started_at, a.code) for a in attempts}) == [(t0, None), (t1, 421), (t2, 250)]
    delivered = [rcpt for t in server.delivered for rcpt in t.rcpt_tos]
    assert sorted(delivered) == sorted(r.address for r in rows)  # each exactly once
    assert len(server.delivered) == MESSAGES  # one transaction per message
    figures["outage"] = (
        f"{MESSAGES} messages, {total} recipients: 3 attempts each (refused, 421, 250),"
        f" {len(delivered)} deliveries"
    )


@pytest.mark.parametrize("outage", ["421", "refused"])
async def test_retries_wake_on_their_own_when_due(sqlite_url: str, outage: str) -> None:
    """With the real clock and nothing else waking the worker, each retry starts once its
    wait from the schedule has passed, not before."""
    schedule = (0.3, 0.6)
    server = Upstream().start()
    server.greeting, server.greetings_left = up.GREETING_421, 2
    if outage == "refused":
        server.stop()
    config = relay_config(
        sqlite_url,
        {"smarthost": upstream_at(server.port)},
        retry_schedule=schedule,
        retry_jitter=0.0,
    )
    try:
        async with running_worker(config) as (store, _):
            new = new_message(["a@example.com"])
            await store.add_message(new)
            if outage == "refused":
                await all_recipients(store, lambda r: r.attempts == 1)
                server.greetings_left = 1  # the second attempt gets a 421
                server.start()
            await all_recipients(store, lambda r: r.status == Status.DELIVERED)
            attempts = await store.timeline.attempts(new.id)
    finally:
        server.stop()
    assert [a.code for a in attempts] == [None if outage == "refused" else 421, 421, 250]
    for earlier, later, wait in zip(attempts[:-1], attempts[1:], schedule, strict=True):
        assert later.started_at >= earlier.started_at + earlier.duration + wait - 0.01
