"""Circuit breakers per destination: push-backs in a row pause the whole destination, its
mail waits together, one probe goes when the pause ends, the pause doubles while probes
fail; the state is in the database, and a live destination never waits for a dead one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest

from relay.config import RouteConfig
from relay.config.limits import DestinationLimits
from relay.delivery.worker import Worker
from relay.status import Status
from relay.store import NewMessage, RecipientRow, Store
from relay.store.destinations import State
from relay.store.queue_view import paused_destinations
from tests import upstream as up
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

FAILURES = 3
PAUSE = 60.0
KEY = "relay:smarthost"
LEASE = 300.0


@pytest.fixture
def refusing() -> Iterator[Upstream]:
    """An upstream whose port refuses connections (start() brings it up on that port)."""
    server = Upstream().start()
    server.stop()
    try:
        yield server
    finally:
        server.stop()


def breaker(port: int, **limits: float) -> dict[str, object]:
    """[upstream.smarthost] on `port` with a breaker of FAILURES and PAUSE."""
    settings: dict[str, object] = {"breaker_failures": FAILURES, "breaker_pause": PAUSE}
    settings.update(limits)
    return {"smarthost": upstream_at(port, max_connections=1, **settings)}


@dataclass
class Tripped:
    """A worker whose destination refused the first of `news` until its breaker paused it:
    the store, the worker, its clock, when the mail arrived, and the recipients then."""

    store: Store
    worker: Worker
    clock: FakeClock
    t0: float
    news: list[NewMessage]
    rows: list[RecipientRow]


@asynccontextmanager
async def tripped(
    db_url: str, refusing: Upstream, messages: int, **limits: float
) -> AsyncIterator[Tripped]:
    """`messages` messages at once to the refusing smarthost, until each is tried once or
    waits for the pause its breaker made (the retry schedule: one PAUSE, no jitter)."""
    clock = FakeClock()
    t0 = clock.now()
    upstreams = breaker(refusing.port, **limits)
    config = relay_config(db_url, upstreams, retry_schedule=(PAUSE,), retry_jitter=0.0)
    async with running_worker(config, clock) as (store, worker):
        news = [new_message([f"u{i}@example.com"], received_at=t0) for i in range(messages)]
        for new in news:
            await store.add_message(new)
        rows = await all_recipients(store, settled(t0))
        yield Tripped(store, worker, clock, t0, news, rows)


def waiting_beyond(now: float) -> Callable[[RecipientRow], bool]:
    """A recipient not being sent, whose next attempt is after `now`."""
    return lambda r: r.status != Status.SENDING and (r.next_attempt_at or 0.0) > now


async def pause_of(store: Store) -> float | None:
    """Until when the smarthost is paused (None: it is not)."""
    async with store.db.reader.connect() as conn:
        paused = await paused_destinations(conn, [KEY])
    return paused[KEY].until if KEY in paused else None


async def test_refusals_pause_the_destination_and_its_mail_waits_together(
    db_url: str, refusing: Upstream
) -> None:
    """After 3 refused connections in a row the destination pauses for 60 s: the mail not
    tried yet waits until then without an attempt, the queue's destination group says
    until when and why."""
    async with tripped(db_url, refusing, 12) as run:
        (group,) = await run.store.queue_view.groups("destination")
    t0, rows = run.t0, run.rows
    tried = [r for r in rows if r.attempts]
    assert FAILURES <= len(tried) <= FAILURES + 2  # the sends already under way finish
    assert {(r.status, r.next_attempt_at) for r in rows if not r.attempts} == {
        (Status.QUEUED, t0 + PAUSE)
    }
    assert group.key == KEY and group.paused is not None
    assert group.paused.until == t0 + PAUSE
    assert "Connection refused" in group.paused.reason


async def test_one_probe_goes_when_the_pause_ends_then_the_rest_at_once(
    db_url: str, refusing: Upstream
) -> None:
    """When the pause ends one message goes alone (the others wait for its answer); once
    it is delivered everything else goes at once, and the destination is no more paused."""
    async with tripped(db_url, refusing, 8) as run:
        store, news = run.store, run.news
        for new in news:
            refusing.script(new.recipients[0].address, up.SLOW)
        refusing.start()
        t1 = run.clock.advance(PAUSE)
        run.worker.poke()
        await refusing.until(lambda u: u.holding == 1)
        rows = await all_recipients(store, lambda _: True)
        sending = [r for r in rows if r.status == Status.SENDING]
        assert len(sending) == 1
        assert {r.next_attempt_at for r in rows if r.status != Status.SENDING} == {t1 + LEASE}
        refusing.release()
        rows = await all_recipients(store, lambda r: r.status == Status.DELIVERED)
        assert await pause_of(store) is None
    assert len(refusing.delivered) == len(news)


async def test_a_failed_probe_pauses_again_twice_as_long_up_to_the_cap(
    db_url: str, refusing: Upstream
) -> None:
    """A probe that is refused pauses the destination again, for twice as long each time,
    never longer than breaker_max_pause."""
    async with tripped(db_url, refusing, 5, breaker_max_pause=200.0) as run:
        pauses = [await pause_of(run.store)]
        for _ in range(2):
            assert pauses[-1] is not None
            now = run.clock.value = pauses[-1]
            run.worker.poke()
            await all_recipients(run.store, waiting_beyond(now))
            pauses.append(await pause_of(run.store))
    t0 = run.t0
    assert pauses == [t0 + PAUSE, t0 + PAUSE + 120.0, t0 + PAUSE + 120.0 + 200.0]


@pytest.mark.parametrize(
    ("answer", "pauses"),
    [
        (up.RCPT_421, True),
        ("450 4.7.1 Too many messages, slow down", True),
        (up.RCPT_450, False),  # 4.2.1 mailbox busy: that mailbox's affair
        (up.RCPT_550, False),  # an answer: the destination is there
    ],
)
async def test_421_and_policy_replies_count_other_replies_do_not(
    db_url: str, answer: str, pauses: bool
) -> None:
    """421 and 4.7.x replies count as push-backs like refused connections; a 4.2.1 or a
    5xx is the destination answering, and never pauses it."""
    with Upstream().start() as server:
        config = relay_config(db_url, breaker(server.port))
        async with running_worker(config) as (store, _):
            for i in range(FAILURES + 2):
                address = f"u{i}@example.com"
                server.script(address, answer)
                await store.add_message(new_message([address]))
                await all_recipients(store, settled())
            assert (await pause_of(store) is not None) is pauses


async def test_an_answer_in_between_starts_the_count_again(db_url: str) -> None:
    """Push-backs must come in a row: two 421s, a delivery, two 421s never pause."""
    with Upstream().start() as server:
        config = relay_config(db_url, breaker(server.port))
        async with running_worker(config) as (store, _):
            for i, answer in enumerate([up.RCPT_421, up.RCPT_421, up.RCPT_OK] + [up.RCPT_421] * 2):
                address = f"u{i}@example.com"
                server.script(address, answer)
                await store.add_message(new_message([address]))
                await all_recipients(store, settled())
            assert await pause_of(store) is None


async def test_the_pause_is_in_the_database_for_every_process(
    db_url: str, refusing: Upstream
) -> None:
    """A process started after another paused the destination sends nothing there until
    the pause ends, though the upstream is up again: its new mail waits with the rest."""
    async with tripped(db_url, refusing, FAILURES) as first:
        assert await pause_of(first.store) == first.t0 + PAUSE
    refusing.start()
    clock, t0 = first.clock, first.t0
    clock.advance(10.0)
    config = relay_config(db_url, breaker(refusing.port), retry_schedule=(PAUSE,), retry_jitter=0.0)
    async with running_worker(config, clock) as (second, _):
        new = new_message(["late@example.com"], received_at=clock.now())
        await second.add_message(new)
        rows = await all_recipients(second, settled(clock.now()))
    assert refusing.transactions == []
    assert {r.next_attempt_at for r in rows if r.address == "late@example.com"} == {t0 + PAUSE}


async def test_a_dead_destination_never_slows_a_live_one(db_url: str, refusing: Upstream) -> None:
    """Mail for a dead upstream and a live one, interleaved: the dead one pauses after a
    few refusals, every message for the live one is delivered at its first attempt."""
    routes = (
        RouteConfig(match="dead.example", action="relay", upstream="dead"),
        RouteConfig(match="*", action="relay", upstream="smarthost"),
    )
    with Upstream().start() as live:
        upstreams = {
            "dead": upstream_at(refusing.port, breaker_failures=FAILURES),
            "smarthost": upstream_at(live.port),
        }
        config = relay_config(db_url, upstreams, routes)
        async with running_worker(config) as (store, _):
            for i in range(30):
                for domain in ("dead.example", "live.example"):
                    await store.add_message(new_message([f"u{i}@{domain}"], rules=routes))
            rows = await all_recipients(store, settled())
            async with store.db.reader.connect() as conn:
                paused = await paused_destinations(conn)
    live_rows = [r for r in rows if r.address.endswith("@live.example")]
    dead_rows = [r for r in rows if r.address.endswith("@dead.example")]
    assert {(r.status, r.attempts) for r in live_rows} == {(Status.DELIVERED, 1)}
    assert len(live.delivered) == 30
    assert list(paused) == ["relay:dead"]
    assert sum(r.attempts for r in dead_rows) <= FAILURES + 2 * 4  # then it waits


@pytest.mark.parametrize(
    ("failures", "pause", "until", "now", "opens", "then"),
    [
        (1, 0.0, None, 100.0, False, (0.0, None)),  # the second push-back of three
        (2, 0.0, None, 100.0, True, (60.0, 160.0)),  # the third: paused for breaker_pause
        (3, 60.0, 160.0, 100.0, False, (60.0, 160.0)),  # a send begun before the pause
        (3, 60.0, 160.0, 160.0, True, (120.0, 280.0)),  # the probe failed: twice as long
        (4, 480.0, 700.0, 700.0, True, (600.0, 1300.0)),  # never beyond breaker_max_pause
    ],
)
def test_the_breaker_counts_pauses_and_doubles(
    failures: int,
    pause: float,
    until: float | None,
    now: float,
    opens: bool,
    then: tuple[float, float | None],
) -> None:
    """One more push-back: whether it pauses the destination, for how long, until when."""
    limits = DestinationLimits(breaker_failures=3, breaker_pause=60.0, breaker_max_pause=600.0)
    state = State(KEY, failures=failures, pause=pause, paused_until=until)
    assert state.failed(now, limits, "421 4.3.2 busy") is opens
    assert (state.failures, state.pause, state.paused_until) == (failures + 1, *then)
