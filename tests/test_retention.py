"""Retention: [storage] max_messages and max_age prune done-with mail on both backends,
never mail the queue still owns; the background task in a running relay."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import event

from relay import ids, mime
from relay.config import StorageConfig
from relay.config.durations import parse_duration
from relay.config.settings import build
from relay.errors import ConfigError
from relay.status import Status
from relay.store import NewMessage, NewRecipient, Store, retention
from tests.support import RunningRelay, make_config

DAY = 86400.0
NOW = time.time()


async def add(store: Store, age: float, *statuses: Status) -> str:
    """Store a message received `age` seconds ago with one recipient per status."""
    when = NOW - age
    raw = b"Subject: x\r\n\r\nx\r\n"
    new = NewMessage(
        id=ids.new_id(when),
        received_at=when,
        mail_from="s@example.com",
        recipients=[NewRecipient(f"r{i}@example.com", status=s) for i, s in enumerate(statuses)],
        raw=raw,
        summary=mime.summary.full(raw),
        listener="smtp",
        peer="127.0.0.1",
    )
    await store.add_message(new)
    return new.id


async def remaining(store: Store) -> set[str]:
    """Ids of the messages still stored."""
    return {m.id for m in (await store.messages.page(0, 1000)).messages}


DONE = [Status.CAPTURED, Status.DELIVERED, Status.FAILED, Status.CANCELLED]
OWNED = [Status.QUEUED, Status.DEFERRED, Status.HELD, Status.SENDING]


async def test_max_age_prunes_old_done_mail_only(store: Store) -> None:
    """Old captured, delivered, failed and cancelled mail goes; old queued, deferred, held
    and sending mail stays, as does a message with one recipient still owned."""
    old_done = [await add(store, 10 * DAY, s) for s in DONE]
    old_owned = [await add(store, 10 * DAY, s) for s in OWNED]
    mixed = await add(store, 10 * DAY, Status.DELIVERED, Status.DEFERRED)
    fresh = await add(store, 60, Status.CAPTURED)
    async with store.events.subscribe() as events:
        gone = await store.prune(0, 7 * DAY, NOW)
        announced = {events.get_nowait().message_id for _ in gone}
    assert set(gone) == set(old_done) == announced
    assert await remaining(store) == {*old_owned, mixed, fresh}


async def test_max_messages_deletes_the_oldest_done_mail_beyond_the_limit(store: Store) -> None:
    """Beyond max_messages the oldest done-with messages go; queued mail counts but stays."""
    queued = await add(store, 50, Status.QUEUED)
    oldest = await add(store, 40, Status.CAPTURED)
    older = await add(store, 30, Status.DELIVERED)
    newer = await add(store, 20, Status.CAPTURED)
    newest = await add(store, 10, Status.FAILED)
    gone = await store.prune(3, 0, NOW)
    assert gone == [oldest, older]
    assert await remaining(store) == {queued, newer, newest}


async def test_limit_unreachable_while_the_queue_owns_the_rest(store: Store) -> None:
    """When only owned mail is left beyond the limit, pruning stops without deleting it."""
    owned = [await add(store, 30 - i, Status.DEFERRED) for i in range(3)]
    assert await store.prune(1, 0, NOW) == []
    assert await remaining(store) == set(owned)


async def test_batches_cover_more_than_one_transaction(store: Store) -> None:
    """More old messages than one batch are all pruned."""

    old = [await add(store, 10 * DAY, Status.CAPTURED) for _ in range(7)]
    gone = await retention.prune_older_than(store.db, NOW - DAY, batch=3)
    assert sorted(gone) == sorted(old)


async def test_a_stopping_server_stops_a_long_prune_between_transactions(store: Store) -> None:
    """Once the server is stopping, a prune of a backlog ends after the transaction in
    progress and leaves the rest for the next run (Ctrl-C is not held up by it)."""
    old = [await add(store, 10 * DAY, Status.CAPTURED) for _ in range(7)]
    gone = await retention.prune_older_than(store.db, NOW - DAY, batch=3, stopping=lambda: True)
    assert len(gone) == 3
    assert await remaining(store) == set(old) - set(gone)
    beyond = await retention.prune_beyond(store.db, 1, batch=2, stopping=lambda: True)
    assert len(beyond) == 2


async def test_a_pass_does_not_look_again_at_owned_mail_it_went_past(store: Store) -> None:
    """Each delete transaction of a pass selects only past the ids the one before it looked
    at: owned mail left at the front is not scanned again by every later transaction (at a
    million messages it piled up and slowed the prune threefold)."""
    owned = [await add(store, 20 * DAY - i, Status.DEFERRED) for i in range(4)]
    done = [await add(store, 10 * DAY - i, Status.CAPTURED) for i in range(6)]
    bounds: list[object] = []

    def spy(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        ordered = "ORDER BY message.id" in statement or "ORDER BY `message`.`id`" in statement
        if statement.lstrip().upper().startswith("SELECT") and ordered and "LIMIT" in statement:
            bounds.append(params)

    engine = store.db.writer.sync_engine
    event.listen(engine, "before_cursor_execute", spy)
    try:
        gone = await retention.prune_older_than(store.db, NOW - DAY, batch=2)
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert sorted(gone) == sorted(done)
    assert await remaining(store) >= set(owned)
    # Every select after the first carries an id already looked at (and deleted): past
    # every owned message, all older than the done ones. (The pace may take one or two.)
    later = [str(p) for p in bounds[1:]]
    assert len(later) >= 3
    for params in later:
        assert any(looked in params for looked in done), params


async def test_a_delete_waits_while_ingest_waits_for_its_commit(store: Store) -> None:
    """No delete transaction starts while `ingest_waiting()` says mail awaits its commit;
    the prune goes on once it is committed."""
    old = [await add(store, 10 * DAY, Status.CAPTURED) for _ in range(3)]
    flipped: list[float] = []
    deletes: list[float] = []

    def spy(conn: object, cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deletes.append(time.monotonic())

    def commit() -> None:
        flipped.append(time.monotonic())

    asyncio.get_running_loop().call_later(0.1, commit)
    engine = store.db.writer.sync_engine
    event.listen(engine, "before_cursor_execute", spy)
    try:
        gone = await retention.prune_older_than(
            store.db, NOW - DAY, ingest_waiting=lambda: not flipped
        )
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert sorted(gone) == sorted(old)
    assert deletes and flipped
    assert min(deletes) >= flipped[0]


async def test_a_steady_stream_of_mail_does_not_stop_the_prune(store: Store) -> None:
    """Ingest that never stops waiting holds each delete back `GIVE_WAY` at most."""
    old = [await add(store, 10 * DAY, Status.CAPTURED) for _ in range(2)]
    started = time.monotonic()
    gone = await retention.prune_older_than(store.db, NOW - DAY, ingest_waiting=lambda: True)
    assert sorted(gone) == sorted(old)
    assert time.monotonic() - started >= retention.GIVE_WAY


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 7 * DAY), ("12h", 43200), ("30m", 1800), ("45s", 45), ("3600", 3600), ("1w", 604800)],
)
def test_durations(text: str, seconds: float) -> None:
    """max_age takes a number with an optional unit s, m, h, d or w."""
    assert parse_duration(text) == seconds
    assert build(StorageConfig, {"max_age": text}, "t").max_age_seconds == seconds


@pytest.mark.parametrize(
    "values",
    [{"max_age": "7 days"}, {"max_age": "-1d"}, {"max_messages": -1}, {"prune_interval": 0}],
)
def test_bad_retention_settings_name_the_key(values: dict[str, object]) -> None:
    """A bad retention setting stops start-up with the key named."""
    with pytest.raises(ConfigError) as caught:
        build(StorageConfig, values, "relay.toml")
    assert next(iter(values)) in str(caught.value)


def test_retention_off_by_default() -> None:
    """With no retention keys nothing is ever pruned."""
    assert not StorageConfig().retention


def test_running_relay_prunes_in_the_background(sqlite_url: str) -> None:
    """A relay with max_messages prunes on its own, announcing each deleted message."""
    storage = StorageConfig(url=sqlite_url, max_messages=1, prune_interval=0.05)
    running = RunningRelay(make_config(sqlite_url, storage=storage))
    running.start()
    try:
        store = running.relay.store

        async def scenario() -> tuple[str, str]:
            async with store.events.subscribe() as events:
                first = await add(store, 20, Status.CAPTURED)
                await add(store, 10, Status.CAPTURED)
                while (event := await events.get()).kind != "deleted":
                    pass
                return first, event.message_id

        first, deleted = running.call(asyncio.wait_for(scenario(), 10))
        assert deleted == first
        assert running.count() == 1
    finally:
        running.stop()


def test_the_pace_of_deletes_keeps_each_transaction_short() -> None:
    """A delete transaction over the budget halves the next one's size; one well under
    it doubles it, never beyond the most asked for nor below one message."""
    pace = retention.Pace(500)
    assert pace.size == 50
    pace.took(retention.BUDGET * 3)
    assert pace.size == 25
    for _ in range(10):
        pace.took(retention.BUDGET * 3)
    assert pace.size == 1
    for _ in range(20):
        pace.took(retention.BUDGET / 10)
    assert pace.size == 500
    pace.took(retention.BUDGET * 0.75)  # within the budget: kept
    assert pace.size == 500


def test_where_deletes_lock_only_rows_a_transaction_may_take_longer() -> None:
    """With the budget of row locks, a delete transaction of 20 ms (most of it the fixed
    cost of a PostgreSQL transaction) grows the next one, where SQLite's budget halves it."""
    rows, sqlite = retention.Pace(500, retention.BUDGET_ROWS), retention.Pace(500)
    for pace in (rows, sqlite):
        pace.took(0.020)
    assert (rows.size, sqlite.size) == (100, 25)


async def test_the_prune_paces_itself_by_the_database(store: Store) -> None:
    """SQLite's prune keeps to the short budget of its one write lock; PostgreSQL's and
    MySQL's, whose deletes lock only rows, to the longer one."""
    pace = retention.pace_for(store.db, 500)
    wanted = retention.BUDGET if store.db.is_sqlite else retention.BUDGET_ROWS
    assert (pace.budget, pace.most) == (wanted, 500)
