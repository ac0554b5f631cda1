"""What only MySQL and MariaDB need: raw bytes in chunks under `max_allowed_packet`, the
change_log that stands in for LISTEN/NOTIFY, utf8mb4 with a binary collation, a clear
stop on a database with another character set; and the retry of a deadlock's victim,
which PostgreSQL shares."""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from relay.config import ListenerConfig, StorageConfig
from relay.errors import StoreError
from relay.query import parse
from relay.status import Status
from relay.store import Database, Filter, Store, migrate
from relay.store.chunks import CHUNK
from relay.store.rawzip import pack
from relay.store.schema import change_log, message_raw_chunk
from tests import mysql
from tests.queueing import new_message
from tests.support import RunningRelay, make_config
from tests.test_large import LIMIT, SIZE, big_message
from tests.test_rawzip import noise

pytestmark = pytest.mark.mysql


async def _packet_limit(store: Store) -> int:
    async with store.db.reader.connect() as conn:
        return int((await conn.execute(text("SELECT @@max_allowed_packet"))).scalar_one())


async def _chunks(store: Store, message_id: str) -> int:
    async with store.db.reader.connect() as conn:
        query = select(func.count()).where(message_raw_chunk.c.message_id == message_id)
        return int((await conn.execute(query)).scalar_one())


async def test_a_40_mb_message_is_stored_in_chunks_and_read_back_whole(mysql_url: str) -> None:
    """40 MB that compress to 31 MB, more than the server's max_allowed_packet (left at its
    default), go in as 1 MiB chunks of the compressed stream and come back byte for byte
    for delivery; deleting it takes the chunks."""
    store = Store(StorageConfig(url=mysql_url))
    await store.open()
    try:
        assert await _packet_limit(store) < SIZE  # else this test proves nothing
        raw = noise(SIZE)  # compressed, still over max_allowed_packet
        new = new_message(["b@example.net"], raw=raw, status=Status.CAPTURED)
        await store.add_message(new)
        assert await _chunks(store, new.id) == -(-len(pack(raw).data) // CHUNK) - 1 > 20
        assert await store.raw_to_send(new.id) == raw  # not in memory: read from the chunks
        heads = await store.messages.heads([new.id])
        assert raw.startswith(heads[new.id]) and len(heads[new.id]) == 16 * 1024
        assert await store.delete_messages([new.id]) == [new.id]
        assert await _chunks(store, new.id) == 0
    finally:
        await store.close()


@pytest.mark.slow
def test_a_40_mb_message_is_shown_whole_over_http(mysql_url: str) -> None:
    """A 40 MB message captured over SMTP into MySQL: the API serves its raw bytes whole
    and the web page shows it."""
    raw = big_message()
    listening = ListenerConfig(address="127.0.0.1:0", max_message_size=LIMIT)
    running = RunningRelay(make_config(mysql_url, listener=(listening,))).start()
    try:
        running.call(_raise_limit(running))
        with smtplib.SMTP("127.0.0.1", running.smtp_port, timeout=120) as client:
            client.sendmail("a@example.com", ["b@example.net"], raw)
        api = f"{running.web_url}/api/v1"
        listed = httpx.get(f"{api}/messages", timeout=30).json()["messages"]
        message_id = listed[0]["ID"]
        served = httpx.get(f"{api}/message/{message_id}/raw", timeout=120).content
        page = httpx.get(f"{running.web_url}/message/{message_id}", timeout=120)
    finally:
        running.stop()
    assert len(served) > len(raw) and served.endswith(raw)  # after our Received header
    assert page.status_code == 200 and "a line that needs a dot stuffed" in page.text


async def _raise_limit(running: RunningRelay) -> None:
    """Check the server's limit is below the message (the test's premise)."""
    assert await _packet_limit(running.relay.store) < SIZE


async def _open(url: str) -> Store:
    store = Store(StorageConfig(url=url, change_poll=0.02))
    await store.open()
    await store.listen()
    return store


async def _heard(store: Store, kind: str, message_id: str, within: float = 5.0) -> float:
    """Seconds until `store` publishes a `kind` event about `message_id`."""
    started = time.monotonic()
    async with asyncio.timeout(within), store.events.subscribe() as queue:
        while True:
            event = await queue.get()
            if (event.kind, event.message_id) == (kind, message_id):
                return time.monotonic() - started


async def test_another_process_hears_a_change_within_the_poll(mysql_url: str) -> None:
    """A message one store commits is heard by another on the same database (no NOTIFY:
    change_log polled), within a few poll intervals; a store never hears itself."""
    one, other = await _open(mysql_url), await _open(mysql_url)
    try:
        new = new_message(["b@example.net"])
        listening = asyncio.create_task(_heard(other, "message", new.id))
        await asyncio.sleep(0.05)
        await one.add_message(new)
        took = await listening
        assert took < 1.0
        assert one.changes is not None and one.changes.heard == 0
        assert other.changes is not None and other.changes.heard == 1
    finally:
        await one.close()
        await other.close()


async def test_a_change_committed_after_a_later_one_is_still_heard(mysql_url: str) -> None:
    """Auto-increment ids become visible at commit: a change_log row with a lower id that
    commits after a higher one (a long transaction) is heard all the same."""
    one, other = await _open(mysql_url), await _open(mysql_url)
    try:
        slow, quick = new_message(["s@example.net"]), new_message(["q@example.net"])
        heard_slow = asyncio.create_task(_heard(other, "message", slow.id))
        heard_quick = asyncio.create_task(_heard(other, "message", quick.id))
        await asyncio.sleep(0.05)
        async with one.db.writer.begin() as first:
            await one.db.notify(first, "message", [slow.id])  # the lower id, not committed
            async with one.db.writer.begin() as second:
                await one.db.notify(second, "message", [quick.id])
            await heard_quick
            await asyncio.sleep(0.2)  # several polls go past the gap
        await heard_slow
    finally:
        await one.close()
        await other.close()


async def test_the_feed_outlives_the_loss_of_its_connections(mysql_url: str) -> None:
    """Every connection to the database killed (a server restart, a proxy's idle timeout):
    the pools replace them at their next use (pre-ping), and changes are heard again."""
    one, other = await _open(mysql_url), await _open(mysql_url)
    try:
        name = mysql_url.rsplit("/", 1)[1]
        rows = await mysql.query(
            "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
            name,
        )
        assert rows
        for (thread,) in rows:
            await mysql.query(f"KILL {int(thread)}")
        new = new_message(["b@example.net"])
        listening = asyncio.create_task(_heard(other, "message", new.id))
        await asyncio.sleep(0.1)
        await one.add_message(new)
        assert await listening < 2.0
    finally:
        await one.close()
        await other.close()


LOCK = "CONCAT(%s, SHA1(%s))"
"""A database's migration lock name, as relay.store.migrate makes it, from the test's side."""


def lock_of(url: str) -> tuple[str, str]:
    """The parameters of LOCK for the database of `url`."""
    return str(migrate.LOCK_MYSQL["prefix"]), url.rsplit("/", 1)[1]


def test_a_migration_in_one_database_never_waits_for_another(mysql_url: str) -> None:
    """Named locks belong to the server, not to a database: another database's migration
    holding its lock does not hold up this one's (test suites and tenants share servers)."""

    async def migrate_while_held(other: str) -> None:
        held = Database(StorageConfig(url=other))
        try:
            async with held.writer.connect() as conn:
                await conn.run_sync(migrate._lock)  # as a migration of `other` holds it
                store = Store(StorageConfig(url=mysql_url))
                await asyncio.wait_for(store.open(), 30)  # migrates to head
                await store.close()
                await conn.run_sync(migrate.unlock)
        finally:
            await held.close()

    with mysql.fresh_database() as other:
        asyncio.run(migrate_while_held(other))


async def test_the_migration_lock_is_held_until_the_last_revision_is_committed(
    mysql_url: str,
) -> None:
    """MySQL's DDL commits as it goes, but the number of the last revision is written in
    the upgrade's own transaction: the named lock that makes other processes wait is
    released only after that commit, never before (they would read an older revision)."""
    db = Database(StorageConfig(url=mysql_url))
    try:
        async with db.writer.connect() as conn:
            async with conn.begin():
                await conn.run_sync(migrate.upgrade, "head")
                held = await mysql.query(f"SELECT IS_USED_LOCK({LOCK})", *lock_of(mysql_url))
            await conn.run_sync(migrate.unlock)
        free = await mysql.query(f"SELECT IS_FREE_LOCK({LOCK})", *lock_of(mysql_url))
    finally:
        await db.close()
    assert held[0][0] is not None
    assert free[0][0] == 1


TEXTS = [
    "Grüße aus Köln",
    "日本語の件名、テスト",
    "Привет, мир",
    "emoji 📨✉️ and a woman 🧕🏽",
    "Ελληνικά και עברית",
]


@pytest.mark.parametrize("subject", TEXTS)
async def test_text_in_every_charset_survives(mysql_url: str, subject: str) -> None:
    """Subjects and addresses beyond the Basic Multilingual Plane come back as stored
    (utf8mb4) and search finds them."""
    store = Store(StorageConfig(url=mysql_url))
    await store.open()
    try:
        raw = f"Subject: {subject}\r\nFrom: ü@example.com\r\n\r\n{subject}\r\n".encode()
        new = new_message(["ü@exämple.net"], raw=raw, status=Status.CAPTURED)
        await store.add_message(new)
        row = await store.messages.get(new.id)
        assert row is not None and row.subject == subject
        assert row.recipients[0].address == "ü@exämple.net"
        word = subject.split()[-1]
        page = await store.messages.page(0, 10, Filter(query=parse(word)))
        assert [m.id for m in page.messages] == [new.id]
    finally:
        await store.close()


async def test_text_compares_by_its_bytes(mysql_url: str) -> None:
    """A binary collation: tags that differ only by an accent are two tags (MySQL's usual
    collations would take "café" and "cafe" for one and refuse the second)."""
    store = Store(StorageConfig(url=mysql_url))
    await store.open()
    try:
        new = new_message(["b@example.net"], status=Status.CAPTURED)
        await store.add_message(new)
        await store.set_tags([new.id], ["café", "cafe"])
        row = await store.messages.get(new.id)
        assert row is not None and sorted(row.tags) == ["cafe", "café"]
    finally:
        await store.close()


def test_relay_serve_on_a_latin1_database_says_what_to_change(tmp_path: Path) -> None:
    """`relay serve` against a database made with another character set stops at once
    with a sentence naming the database and the ALTER DATABASE to run."""
    with mysql.fresh_database(charset="latin1") as url:
        result = subprocess.run(
            [sys.executable, "-m", "relay", "serve", "--db", url, "--smtp", "127.0.0.1:0",
             "--web", "127.0.0.1:0"],
            capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        )  # fmt: skip
        name = url.rsplit("/", 1)[1]
        tables = mysql.admin(f"SHOW TABLES FROM `{name}`")
    assert result.returncode != 0
    assert f"the MySQL database {name} uses the character set latin1" in result.stderr
    assert f"ALTER DATABASE `{name}` CHARACTER SET utf8mb4" in result.stderr
    assert tables == []  # nothing was created in it


async def test_a_relay_table_with_another_character_set_is_named(mysql_url: str) -> None:
    """A table of relay's converted to latin1 (by hand, or by a dump restored wrongly)
    stops the store with the table's name and the statement that fixes it."""
    store = Store(StorageConfig(url=mysql_url))
    await store.open()
    await store.close()
    name = mysql_url.rsplit("/", 1)[1]
    await mysql.query(f"ALTER TABLE `{name}`.destination_state CONVERT TO CHARACTER SET latin1")
    again = Store(StorageConfig(url=mysql_url))
    try:
        wrong = "the table destination_state of MySQL database"
        with pytest.raises(StoreError, match=wrong) as info:
            await again.open()
        assert "ALTER TABLE `destination_state` CONVERT TO CHARACTER SET utf8mb4" in str(info.value)
    finally:
        await again.close()


async def test_old_change_log_rows_are_pruned(mysql_url: str) -> None:
    """Rows older than a minute go at the next prune, so the table stays small."""
    store = await _open(mysql_url)
    try:
        async with store.db.writer.begin() as conn:
            await conn.execute(change_log.insert(), [{"at": time.time() - 120, "payload": "x"}])
        assert store.changes is not None
        store.changes._pruned = 0.0
        await store.changes.poll()
        async with store.db.reader.connect() as conn:
            left = (await conn.execute(select(func.count()).select_from(change_log))).scalar()
        assert left == 0
    finally:
        await store.close()


RAISE_DEADLOCK = {
    "mysql": "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'Deadlock found'",
    "postgresql": "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$",
}
"""A statement that fails as a deadlock's victim does, on each database."""


async def test_a_queue_transaction_chosen_as_a_deadlocks_victim_runs_again(
    shared_url: str,
) -> None:
    """Claims and results of processes sharing the queue can deadlock (InnoDB and
    PostgreSQL roll one back): the queue's transaction is run again, not lost."""
    store = Store(StorageConfig(url=shared_url))
    await store.open()
    tries: list[int] = []

    def work(conn: Connection) -> str:
        tries.append(1)
        if len(tries) < 3:
            conn.execute(text(RAISE_DEADLOCK[conn.dialect.name]))
        return "done"

    try:
        assert await store.db.queue_write(work) == "done"
    finally:
        await store.close()
    assert len(tries) == 3
