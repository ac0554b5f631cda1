"""SQLite connections as relay needs them: the pragmas on every connection (see
relay.store.database for why each), WAL entered even while others open the file, our own
BEGIN, and the SQL function that reads the compressed search text (relay.store.rawzip)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from relay.config import StorageConfig
from relay.store.rawzip import TEXT_SQL, plain_text

_WAL_RETRY = 0.005
"""Seconds between two tries to enter WAL mode while another connection writes."""


def sqlite_engine(
    url: URL, storage: StorageConfig, begin: str, pool_size: int, foreign_keys: bool = True
) -> AsyncEngine:
    """An aiosqlite engine whose connections get `sqlite_setup`."""
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=60)
    sqlite_setup(engine.sync_engine, storage, begin, foreign_keys=foreign_keys)
    return engine


def sqlite_setup(
    engine: Engine,
    storage: StorageConfig,
    begin: str,
    synchronous: str | None = None,
    foreign_keys: bool = True,
) -> None:
    """Pragmas on every new connection, and our own BEGIN."""
    busy_ms = int(storage.busy_timeout * 1000)
    sync = (synchronous or storage.sqlite_synchronous).upper()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (the driver would otherwise defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        enter_wal(cursor, storage.busy_timeout)
        cursor.execute(f"PRAGMA synchronous = {sync}")
        # Off only while migrating: rebuilding a table must not cascade to its children.
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.close()
        # The search text, compressed at rest (relay.store.rawzip).
        dbapi_connection.create_function(TEXT_SQL, 1, plain_text, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


def enter_wal(cursor: Any, timeout: float) -> None:
    """Put the database in WAL mode (a no-op once it is), waiting up to `timeout` seconds.

    Leaving the rollback journal needs the file to itself, and SQLite answers "database
    is locked" at once, without its busy wait, when another connection writes meanwhile
    (it could deadlock otherwise). That happens only while a new database is first opened
    by several connections or processes together; try again until the others are done.
    The short sleeps between tries block the calling thread (for aiosqlite connections,
    the event loop), which is only ever the case during such a first open.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as exc:
            busy = getattr(exc, "sqlite_errorname", "") == "SQLITE_BUSY"
            if not (busy or "database is locked" in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(_WAL_RETRY)
