"""Rate limits per destination: mail over the limit waits (no attempt counted, never
failed), the limit holds across processes on one database, and each MX domain has its own."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterator

import pytest

from relay.config import MxConfig, RouteConfig, load_config
from relay.config.limits import DestinationLimits
from relay.delivery.mx import MxResolver
from relay.status import Status
from relay.store.destinations import State
from tests.dns_server import FakeDns
from tests.queueing import (
    FakeClock,
    all_recipients,
    new_message,
    relay_config,
    running_worker,
    settled,
    upstream_at,
)
from tests.upstream import Upstream

PER_MINUTE = 2
SPACING = 60.0 / PER_MINUTE


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A running recording upstream on 127.0.0.1."""
    with Upstream().start() as server:
        yield server


async def test_over_the_limit_mail_waits_its_turn_and_never_fails(
    db_url: str, upstream: Upstream
) -> None:
    """With 2 messages a minute, 5 messages at once: 2 go, 3 wait 30 s apart without an
    attempt counted; as the clock moves they go, one per token."""
    clock = FakeClock()
    limited = upstream_at(upstream.port, max_messages_per_minute=PER_MINUTE)
    config = relay_config(db_url, {"smarthost": limited})
    t0 = clock.now()
    async with running_worker(config, clock) as (store, worker):
        news = [new_message([f"u{i}@example.com"], received_at=t0) for i in range(5)]
        for new in news:
            await store.add_message(new)
        rows = await all_recipients(store, settled(t0))
        waiting = sorted((r for r in rows if r.status == Status.QUEUED), key=lambda r: r.address)
        assert len(upstream.delivered) == 2
        assert [(r.attempts, r.next_attempt_at) for r in waiting] == [
            (0, t0 + SPACING), (0, t0 + 2 * SPACING), (0, t0 + 3 * SPACING)
        ]  # fmt: skip
        assert [await store.timeline.attempts(n.id) for n in news[2:]] == [[], [], []]

        clock.advance(SPACING)
        worker.poke()
        await upstream.until(lambda u: len(u.delivered) == 3)
        clock.advance(2 * SPACING)
        worker.poke()
        rows = await all_recipients(store, lambda r: r.status == Status.DELIVERED)
    assert sorted(a for t in upstream.delivered for a in t.rcpt_tos) == sorted(
        r.address for r in rows
    )
    assert {r.attempts for r in rows} == {1}


async def test_the_limit_holds_for_every_process_on_the_database(
    db_url: str, upstream: Upstream
) -> None:
    """A second process (its own store and worker) finds the bucket the first emptied:
    its mail waits instead of getting a fresh minute's worth."""
    clock = FakeClock()
    config = relay_config(
        db_url, {"smarthost": upstream_at(upstream.port, max_messages_per_minute=3)}
    )
    t0 = clock.now()
    async with running_worker(config, clock) as (first, _):
        for i in range(3):
            await first.add_message(new_message([f"a{i}@example.com"], received_at=t0))
        await upstream.until(lambda u: len(u.delivered) == 3)
    async with running_worker(config, clock) as (second, _):
        later = [new_message([f"b{i}@example.com"], received_at=t0) for i in range(3)]
        for new in later:
            await second.add_message(new)
        rows = await all_recipients(second, settled(t0))
    assert len(upstream.delivered) == 3
    assert sorted(r.next_attempt_at for r in rows if r.status == Status.QUEUED) == [
        t0 + 20.0, t0 + 40.0, t0 + 60.0
    ]  # fmt: skip


ZONE = {("a.test", "A"): ["127.0.0.1"], ("b.test", "A"): ["127.0.0.1"]}
TO_MX = (RouteConfig(match="*", action="relay", upstream="mx"),)


async def test_each_mx_domain_has_its_own_limit_and_may_override_it(
    sqlite_url: str, upstream: Upstream
) -> None:
    """[mx] max_messages_per_minute = 1 limits each domain on its own; a domain's
    [mx.domains."b.test"] table raises its own to 3."""
    clock = FakeClock()
    domains = types.MappingProxyType({"b.test": DestinationLimits(max_messages_per_minute=3)})
    mx = MxConfig(port=upstream.port, tls="none", max_messages_per_minute=1, domains=domains)
    config = dataclasses.replace(relay_config(sqlite_url, {}, TO_MX), mx=mx)
    t0 = clock.now()
    with FakeDns(ZONE) as dns:
        resolver = MxResolver(dns.resolver())
        async with running_worker(config, clock, resolver=resolver) as (store, _):
            for domain in ("a.test", "b.test"):
                for i in range(4):
                    new = new_message([f"u{i}@{domain}"], received_at=t0, rules=TO_MX)
                    await store.add_message(new)
            await all_recipients(store, settled(t0))
    sent = [a.rpartition("@")[2] for t in upstream.delivered for a in t.rcpt_tos]
    assert sorted(sent) == ["a.test", "b.test", "b.test", "b.test"]


def test_a_domain_table_takes_the_limits_it_leaves_out_from_mx(tmp_path: object) -> None:
    """[mx.domains."Gmail.com"] sets only breaker_failures: its rate is [mx]'s, its domain
    is looked up in lower case; other domains get [mx]'s limits."""
    from pathlib import Path

    path = Path(str(tmp_path)) / "relay.toml"
    path.write_text(
        "[mx]\nmax_messages_per_minute = 10\nbreaker_pause = 30\n"
        '[mx.domains."Gmail.com."]\nbreaker_failures = 2\n'
    )
    mx = load_config(path, env={}).mx
    assert mx.limits_for("gmail.com") == DestinationLimits(10, 2, 30.0, 3600.0)
    assert mx.limits_for("other.test").max_messages_per_minute == 10
    assert mx.limits_for("other.test").breaker_failures == 5


@pytest.mark.parametrize(
    ("tokens", "elapsed", "booked", "expected"),
    [
        (None, 0.0, None, None),  # a new bucket is full
        (0.0, 0.0, None, 30.0),  # empty: the next token in 30 s
        (0.0, 15.0, None, 15.0),  # half a token back: 15 s more
        (0.0, 30.0, None, None),  # a token back
        (0.0, 0.0, 1060.0, 90.0),  # tokens promised up to 60 s on: the one after
        (0.0, 0.0, 990.0, 30.0),  # a promise already kept: the next token
        (1.5, 600.0, None, None),  # refilled, never beyond the minute's worth
    ],
)
def test_the_bucket_gives_a_token_or_the_time_one_comes(
    tokens: float | None, elapsed: float, booked: float | None, expected: float | None
) -> None:
    """2 a minute: a token now (None), or the seconds until this message's token comes."""
    state = State("relay-test", tokens=tokens, tokens_at=1000.0, booked_until=booked)
    until = state.admit(1000.0 + elapsed, PER_MINUTE, 300.0)
    assert (None if until is None else until - 1000.0 - elapsed) == expected
    assert state.tokens is not None and state.tokens <= PER_MINUTE
