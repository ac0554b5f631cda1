"""Group commit: one transaction, and one fsync, for every message that is ready together.

A 250 promises that the message is on disk, and an fsync costs the same for one message as
for fifty. So accepted messages queue here, and one writer task commits whatever has
queued while its previous transaction was committing, in one transaction; each caller
returns only after the commit that holds its message is durable. Nothing waits on a timer:
a lone message is committed at once, and under load batches grow by themselves with the
number of sessions finishing DATA together.

SQLite with `sqlite_synchronous = "full"` (the default) gets a pipeline of two threads:
one commits each batch (BEGIN IMMEDIATE … COMMIT, WAL not yet synced), the other fsyncs
the WAL file and only then lets the callers of every batch committed before that fsync
began answer 250. That is the durability of `synchronous=FULL` (the WAL is on disk before
the reply), but the next batch is written while the last one is being synced, instead of
waiting for the disk behind the write lock. A batch with nothing behind it and no sync
running is synced by the commit thread right after its COMMIT, as SQLite itself would: at
low load that saves two hops between threads. Checkpoints stay synced as SQLite does
them. With "normal", the reply follows the commit. PostgreSQL syncs its own commits.

If a batch fails, its messages are committed again one by one, so that one bad message
(say, an ID that clashes) gets its own error and the others still get their 250.

A message committed alone (a batch of one, nothing else committing or syncing: the idle
case) may hand its queued recipients to this process's delivery worker (`hand_off`,
SQLite): they are leased to the worker in the same transaction that stores them, and
given to it on the loop as soon as the batch is durable, so that the message goes out
with no claim, no wake-up and no read between its 250 and its delivery. Larger batches
(load) leave their recipients to the worker's claims, which take them 100 at a time. A
crash in between leaves leases that lapse and are claimed again, like any other.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Boolean, Float, Integer, LargeBinary, String, Table, insert
from sqlalchemy.engine import Connection, Dialect, Engine

from relay.errors import StoreError
from relay.store.accepted import MESSAGE_TABLES, MessageRows, insert_rows, table_rows
from relay.store.database import Database
from relay.store.queue import Batch, Lease

log = logging.getLogger(__name__)

MAX_BATCH = 500
"""Most messages in one transaction: bounds its size and the time it holds the lock."""


class DriverInserts:
    """A batch's INSERTs as the SQLite driver takes them: the SQL compiled once, each row a
    tuple in column order with the table's defaults filled in, values passed as they are
    (text, numbers, booleans and bytes need no conversion for sqlite3). SQLAlchemy's
    per-row work is skipped, which halves the time a small batch holds the write lock."""

    _PLAIN = (String, Integer, Float, Boolean, LargeBinary)

    def __init__(self, dialect: Dialect) -> None:
        self.statements = [self._prepare(table, dialect) for table in MESSAGE_TABLES]

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> DriverInserts | None:
        """The inserts for `dialect`, or None when a column needs SQLAlchemy's conversion
        or a computed default (then the batch goes through SQLAlchemy Core)."""
        try:
            return cls(dialect)
        except ValueError as exc:
            log.info("group commit through SQLAlchemy Core: %s", exc)
            return None

    def _prepare(self, table: Table, dialect: Dialect) -> tuple[str, list[tuple[str, Any]]]:
        columns = []
        for column in table.columns:
            if column.primary_key and column.autoincrement is True:
                continue  # the database numbers it
            default = column.default
            if not isinstance(column.type, self._PLAIN) or (
                default is not None and not default.is_scalar
            ):
                raise ValueError(f"{table.name}.{column.name} needs conversion")
            scalar = default.arg if default is not None else None  # type: ignore[attr-defined]
            columns.append((column.key, scalar))
        compiled = insert(table).compile(dialect=dialect, column_keys=[k for k, _ in columns])
        order = dict(columns)
        return str(compiled), [(key, order[key]) for key in compiled.positiontup or []]

    def run(self, conn: Connection, batch: Sequence[MessageRows]) -> None:
        """Insert the rows of `batch` in `conn`'s transaction, in foreign-key order."""
        for (sql, columns), rows in zip(self.statements, table_rows(batch), strict=True):
            if rows:
                conn.exec_driver_sql(
                    sql, [tuple(row.get(key, default) for key, default in columns) for row in rows]
                )


class HandOff(Protocol):
    """Who takes the queued recipients of messages committed alone: the delivery worker of
    this process (relay.delivery.worker)."""

    def wanted(self, batch: Sequence[MessageRows]) -> Lease | None:
        """On the loop, before the commit: the messages of `batch` whose queued recipients
        it takes, and on what terms (it keeps room for them until `take`); None: none."""
        ...

    def take(self, lease: Lease, leased: Batch | None) -> set[str]:
        """On the loop, once the batch is committed and durable: what `lease` leased (None:
        nothing, the transaction failed); the messages whose every queued recipient it
        took."""
        ...


@dataclass(frozen=True)
class _Pending:
    rows: MessageRows
    done: asyncio.Future[bool]


def _settle(item: _Pending, error: BaseException | None = None, handed: bool = False) -> None:
    if item.done.done():  # the caller went away (connection lost): nothing to tell
        return
    if error is None:
        item.done.set_result(handed)
    else:
        item.done.set_exception(error)


def sync_file(path: str) -> None:
    """Flush a file's data to the disk (fdatasync where there is one, as SQLite does)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        getattr(os, "fdatasync", os.fsync)(fd)
    finally:
        os.close(fd)


class GroupCommit:
    """The single writer of accepted messages: batches them, commits, syncs, then wakes
    the callers."""

    def __init__(self, db: Database, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.max_batch = max_batch
        self._pending: list[_Pending] = []  # handed over, not yet committed
        self._unsynced: list[_Pending] = []  # committed, WAL not yet synced
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._wake_sync = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._directory_synced = False
        self._syncing = False
        self._connection: Connection | None = None  # the commit thread's, kept open
        self._inserts: DriverInserts | None = None
        self._committing = False
        self._last_active = time.monotonic()
        self.on_commit: list[Callable[[], None]] = []
        """Called on the loop after each batch is committed (the search indexer's wake-up)."""
        self.hand_off: HandOff | None = None
        """The delivery worker that takes the queued recipients of batches committed alone
        (set by the worker, on SQLite)."""
        self.lease_sync: Callable[[Connection, Lease], Batch] | None = None
        """How a hand-off leases, in the batch's transaction (the store sets
        relay.store.queue.Queue.hand_off_sync)."""
        sqlite = db.commit_engine is not None
        # SQLite: a whole transaction runs in one thread, on the database's commit engine
        # (one hop between threads per batch, not one per statement); the syncs in another.
        self._commit_thread = ThreadPoolExecutor(1, "relay-commit") if sqlite else None
        self._sync_thread = ThreadPoolExecutor(1, "relay-sync") if db.sync_wal else None

    @property
    def engine(self) -> Engine:
        """The engine that the batches are committed through."""
        return self.db.commit_engine or self.db.writer.sync_engine

    def idle_for(self) -> float:
        """Seconds since the last message was handed over or committed; 0 while a batch
        is waiting, being committed or being synced."""
        if self._pending or self._unsynced or self._committing or self._syncing:
            return 0.0
        return time.monotonic() - self._last_active

    def waiting(self) -> bool:
        """Whether messages handed over wait for their commit (or it is under way): what
        retention's deletes give way to, so that a 250 is not kept waiting behind them."""
        return bool(self._pending) or self._committing

    def touch(self) -> None:
        """Another process (an SMTP helper) just committed a message: count it as this
        one's activity, so that what waits for ingest to be idle (the search indexer)
        keeps waiting while the helpers ingest."""
        self._last_active = time.monotonic()

    async def add(self, rows: MessageRows) -> bool:
        """Queue the rows of one message; return once they are durably committed (or
        raise): whether its queued recipients were handed to the worker (`hand_off`)."""
        if self._closing:
            raise StoreError("the store is closing")
        loop = asyncio.get_running_loop()
        if self._loop is not loop or any(t.done() for t in self._tasks):
            self._start(loop)
        item = _Pending(rows, loop.create_future())
        self._last_active = time.monotonic()
        self._pending.append(item)
        self._wake.set()
        return await item.done

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the writer (and syncer) tasks on `loop`: first use, or a new loop."""
        self._loop = loop
        self._wake = asyncio.Event()
        self._wake_sync = asyncio.Event()
        self._tasks = [loop.create_task(self._write_batches(), name="relay-group-commit")]
        if self._sync_thread is not None:
            self._tasks.append(loop.create_task(self._sync_batches(), name="relay-wal-sync"))

    async def close(self) -> None:
        """Commit and sync what is queued, then stop the tasks and threads."""
        self._closing = True
        if self._tasks and self._loop is asyncio.get_running_loop():
            self._wake.set()
            await self._tasks[0]  # the writer first: it hands its last batch to the syncer
            self._wake_sync.set()
            await asyncio.gather(*self._tasks[1:])
        self._tasks = []
        if self._commit_thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._commit_thread, self._disconnect)
        for thread in (self._commit_thread, self._sync_thread):
            if thread is not None:
                thread.shutdown(wait=False)  # idle by now: the thread ends by itself

    async def _write_batches(self) -> None:
        try:
            while True:
                while self._pending:
                    batch = self._pending[: self.max_batch]
                    del self._pending[: self.max_batch]
                    # Alone (nothing else waiting, no sync running): sync in the same step,
                    # which saves two hops between threads; else hand over to the syncer.
                    inline = not self._pending and not self._unsynced and not self._syncing
                    # Alone, it may go straight to the worker (SQLite: the commit thread).
                    handing = self._wanted(batch) if inline and len(batch) == 1 else None
                    self._committing = True
                    leased: Batch | None = None
                    try:
                        committed, leased = await self._commit(batch, inline, handing)
                    finally:
                        self._committing = False
                        self._last_active = time.monotonic()
                        handed = self._take(handing, leased)
                    if self._sync_thread is None or inline:
                        for item, error in committed:
                            _settle(item, error, item.rows.message["id"] in handed)
                    else:
                        self._unsynced.extend(item for item, _ in committed)
                        self._wake_sync.set()
                    for hook in self.on_commit:
                        hook()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
        except BaseException as exc:  # cancelled or a bug: nobody may wait forever
            for item in self._pending:
                _settle(item, StoreError(f"group commit stopped: {exc!r}"))
            self._pending.clear()
            raise

    def _wanted(self, batch: list[_Pending]) -> Lease | None:
        """What of `batch` the worker takes (nothing without a worker, or off SQLite)."""
        if self.hand_off is None or self.lease_sync is None or self._commit_thread is None:
            return None
        try:
            return self.hand_off.wanted([item.rows for item in batch])
        except Exception:  # the claims will find them
            log.exception("delivery hand-off: could not offer a batch")
            return None

    def _take(self, handing: Lease | None, leased: Batch | None) -> set[str]:
        """Give the worker what was leased to it (it counted on `handing`); the messages it
        took whole."""
        if handing is None or self.hand_off is None:
            return set()
        try:
            return self.hand_off.take(handing, leased)
        except Exception:  # the leases lapse, and are claimed again
            log.exception("delivery hand-off: could not hand over %s", handing.message_ids)
            return set()

    async def _sync_batches(self) -> None:
        assert self._sync_thread is not None
        loop = asyncio.get_running_loop()
        try:
            while True:
                while self._unsynced:
                    batch = list(self._unsynced)  # all committed before the sync starts
                    self._unsynced.clear()
                    self._syncing = True
                    try:
                        error = await loop.run_in_executor(self._sync_thread, self._sync)
                    finally:
                        self._syncing = False
                    for item in batch:
                        _settle(item, error)
                if self._closing and self._tasks[0].done():
                    return
                self._wake_sync.clear()
                await self._wake_sync.wait()
        except BaseException as exc:
            for item in self._unsynced:
                _settle(item, StoreError(f"WAL sync stopped: {exc!r}"))
            self._unsynced.clear()
            raise

    def _sync(self) -> OSError | None:
        """In a commit or sync thread: the WAL to disk, and once its directory (where the
        WAL's name is). Returns the error that makes the commits before it unsafe."""
        assert self.db.wal_path is not None
        try:
            sync_file(self.db.wal_path)
            if not self._directory_synced:
                sync_file(os.path.dirname(self.db.wal_path) or ".")
                self._directory_synced = True
        except OSError as exc:
            log.error("cannot sync %s: %s; answering 4xx", self.db.wal_path, exc)
            return exc
        return None

    async def _commit(
        self, batch: list[_Pending], sync: bool, handing: Lease | None
    ) -> tuple[list[tuple[_Pending, OSError | None]], Batch | None]:
        """Commit `batch` in one transaction, else each message alone; settle the failures
        and return the committed, each with the error of its sync when `sync` asks for
        one in the same step, and what was leased of `handing` to the worker in that
        transaction (nothing when it failed: the messages alone go to the claims)."""
        try:
            error, leased = await self._transaction(batch, sync, handing)
        except Exception as exc:  # noqa: BLE001 - handed to each caller, who answers 4xx
            if len(batch) == 1:
                _settle(batch[0], exc)
                return [], None
            log.info("a commit of %d messages failed (%s): committing each alone", len(batch), exc)
            committed = []
            for item in batch:
                try:
                    alone_error, _ = await self._transaction([item], sync, None)
                except Exception as alone:  # noqa: BLE001 - handed to its caller
                    _settle(item, alone)
                else:
                    committed.append((item, alone_error))
            return committed, None
        except BaseException as exc:
            for item in batch:
                _settle(item, StoreError(f"commit interrupted: {exc!r}"))
            raise
        return [(item, error) for item in batch], leased

    async def _transaction(
        self, batch: list[_Pending], sync: bool, handing: Lease | None
    ) -> tuple[OSError | None, Batch | None]:
        rows = [item.rows for item in batch]
        if self._commit_thread is None:  # PostgreSQL: asyncpg is asynchronous all the way
            async with self.db.writer.begin() as conn:
                await conn.run_sync(insert_rows, rows)
                # Other processes hear of these messages when (and only if) this commits.
                await self.db.notify(conn, "message", [r.message["id"] for r in rows])
            return None, None
        return await asyncio.get_running_loop().run_in_executor(
            self._commit_thread, self._write, rows, sync and self._sync_thread is not None, handing
        )

    def _write(
        self, rows: list[MessageRows], sync: bool, handing: Lease | None
    ) -> tuple[OSError | None, Batch | None]:
        """One SQLite transaction, in the commit thread (BEGIN IMMEDIATE … COMMIT), that
        also leases the queued recipients of `handing` to the worker; the WAL sync after
        it when `sync`. The thread keeps its connection between batches."""
        assert self.db.commit_engine is not None
        if self._connection is None or self._connection.closed:
            self._connection = self.db.commit_engine.connect()
            self._inserts = DriverInserts.for_dialect(self._connection.dialect)
        leased = None
        with self.db.write_turn(), self._connection.begin():
            if self._inserts is not None:
                self._inserts.run(self._connection, rows)
            else:
                insert_rows(self._connection, rows)
            if handing is not None and self.lease_sync is not None:
                leased = self.lease_sync(self._connection, handing)
        return (self._sync() if sync else None), leased

    def _disconnect(self) -> None:
        """In the commit thread: give its connection back."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
