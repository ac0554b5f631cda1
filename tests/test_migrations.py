"""Alembic migrations on both backends: first start, out-of-date, auto_migrate, `relay db`."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from relay.config import StorageConfig
from relay.errors import StoreError
from relay.store import Database, Store, migrate
from relay.store.schema import metadata
from tests.queueing import new_message, open_store, recipients

ROOT = Path(__file__).resolve().parent.parent
OLD = "0001"


async def at_revision(db_url: str, revision: str) -> None:
    """Give an empty database the schema as it was at `revision`."""
    db = Database(StorageConfig(url=db_url))
    try:
        await db.upgrade(revision)
    finally:
        await db.close()


async def run(db_url: str, sql: str) -> None:
    """Run one statement on the database and commit."""
    db = Database(StorageConfig(url=db_url))
    if db.is_mysql:  # a reserved word there
        sql = sql.replace(" read)", " `read`)")
    try:
        async with db.writer.begin() as conn:
            await conn.execute(text(sql))
    finally:
        await db.close()


async def tables(store: Store) -> set[str]:
    """Names of the tables in the store's database."""
    async with store.db.reader.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


def relay_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m relay ARGS` and return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


async def test_first_start_creates_the_schema_and_records_its_revision(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An empty database gets the whole schema on first open, with Alembic's revision."""
    caplog.set_level(logging.INFO, logger="relay.store.database")
    store = Store(StorageConfig(url=db_url))
    try:
        assert (await store.db.schema_state()).empty
        await store.open()
        assert await store.db.schema_version() == migrate.head()
        assert {"message", "recipient", "alembic_version"} <= await tables(store)
        assert "schema_info" not in await tables(store)
    finally:
        await store.close()
    assert f"created the database schema at revision {migrate.head()}" in caplog.messages


def _differences(conn: Connection) -> list[object]:
    return list(
        compare_metadata(
            MigrationContext.configure(conn, opts={"include_name": migrate.described}), metadata
        )
    )


async def test_migrations_build_exactly_the_tables_the_code_queries(db_url: str) -> None:
    """After the migrations, the database matches schema.py: no table, column or index
    differs (a change to schema.py without its migration fails here)."""
    await at_revision(db_url, "head")
    db = Database(StorageConfig(url=db_url))
    try:
        async with db.reader.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await db.close()


async def test_out_of_date_schema_stops_with_the_command_to_run(db_url: str) -> None:
    """A database at an older revision is refused, naming `relay db upgrade`; untouched."""
    await at_revision(db_url, OLD)
    store = Store(StorageConfig(url=db_url))
    try:
        with pytest.raises(StoreError) as error:
            await store.open()
        assert await store.db.schema_version() == OLD
    finally:
        await store.close()
    assert str(error.value) == (
        f"database schema is at revision {OLD}, this relay needs {migrate.head()}:"
        " run `relay db upgrade` (or set [storage] auto_migrate = true)"
    )


async def test_auto_migrate_upgrades_and_keeps_the_mail(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With auto_migrate, an old schema holding mail is upgraded at open; the mail stays."""
    caplog.set_level(logging.INFO, logger="relay.store.database")
    await at_revision(db_url, OLD)
    old = Store(StorageConfig(url=db_url))
    new = new_message(["a@example.com"])
    try:
        # Messages.add names only the columns it fills, so it can write to the old schema
        # (the group commit's compiled insert names every column of the current one).
        await old.messages.add(new, compress=False)
    finally:
        await old.close()
    store = Store(StorageConfig(url=db_url, auto_migrate=True))
    try:
        await store.open()
        assert await store.db.schema_version() == migrate.head()
        assert await store.messages.raw(new.id) == new.raw
    finally:
        await store.close()
    assert f"upgraded the database schema from revision {OLD} to {migrate.head()}" in (
        caplog.messages
    )


@pytest.mark.parametrize(("version", "revision"), [(2, "0001"), (3, "0002")])
async def test_a_database_made_before_migrations_is_adopted(
    db_url: str, version: int, revision: str
) -> None:
    """A database with a pre-Alembic relay's `schema_info` (version 2 or 3) and no Alembic
    revision is taken as the revision it matches and upgraded; its mail stays."""
    await at_revision(db_url, revision)
    await run(db_url, "DROP TABLE alembic_version")
    await run(db_url, f"INSERT INTO schema_info (id, version, created_at) VALUES (1, {version}, 0)")
    legacy = Store(StorageConfig(url=db_url))
    new = new_message(["a@example.com"])
    try:
        await legacy.messages.add(new, compress=False)
        state = await legacy.db.schema_state()
        assert (state.current, state.legacy, state.up_to_date) == (revision, True, False)
        await legacy.db.upgrade()
        assert await legacy.db.schema_version() == migrate.head()
        assert "schema_info" not in await tables(legacy)
        assert await legacy.messages.raw(new.id) == new.raw
    finally:
        await legacy.close()


async def test_downgrade_then_upgrade_keeps_the_mail(db_url: str) -> None:
    """Every revision can be undone and done again on both backends; stored mail and its
    recipients survive the round trip (SQLite rebuilds tables without cascading deletes)."""
    async with open_store(db_url) as store:
        new = new_message(["a@example.com", "b@example.com"])
        await store.add_message(new)
        await store.db.downgrade("base")
        assert (await store.db.schema_state()).empty
        await store.db.upgrade()
        await store.add_message(new)
        await store.db.downgrade(OLD)
        assert await store.db.schema_version() == OLD
        await store.db.upgrade()
        assert await store.db.schema_version() == migrate.head()
        assert set(await recipients(store, new.id)) == {"a@example.com", "b@example.com"}


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "UPDATE alembic_version SET version_num = '9999'",
            "database schema is at revision 9999, which this relay does not know",
        ),
        ("DROP TABLE alembic_version", "the database has tables but no schema revision"),
    ],
)
async def test_a_schema_this_relay_did_not_make_is_refused(
    db_url: str, sql: str, expected: str
) -> None:
    """A revision from a newer relay, or tables without a revision, stop the open."""
    await at_revision(db_url, "head")
    await run(db_url, sql)
    store = Store(StorageConfig(url=db_url, auto_migrate=True))
    try:
        with pytest.raises(StoreError, match=expected):
            await store.open()
    finally:
        await store.close()


async def test_processes_starting_together_create_the_schema_once(db_url: str) -> None:
    """Several stores opening one empty database at once, or while another creates the
    schema, all succeed: one creates it while the others wait (PostgreSQL advisory lock,
    SQLite BEGIN IMMEDIATE, MySQL's named lock, held until the last revision committed)."""
    stores = [Store(StorageConfig(url=db_url)) for _ in range(8)]

    async def open_after(store: Store, delay: float) -> None:
        await asyncio.sleep(delay)
        await store.open()

    try:
        # The later ones find the schema half made (MySQL's DDL commits as it goes).
        await asyncio.gather(*(open_after(s, n * 0.08) for n, s in enumerate(stores)))
        versions = {await s.db.schema_version() for s in stores}
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    assert versions == {migrate.head()}


async def test_sqlite_enters_wal_while_another_connection_writes(sqlite_url: str) -> None:
    """Opening a database still in rollback-journal mode while another connection holds
    its write lock waits for that writer, then switches to WAL, instead of failing with
    "database is locked" (what SQLite answers at once when several processes first open
    a new file together)."""
    path = sqlite_url.removeprefix("sqlite+aiosqlite:///")
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (a)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.3, other.execute, ("COMMIT",))
    release.start()
    db = Database(StorageConfig(url=sqlite_url))
    try:
        async with db.reader.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
    finally:
        release.join()
        other.close()
        await db.close()
    assert mode == "wal"


def test_relay_db_current_upgrade_and_serve(db_url: str, tmp_path: Path) -> None:
    """`relay serve` on an old schema stops with one line naming `relay db upgrade`;
    `relay db current` says it is old (exit 1); `relay db upgrade` fixes it (exit 0)."""
    asyncio.run(at_revision(db_url, OLD))
    config = tmp_path / "relay.toml"
    config.write_text(
        '[server]\nlog_level = "warning"\n[[listener]]\naddress = "127.0.0.1:0"\n'
        '[web]\naddress = "127.0.0.1:0"\n'
    )
    served = relay_cli("serve", "--config", str(config), "--db", db_url, cwd=tmp_path)
    assert served.returncode == 1
    lines = served.stderr.strip().splitlines()
    assert len(lines) == 1, served.stderr
    assert lines[0].endswith(
        f"database schema is at revision {OLD}, this relay needs {migrate.head()}:"
        " run `relay db upgrade` (or set [storage] auto_migrate = true)"
    )
    current = relay_cli("db", "current", "--config", str(config), "--db", db_url, cwd=tmp_path)
    assert current.returncode == 1
    assert f"schema at revision {OLD} (this relay needs {migrate.head()})" in current.stdout
    upgraded = relay_cli("db", "upgrade", "--config", str(config), "--db", db_url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"schema upgraded from revision {OLD} to {migrate.head()}" in upgraded.stdout
    again = relay_cli("db", "current", "--config", str(config), "--db", db_url, cwd=tmp_path)
    assert again.returncode == 0
    assert f"schema at revision {migrate.head()} (up to date)" in again.stdout


def test_draft_writes_the_next_revision(tmp_path: Path) -> None:
    """`make migration` drafts revision head+1 after head; with schema.py unchanged it is
    empty."""
    path = migrate.draft("nothing changed", tmp_path)
    source = path.read_text(encoding="utf-8")
    following = f"{int(migrate.head()) + 1:04d}"
    assert path.parent == tmp_path and path.name == f"m{following}_nothing_changed.py"
    assert f"revision = '{following}'" in source
    assert f"down_revision = '{migrate.head()}'" in source
    assert "op." not in source


@pytest.mark.slow
def test_the_built_package_finds_its_migrations(tmp_path: Path) -> None:
    """What setuptools builds for a wheel holds the migrations: that copy of relay, run
    from elsewhere, creates a database with `relay db upgrade`."""
    build = tmp_path / "build"
    built = subprocess.run(
        [sys.executable, "-c",
         "import setuptools, sys; sys.argv[1:1] = ['-q', 'build_py', '--build-lib'];"
         " setuptools.setup()", str(build)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert (build / "relay/store/migrations/script.py.mako").is_file()
    env = {"PYTHONPATH": str(build), "PATH": "/usr/bin:/bin"}
    where = subprocess.run(
        [sys.executable, "-c", "import relay; print(relay.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(build))
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    upgraded = subprocess.run(
        [sys.executable, "-m", "relay", "db", "upgrade", "--db", url],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"schema upgraded from revision none (empty) to {migrate.head()}" in upgraded.stdout


async def test_revision_0006_adds_the_destinations_state_to_mail_already_queued(
    db_url: str,
) -> None:
    """A queue made at revision 0005 upgrades to destination_state: its queued mail is
    then claimed through a rate limit, which the new table remembers."""
    async with open_store(db_url) as store:
        await store.db.downgrade("0005")
        assert "destination_state" not in await tables(store)
        waiting = [new_message([f"u{i}@example.com"], received_at=1000.0) for i in range(3)]
        for new in waiting:
            # names only the columns of the old schema
            await store.messages.add(new, compress=False)
        await store.db.upgrade()
        batch = await store.queue.claim_batch("w", 1000.0, 300.0, 10, rate=lambda _: 2)
    assert (len(batch.claims), batch.picked) == (2, 3)
    assert [(s.key, s.tokens, s.booked_until) for s in batch.states] == [
        ("relay:smarthost", 0.0, 1030.0)
    ]


async def test_revision_0007_marks_every_earlier_attempt_as_real(db_url: str) -> None:
    """attempt.injected (chaos drills) comes in false for the attempts already recorded,
    on both backends, and goes away on downgrade."""
    await at_revision(db_url, "0006")
    await run(
        db_url,
        "INSERT INTO message (id, received_at, mail_from, size, subject, from_header,"
        " to_header, cc_header, message_id_header, attachments, snippet, listener, peer,"
        " helo, tls, read) VALUES ('01J0000000000000000000TEST', 1.0, 'a@example.com', 1,"
        " '', '', '', '', '', 0, '', 'smtp', '127.0.0.1', '', false, false)",
    )
    await run(
        db_url,
        "INSERT INTO recipient (id, message_id, address, address_key, domain, route, status,"
        " attempts, updated_at) VALUES (1, '01J0000000000000000000TEST', 'b@example.org',"
        " 'b@example.org', 'example.org', 'relay:up', 'deferred', 1, 1.0)",
    )
    await run(
        db_url,
        "INSERT INTO attempt (recipient_id, started_at, duration, host, code, text)"
        " VALUES (1, 1.0, 0.5, 'mx.example.org:25', 451, 'try later')",
    )
    db = Database(StorageConfig(url=db_url))
    await db.upgrade()
    await db.close()
    async with open_store(db_url) as store:
        [attempt] = await store.timeline.attempts("01J0000000000000000000TEST")
        assert (attempt.code, attempt.injected) == (451, False)
        await store.db.downgrade("0006")
        async with store.db.reader.connect() as conn:
            columns = await conn.run_sync(lambda c: inspect(c).get_columns("attempt"))
        assert "injected" not in {column["name"] for column in columns}


def test_the_head_read_from_the_revision_files_is_alembics() -> None:
    """The head revision found from the files' revision lines (no Alembic import) is the
    one Alembic finds."""
    migrate.head.cache_clear()
    assert migrate.head() == migrate.scripts().get_current_head()
