"""Engines for SQLite and PostgreSQL, with the care SQLite needs; the schema's migrations;
NOTIFY of committed changes.

SQLite pragmas, on every connection, and why:
- `journal_mode = WAL`: readers never block the writer nor it them, and a commit appends
  its pages to one file, so it costs one sequential write and one fsync;
- `synchronous = FULL` by default: the WAL is fsynced at every commit, so a message that
  got its 250 survives a power cut, as in Postfix (which fsyncs its queue file before
  replying). The group commit's own connection runs NORMAL, and the group commit fsyncs
  the WAL itself before any 250 (relay/store/batch.py): the same promise, but the next
  batch is written while the disk syncs the last one. NORMAL still syncs at checkpoints,
  so the WAL is never reused before the database file holds what it held;
  `sqlite_synchronous = "normal"` (opt-in) gives up the sync before the reply. The
  delivery queue's connection (`queue_write`) runs NORMAL whatever the setting: a claim,
  a lease or a result lost to a power cut can only send a message again (at-least-once),
  never lose one, and the next group commit's sync or checkpoint makes them durable;
- `busy_timeout`: the process has three writer connections (this module's `writer`, for
  the UI and the API, the delivery queue's, and the group commit's) and other processes
  may open the file: a writer waits for the lock instead of failing with "database is
  locked";
- `foreign_keys = ON`: recipients and raw bytes cannot outlive their message.
Writers open their transactions with `BEGIN IMMEDIATE`, so they queue for the lock at
the start instead of failing at their first write. Page size, cache size and the
checkpoint interval (1000 pages) are SQLite's defaults; checkpoints run in the thread of
the connection that commits past the interval, never on the event loop.

PostgreSQL: one pool (after a database restart, the first statement on a dead connection
fails and the whole pool is replaced); writers announce what they committed with NOTIFY
inside their transaction, and relay.store.notices hears the other processes'. MySQL: one
pool too (relay.store.mysql); announcements go to change_log (relay.store.changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from relay.config import StorageConfig
from relay.errors import StoreError
from relay.store import migrate, mysql
from relay.store.changes import record
from relay.store.migrate import SchemaState
from relay.store.notices import CHANNEL, payloads
from relay.store.sqlite import sqlite_engine, sqlite_setup

log = logging.getLogger(__name__)

T = TypeVar("T")

_SQLALCHEMY_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func")
"""Connection parameters the SQLAlchemy asyncpg dialect takes that asyncpg itself does not."""


def _server_engine(url: URL, storage: StorageConfig, is_mysql: bool) -> AsyncEngine:
    """MySQL's pool (relay.store.mysql); PostgreSQL's, without pre-ping (three round trips
    a checkout): a dead connection fails once, and SQLAlchemy replaces the whole pool."""
    if is_mysql:
        return mysql.engine(url, storage)
    return create_async_engine(url, pool_size=storage.pool_size, max_overflow=storage.pool_size)


def _file_sizes(path: str) -> int:
    """Bytes of a SQLite database file and its write-ahead log."""
    return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))


class Database:
    """The reader and writer engines of one database; the only owner of connections."""

    def __init__(self, storage: StorageConfig) -> None:
        self.storage = storage
        self.url = make_url(storage.url)
        self.dialect = self.url.get_backend_name()
        """The database's kind as SQLAlchemy names it: sqlite, postgresql, mysql, mariadb."""
        self.is_sqlite = self.dialect == "sqlite"
        self.is_mysql = mysql.is_mysql(self.dialect)
        self.origin = secrets.token_hex(8)
        """Tags this process's NOTIFY payloads, so that it does not hear itself twice."""
        if self.is_sqlite:
            if self.url.database in (None, "", ":memory:"):
                raise StoreError("SQLite needs a file path: sqlite+aiosqlite:///path/to/relay.db")
            self.writer = sqlite_engine(self.url, storage, "BEGIN IMMEDIATE", pool_size=1)
            self.reader = sqlite_engine(self.url, storage, "BEGIN", pool_size=4)
            # The group commit's own connection, used from its own thread: a whole batch
            # costs one hop between threads instead of several per statement. With "full"
            # its commits leave the WAL to be synced by the group commit's other thread
            # (NORMAL), which keeps checkpoints synced and lets the next batch be written
            # while the last one is synced; no 250 goes out before that sync.
            self.sync_wal = storage.sqlite_synchronous == "full"
            self.wal_path: str | None = f"{self.url.database}-wal"
            self.commit_engine: Engine | None = create_engine(
                self.url.set(drivername="sqlite"),
                pool_size=3,  # the commit thread keeps one; the search indexer; inspection
                max_overflow=0,
                # One thread at a time uses each. No statement cache: a cached INSERT keeps
                # its last bound values (a whole large message, twice over) until reused;
                # preparing four INSERTs per batch costs microseconds.
                connect_args={"check_same_thread": False, "cached_statements": 0},
            )
            sqlite_setup(self.commit_engine, storage, "BEGIN IMMEDIATE", "normal")
            # The delivery queue's own connection and thread (`queue_write`): a claim or a
            # result is one hop between threads instead of several per statement, and its
            # commit waits for no sync (NORMAL), so no fsync stands between a 250 and the
            # delivery, nor holds the write lock.
            self.queue_engine: Engine | None = create_engine(
                self.url.set(drivername="sqlite"),
                pool_size=1,
                max_overflow=0,
                connect_args={"check_same_thread": False},  # used by one thread at a time
            )
            sqlite_setup(self.queue_engine, storage, "BEGIN IMMEDIATE", "normal")
        else:
            self.writer = _server_engine(self.url, storage, self.is_mysql)
            self.reader = self.writer
            self.commit_engine = None
            self.queue_engine = None
            self.sync_wal = False  # PostgreSQL syncs its own commits
            self.wal_path = None
        self._queue_thread: ThreadPoolExecutor | None = None
        self._change_log = False
        self._version: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the data_version connection and the lock files
        self.take_turns = False
        """SQLite: several processes ingest into this file (`write_turn`)."""
        self._lock_files = threading.local()
        self._lock_fds: list[int] = []

    @property
    def display_url(self) -> str:
        """The URL without its password, for logs."""
        return self.url.render_as_string(hide_password=True)

    def listen_params(self) -> dict[str, Any]:
        """asyncpg.connect() keywords for a connection of its own (PostgreSQL LISTEN)."""
        _, params = self.writer.dialect.create_connect_args(self.url)
        for key in _SQLALCHEMY_ONLY:
            params.pop(key, None)
        return dict(params)

    async def schema_state(self) -> SchemaState:
        """The schema revision the database records, and the one this relay needs."""
        async with self.reader.connect() as conn:
            return await conn.run_sync(migrate.state)

    async def schema_version(self) -> str | None:
        """The recorded schema revision, or None on an empty database."""
        return (await self.schema_state()).current

    async def upgrade(self, target: str = "head") -> SchemaState:
        """Run the migrations up to `target` in one transaction; return the state before."""
        await self._make_folder()
        return await self._migrate(migrate.upgrade, target)

    async def _make_folder(self) -> None:
        """Make the folder of a SQLite file that is to be created (`--db ./data/relay.db`
        in a fresh checkout), as SQLite itself makes only the file."""
        if self.is_sqlite and self.url.database:
            folder = os.path.dirname(self.url.database)
            if folder:
                await asyncio.to_thread(os.makedirs, folder, exist_ok=True)

    async def downgrade(self, target: str) -> SchemaState:
        """Undo migrations down to `target` in one transaction (tests, and emergencies:
        downgrades drop what later revisions added); return the state before."""
        return await self._migrate(migrate.downgrade, target)

    async def _migrate(
        self, step: Callable[[Connection, str], SchemaState], target: str
    ) -> SchemaState:
        if self.is_sqlite:
            # Foreign keys off: rebuilding a table (Alembic's batch mode) must not cascade.
            engine = sqlite_engine(
                self.url, self.storage, "BEGIN IMMEDIATE", pool_size=1, foreign_keys=False
            )
        else:
            engine = self.writer
        try:
            async with engine.connect() as conn:
                try:
                    async with conn.begin():
                        return await conn.run_sync(step, target)
                finally:  # MySQL's lock goes only once all is committed
                    await conn.run_sync(migrate.unlock)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"could not migrate the database schema: {exc}") from exc
        finally:
            if engine is not self.writer:
                await engine.dispose()

    async def prepare(self) -> SchemaState:
        """Make sure the schema is the one this relay needs before anything else runs.

        An empty database gets the schema at once (first start); an out-of-date one is
        upgraded with `auto_migrate`, else this stops with the command to run. A revision
        this relay does not know (a newer relay migrated the database) stops it too.
        """
        await self._make_folder()
        found = await self.schema_state()
        if self.is_mysql:  # DDL is not transactional there: wait for a migration under way
            await mysql.check_charset(self.reader)
            found = found if found.up_to_date else await self._migrate(migrate.settled, "")
        if found.up_to_date:
            return found
        if found.current is not None and not found.known:
            raise StoreError(
                f"database schema is at revision {found.current}, which this relay does not"
                f" know (it knows up to {found.head}): is a newer relay using this database?"
            )
        if not (found.empty or self.storage.auto_migrate):
            if found.current is None:
                raise StoreError(
                    "the database has tables but no schema revision: it was not made by relay"
                )
            raise StoreError(
                f"database schema is at revision {found.current}, this relay needs"
                f" {found.head}: run `relay db upgrade` (or set [storage] auto_migrate = true)"
            )
        before = await self.upgrade()  # finds nothing to do if another process just did it
        if before.empty:
            log.info("created the database schema at revision %s", found.head)
        elif not before.up_to_date:
            log.info(
                "upgraded the database schema from revision %s to %s",
                before.describe(),
                found.head,
            )
        return await self.schema_state()

    async def notify(self, conn: AsyncConnection, kind: str, ids: Collection[str]) -> None:
        """Tell other processes, at commit, that `ids` changed (PostgreSQL NOTIFY, MySQL's
        change_log; not SQLite).

        Call it inside the transaction that makes the change: they hear of it when (and
        only if) that transaction commits.
        """
        if self.is_sqlite or not ids:
            return
        await conn.run_sync(self.notify_sync, kind, ids)

    def notify_sync(self, conn: Connection, kind: str, ids: Collection[str]) -> None:
        """`notify` inside a blocking transaction (`queue_write`'s, or through `run_sync`)."""
        if self.is_sqlite or not ids:
            return
        if self.is_mysql:
            self._change_log = record(conn, payloads(self.origin, kind, ids), self._change_log)
            return
        for payload in payloads(self.origin, kind, ids):
            conn.execute(select(func.pg_notify(CHANNEL, payload)))

    async def notify_changes(
        self, conn: AsyncConnection, message_ids: Collection[str], due: bool = False
    ) -> None:
        """`notify` that these messages changed ("status"), and with `due` that they have
        recipients to send now ("due")."""
        if not self.is_sqlite:
            await conn.run_sync(self.notify_changes_sync, message_ids, due)

    def notify_changes_sync(
        self, conn: Connection, message_ids: Collection[str], due: bool = False
    ) -> None:
        """`notify_changes` inside a blocking transaction."""
        ids = sorted(set(message_ids))
        self.notify_sync(conn, "status", ids)
        if due:
            self.notify_sync(conn, "due", ids)

    async def queue_write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one write transaction of the delivery queue and return its result.

        SQLite: on the queue's own connection, in a thread of its own, committed without a
        sync (see the module's docstring). Else on the writer pool (`work` runs in
        SQLAlchemy's greenlet), again when MySQL picked it as a deadlock's victim.
        """
        if self.queue_engine is None:
            return await mysql.retry_deadlocks(self.writer, work)
        if self._queue_thread is None:
            self._queue_thread = ThreadPoolExecutor(1, "relay-queue")
        return await asyncio.get_running_loop().run_in_executor(
            self._queue_thread, self._queue_transaction, work
        )

    def _queue_transaction(self, work: Callable[[Connection], T]) -> T:
        assert self.queue_engine is not None
        with self.write_turn(), self.queue_engine.begin() as conn:
            return work(conn)

    @contextlib.contextmanager
    def write_turn(self) -> Iterator[None]:
        """SQLite, in a thread of its own: wait for the other busy writers of the file (the
        group commits and delivery queues of every relay process on it) with a lock the
        kernel hands over at once, then write. SQLite's own wait for its write lock
        (`busy_timeout`) polls with sleeps of up to 100 ms, which idled processes that
        ingest side by side (`[server] smtp_processes`). Other writers (the web UI, the
        CLI) still wait in SQLite, as before; the order is always this lock, then
        SQLite's, so the two cannot deadlock. A no-op on PostgreSQL, and unless
        `take_turns` (relay.app sets it when SMTP helpers run)."""
        if not (self.is_sqlite and self.take_turns):
            yield
            return
        fd: int | None = getattr(self._lock_files, "fd", None)
        if fd is None or fd not in self._lock_fds:  # first use in this thread, or reopened
            path = f"{self.url.database}-writers"
            fd = self._lock_files.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            with self._lock:
                self._lock_fds.append(fd)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    async def change_token(self) -> object | None:
        """A value that differs whenever a transaction has committed to the database since
        it was last read, by any connection of any process; None when it cannot be told.

        SQLite: `PRAGMA data_version` on a connection of its own that never writes (it
        counts every other connection's commits). PostgreSQL: the WAL insert position,
        which every commit that wrote anything moves before it is visible (the whole
        cluster's: a commit to another database only costs a recount); MySQL: InnoDB's
        redo log position, the same way.
        """
        if self.is_sqlite:
            return await asyncio.to_thread(self._sqlite_data_version)
        try:
            async with self.reader.connect() as conn:
                if self.is_mysql:  # InnoDB's redo log position, as on PostgreSQL
                    return (await conn.execute(text(mysql.LSN))).first()
                result = await conn.execute(select(func.pg_current_wal_insert_lsn()))
                return str(result.scalar_one())
        except DBAPIError:  # a standby in recovery has no insert position
            return None

    def _sqlite_data_version(self) -> int:
        with self._lock:
            if self._version is None:
                self._version = sqlite3.connect(
                    str(self.url.database), check_same_thread=False, isolation_level=None
                )
            return int(self._version.execute("PRAGMA data_version").fetchone()[0])

    async def ping(self) -> None:
        """Run a trivial query; raises when the database cannot be reached."""
        async with self.reader.connect() as conn:
            await conn.execute(select(1))

    async def size(self) -> int:
        """Bytes the database takes: the SQLite file with its WAL, or PostgreSQL's own figure."""
        if self.is_sqlite:
            return await asyncio.to_thread(_file_sizes, str(self.url.database))
        query = mysql.SIZE if self.is_mysql else "SELECT pg_database_size(current_database())"
        async with self.reader.connect() as conn:
            return int((await conn.execute(text(query))).scalar_one())

    async def close(self) -> None:
        """Close every connection."""
        if self.commit_engine is not None:
            self.commit_engine.dispose()
        if self._queue_thread is not None:
            assert self.queue_engine is not None
            await asyncio.get_running_loop().run_in_executor(
                self._queue_thread, self.queue_engine.dispose
            )
            self._queue_thread.shutdown()
            self._queue_thread = None
        with self._lock:
            if self._version is not None:
                self._version.close()
                self._version = None
            for fd in self._lock_fds:
                os.close(fd)
            self._lock_fds.clear()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
