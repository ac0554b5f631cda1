"""Group commit: messages that arrive together share a transaction, each caller returns only
after the commit that holds its message, and one bad message fails alone."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from relay import ids
from relay.config import StorageConfig
from relay.mime import summary
from relay.status import Status
from relay.store import NewMessage, NewRecipient, Store, batch
from relay.store.accepted import MESSAGE_TABLES, insert_rows, message_rows
from relay.store.rawzip import unpack
from relay.store.schema import message
from tests import mail

BATCH = 40


def new_message(rcpt: str = "a@example.com") -> NewMessage:
    """A NewMessage as the SMTP handler builds it."""
    raw = mail.plain()
    return NewMessage(
        id=ids.new_id(),
        received_at=time.time(),
        mail_from="sender@example.com",
        recipients=[NewRecipient(rcpt)],
        raw=raw,
        summary=summary.summarize(raw),
        listener="smtp",
        peer="127.0.0.1",
    )


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """An opened store on a fresh database."""
    s = Store(StorageConfig(url=db_url))
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def outsider(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine of its own on the same database: it sees only what was committed."""
    engine = create_async_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def commits(store: Store) -> Iterator[list[int]]:
    """A list that gets an entry for every transaction the group commit commits."""
    seen: list[int] = []

    def on_commit(_conn: Any) -> None:
        seen.append(1)

    event.listen(store.committer.engine, "commit", on_commit)
    yield seen
    event.remove(store.committer.engine, "commit", on_commit)


async def committed(engine: AsyncEngine, message_id: str) -> bool:
    """Whether `message_id` is in the database, seen from another connection."""
    async with engine.connect() as conn:
        found = await conn.execute(select(message.c.id).where(message.c.id == message_id))
        return found.first() is not None


async def test_messages_that_arrive_together_share_a_transaction(
    store: Store, commits: list[int], outsider: AsyncEngine
) -> None:
    """N concurrent add_message calls take fewer than N commits; each message is in the
    database, for every other connection, as soon as its call returns."""
    news = [new_message(f"r{i}@example.com") for i in range(BATCH)]
    seen_after_return: list[bool] = []

    async def add(new: NewMessage) -> None:
        await store.add_message(new)
        seen_after_return.append(await committed(outsider, new.id))

    await asyncio.gather(*(add(n) for n in news))
    assert seen_after_return == [True] * BATCH
    assert 1 <= len(commits) < BATCH / 2
    for new in news:
        assert await store.messages.raw(new.id) == new.raw


async def test_a_lone_message_is_committed_at_once(store: Store, commits: list[int]) -> None:
    """With nothing else arriving, one message is one transaction, without waiting."""
    await store.add_message(new_message())
    assert len(commits) == 1


async def test_waiting_says_whether_handed_over_mail_awaits_its_commit(store: Store) -> None:
    """`waiting()` (what retention gives way to) is true from the hand-over until the
    commit, false before and after."""
    assert not store.committer.waiting()
    adding = asyncio.create_task(store.add_message(new_message()))
    await asyncio.sleep(0)  # handed over, not yet committed
    assert store.committer.waiting()
    await adding
    assert not store.committer.waiting()


async def test_one_bad_message_does_not_fail_its_batch(store: Store, outsider: AsyncEngine) -> None:
    """A message whose id clashes fails alone; the others of its batch are stored."""
    first = new_message()
    await store.add_message(first)
    clash = dataclasses.replace(new_message(), id=first.id)
    good = [new_message(f"r{i}@example.com") for i in range(10)]
    batch = [*good[:5], clash, *good[5:]]
    results = await asyncio.gather(*(store.add_message(n) for n in batch), return_exceptions=True)
    assert [isinstance(r, Exception) for r in results] == [n is clash for n in batch]
    for new in good:
        assert await committed(outsider, new.id)
    async with outsider.connect() as conn:
        stored = (await conn.execute(text("SELECT count(*) FROM message"))).scalar_one()
    assert stored == 1 + len(good)


async def test_a_caller_that_goes_away_does_not_stop_the_others(store: Store) -> None:
    """A caller cancelled while its batch commits (a dropped connection) loses nothing for
    the others; its own message may still be stored, as a client's retry would be."""
    news = [new_message(f"r{i}@example.com") for i in range(10)]
    tasks = [asyncio.create_task(store.add_message(n)) for n in news]
    await asyncio.sleep(0)  # every task has queued its message
    tasks[3].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert all(r is None for i, r in enumerate(results) if i != 3)
    for i, new in enumerate(news):
        if i != 3:
            assert await store.messages.get(new.id) is not None


async def test_close_commits_what_is_queued(db_url: str) -> None:
    """Closing the store waits for messages already handed over; later ones are refused."""
    store = Store(StorageConfig(url=db_url))
    await store.open()
    pending = asyncio.create_task(store.add_message(new_message()))
    await asyncio.sleep(0)
    await store.close()
    await pending
    with pytest.raises(Exception, match="closing"):
        await store.add_message(new_message())


@pytest.mark.parametrize(("setting", "synced"), [("full", True), ("normal", False)])
async def test_sqlite_callers_return_after_the_wal_is_synced(
    sqlite_url: str, setting: str, synced: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With "full" (the default) each message is committed, then the WAL is synced to disk,
    and only then does its caller return; with "normal" nobody waits for a sync."""
    log: list[tuple[str, Any]] = []
    real_sync, real_run = batch.sync_file, batch.DriverInserts.run

    def sync_file(path: str) -> None:
        real_sync(path)
        log.append(("synced", path))

    def run(self: batch.DriverInserts, conn: Any, rows: list[Any]) -> None:
        real_run(self, conn, rows)
        log.append(("inserted", {r.message["id"] for r in rows}))

    monkeypatch.setattr(batch, "sync_file", sync_file)
    monkeypatch.setattr(batch.DriverInserts, "run", run)
    store = Store(StorageConfig(url=sqlite_url, sqlite_synchronous=setting))  # type: ignore[arg-type]
    await store.open()
    event.listen(store.committer.engine, "commit", lambda _conn: log.append(("commit", None)))

    async def add(new: NewMessage) -> None:
        await store.add_message(new)
        log.append(("returned", new.id))

    news = [new_message(f"r{i}@example.com") for i in range(12)]
    try:
        await add(news[0])
        await asyncio.gather(*(add(n) for n in news[1:]))
        with store.committer.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        await store.close()
    wal = sqlite_url.split("///", 1)[1] + "-wal"
    for new in news:
        inserted = next(
            i for i, (what, ids) in enumerate(log) if what == "inserted" and new.id in ids
        )
        commit = next(i for i in range(inserted, len(log)) if log[i][0] == "commit")
        returned = log.index(("returned", new.id))
        assert commit < returned
        assert (("synced", wal) in log[commit:returned]) is synced, log
    assert any(what == "synced" for what, _ in log) is synced


@pytest.mark.parametrize(("status", "due"), [(Status.CAPTURED, False), (Status.QUEUED, True)])
async def test_only_a_queued_message_is_announced_as_due(
    store: Store, status: Status, due: bool
) -> None:
    """The delivery worker wakes for a message with a recipient to deliver, not for one
    that is only captured."""
    new = dataclasses.replace(
        new_message(), recipients=[NewRecipient("a@example.com", "r", status)]
    )
    async with store.events.subscribe() as events:
        await store.add_message(new)
        event = events.get_nowait()
    assert (event.kind, event.message_id, event.due) == ("message", new.id, due)


async def test_sqlite_driver_inserts_store_what_sqlalchemy_stores(tmp_path: Path) -> None:
    """The group commit's SQLite fast inserts write the same rows, column for column, as
    SQLAlchemy Core does (defaults, booleans, binary bytes, NULLs)."""
    raw = mail.plain() + b"\x00\xff binary\r\n"
    news = [
        dataclasses.replace(
            new_message(),
            raw=raw,
            recipients=[NewRecipient("A@Example.com"), NewRecipient("b@x.org", "r", Status.QUEUED)],
            auth_user="alice",
            tls=True,
        ),
        new_message("c@example.com"),
    ]
    tables: list[dict[str, list[tuple[Any, ...]]]] = []
    for name, fast in (("core", False), ("driver", True)):
        url = f"sqlite+aiosqlite:///{tmp_path / name}.db"
        store = Store(StorageConfig(url=url))
        await store.open()
        rows = [message_rows(n) for n in news]
        engine = store.committer.engine
        inserts = batch.DriverInserts.for_dialect(engine.dialect)
        assert inserts is not None
        with engine.begin() as conn:
            if fast:
                inserts.run(conn, rows)
            else:
                insert_rows(conn, rows)
        with engine.connect() as conn:
            tables.append(
                {
                    t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key))]
                    for t in MESSAGE_TABLES
                }
            )
        await store.close()
    assert tables[0] == tables[1]
    stored = {row[0]: unpack(row[1], row[2]) for row in tables[1]["message_raw"]}
    assert stored[news[0].id] == raw
