"""The free-text search index: SQLite's indexer (idle-time FTS5 trigram index) and the
migration that adds it, with PostgreSQL's trigram index."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect, text

from relay.config import StorageConfig
from relay.query import Field, Query, Term, parse
from relay.store import Filter, Indexer, Store
from tests.queueing import new_message, open_store
from tests.webkit import add, message

BEFORE = "0003"


async def found(store: Store, q: str) -> list[str]:
    """Ids of the messages a search lists, newest first."""
    page = await store.messages.page(0, 50, Filter(query=parse(q)))
    return [m.id for m in page.messages]


async def scalar(store: Store, sql: str) -> int:
    """One number from the database."""
    async with store.db.reader.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def watermark(store: Store) -> int:
    """The highest message_text rowid in SQLite's search index."""
    return await scalar(store, "SELECT indexed_to FROM message_fts_state")


async def check_index(store: Store) -> None:
    """FTS5's own check that the index holds exactly the rows of message_text (once the
    indexer has caught up); raises when it does not."""
    async with store.db.writer.begin() as conn:
        await conn.execute(text("INSERT INTO message_fts (message_fts) VALUES ('integrity-check')"))


def indexer(store: Store) -> Indexer:
    """The store's indexer (SQLite)."""
    assert store.indexer is not None
    return store.indexer


async def test_substrings_are_found_in_indexed_and_unindexed_mail(sqlite_store: Store) -> None:
    """Part of a word finds a message whether the indexer has reached it or not."""
    old = await add(sqlite_store, message("Quarterly figures", "the overhead projector"))
    assert await indexer(sqlite_store).catch_up() == 1
    new = await add(sqlite_store, message("Weekly figures", "an overheated server"))
    assert await watermark(sqlite_store) < await scalar(
        sqlite_store, "SELECT max(rowid) FROM message_text"
    )
    assert await found(sqlite_store, "overhea") == [new, old]
    assert await found(sqlite_store, "head pro") == [old]
    assert await found(sqlite_store, "heated") == [new]
    assert await found(sqlite_store, "-verhea") == []
    assert await indexer(sqlite_store).catch_up() == 1
    assert await found(sqlite_store, "overhea") == [new, old]
    await check_index(sqlite_store)


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        ('q"uote', True),
        ('"u', True),
        ("*?[x]", True),
        ("near(a", True),
        ("^abc", True),
        (" and ", True),
        ("ǅemal", True),
        ("x\x00yz", False),
        ("\x00\x00\x00", True),  # NULs are dropped, as from the text: an empty term
        ("%_\\", False),
    ],
)
async def test_any_text_is_a_literal_substring(
    sqlite_store: Store, value: str, matches: bool
) -> None:
    """Quotes, FTS5 operators, GLOB and LIKE wildcards in a term are matched as written in
    indexed mail, never taken as syntax (nor raising); NULs are dropped."""
    new = await add(sqlite_store, message("Odd", 'q"uote *?[x] NEAR(a b) ^abc AND or ǅemal'))
    await indexer(sqlite_store).catch_up()
    page = await sqlite_store.messages.page(0, 50, Filter(query=Query((Term(Field.TEXT, value),))))
    assert [m.id for m in page.messages] == ([new] if matches else [])


async def test_a_deleted_message_leaves_the_index(sqlite_store: Store) -> None:
    """Deleting an indexed message hides it from search at once; the indexer then takes
    it out of the index, and the index matches the stored text again."""
    keep = await add(sqlite_store, message("Invoice 1", "pay the invoice"))
    gone = await add(sqlite_store, message("Invoice 2", "pay the invoice"))
    await indexer(sqlite_store).catch_up()
    await sqlite_store.delete_messages([gone])
    assert await scalar(sqlite_store, "SELECT count(*) FROM message_fts_gone") == 1
    assert await found(sqlite_store, "invoice") == [keep]
    await indexer(sqlite_store).catch_up()
    assert await scalar(sqlite_store, "SELECT count(*) FROM message_fts_gone") == 0
    assert await found(sqlite_store, "invoice") == [keep]
    await check_index(sqlite_store)


async def test_a_reused_rowid_is_not_taken_for_indexed(sqlite_store: Store) -> None:
    """SQLite gives the rowid of a deleted last row to the next row: that row counts as
    not yet indexed, so it is found, and the old text under that rowid is not."""
    first = await add(sqlite_store, message("Alpha", "common words"))
    last = await add(sqlite_store, message("Bravo", "zebracrossing"))
    await indexer(sqlite_store).catch_up()
    rowid = await watermark(sqlite_store)
    await sqlite_store.delete_messages([last])
    assert await watermark(sqlite_store) == rowid - 1
    new = await add(sqlite_store, message("Charlie", "elephantine"))
    assert await scalar(sqlite_store, "SELECT max(rowid) FROM message_text") == rowid
    assert await found(sqlite_store, "zebracross") == []
    assert await found(sqlite_store, "elephant") == [new]
    assert await found(sqlite_store, "common") == [first]
    await indexer(sqlite_store).catch_up()
    assert await found(sqlite_store, "zebracross") == []
    assert await found(sqlite_store, "elephant") == [new]
    await check_index(sqlite_store)


async def test_the_indexer_carries_on_after_a_restart(sqlite_url: str) -> None:
    """The watermark is in the database: a new process indexes only what is left."""
    async with open_store(sqlite_url) as store:
        for i in range(5):
            await add(store, message(f"Report {i}", "monthly numbers"))
        assert (await indexer(store).step(budget=1, batch=2)).indexed == 2
    async with open_store(sqlite_url) as store:
        assert await indexer(store).pending()
        assert await indexer(store).catch_up() == 3
        assert not await indexer(store).pending()
        assert len(await found(store, "monthly numb")) == 5
        await check_index(store)


async def test_two_processes_index_one_file_together(sqlite_url: str) -> None:
    """Two relays on one SQLite file indexing at the same time index each row once: the
    watermark is read and moved under the write lock."""
    async with open_store(sqlite_url) as one, open_store(sqlite_url) as two:
        for i in range(40):
            await add(one if i % 2 else two, message(f"Shared {i}", "both processes"))
        counts = await asyncio.gather(indexer(one).catch_up(), indexer(two).catch_up())
        assert sum(counts) == 40
        assert len(await found(two, "both proc")) == 40
        await check_index(one)


async def test_each_write_transaction_is_short(sqlite_store: Store) -> None:
    """With its time budget spent, the indexer commits after one row: a message that
    arrives meanwhile waits for one row's indexing at most, never for a whole backlog."""
    for i in range(3):
        await add(sqlite_store, message(f"Note {i}", "body " * 1000))
    steps = []
    while await indexer(sqlite_store).pending():
        steps.append((await indexer(sqlite_store).step(budget=0)).indexed)
    assert steps == [1, 1, 1]


async def test_ingest_in_progress_keeps_the_indexer_off(sqlite_store: Store) -> None:
    """While a message is waiting for or inside its group commit, the group commit says
    it has been idle for no time at all: the indexer does not take the write lock then."""
    adding = asyncio.create_task(add(sqlite_store, message("Ping", "in flight")))
    await asyncio.sleep(0)  # the task hands its message over and waits for the commit
    assert sqlite_store.committer.idle_for() == 0
    await adding
    assert sqlite_store.committer.idle_for() > 0


async def test_the_running_indexer_indexes_new_mail_by_itself(sqlite_store: Store) -> None:
    """Started (as `relay serve` starts it), the indexer indexes mail once ingest has
    been quiet, woken by the group commit, and stops cleanly."""
    running = Indexer(sqlite_store.db, sqlite_store.committer, idle=0.05)
    running.start()
    try:
        await add(sqlite_store, message("Ping", "freshly arrived"))
        await asyncio.wait_for(running.caught_up.wait(), 20)
        assert await watermark(sqlite_store) == 1
        assert len(await found(sqlite_store, "freshly")) == 1
    finally:
        await running.stop()


async def test_upgrade_from_0003_indexes_the_mail_already_there(db_url: str) -> None:
    """Revision 0004 on a database holding mail: search works at once (the mail is
    scanned until the indexer has been through it), and the downgrade removes the index."""
    store = Store(StorageConfig(url=db_url))
    try:
        await store.db.upgrade(BEFORE)
        ids = [await add_old(store, f"Invoice {i}") for i in range(3)]
        await store.db.upgrade()
        assert await found(store, "nvoice") == ids[::-1]
        if store.indexer is not None:
            assert await watermark(store) == 0
            assert await store.indexer.catch_up() == 3
            assert await found(store, "nvoice") == ids[::-1]
            await check_index(store)
        elif not store.db.is_mysql:  # MySQL has no index for it: search scans
            assert await pg_index(store)
        await store.db.downgrade(BEFORE)
        assert not await pg_index(store)
        assert not {t for t in await tables(store) if t.startswith("message_fts")}
        await store.db.upgrade()
        assert await found(store, "nvoice") == ids[::-1]
    finally:
        await store.close()


async def add_old(store: Store, subject: str) -> str:
    """Store a message as the SMTP handler would, on an older schema (Messages.add names
    only the columns it fills; uncompressed, as then)."""
    new = new_message(["a@example.com"], raw=message(subject, "text"))
    await store.messages.add(new, compress=False)
    return new.id


async def pg_index(store: Store) -> bool:
    """Whether PostgreSQL's trigram index on message_text exists (False on SQLite, MySQL)."""
    if store.db.is_sqlite or store.db.is_mysql:
        return False
    return bool(
        await scalar(
            store, "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_message_text_trgm'"
        )
    )


async def tables(store: Store) -> set[str]:
    """Names of the tables in the store's database."""
    async with store.db.reader.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
