"""The PostgreSQL test server: fresh databases, and statements run as its admin user."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

PG_ENV = "RELAY_TEST_PG_URL"


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def query(sql: str, *args: Any, url: str | None = None) -> list[Any]:
    """Run one statement (on `url`, else the RELAY_TEST_PG_URL database); return its rows."""
    import asyncpg

    conn = await asyncpg.connect(_dsn(url or os.environ[PG_ENV]))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def admin(sql: str) -> None:
    """Run one statement on the RELAY_TEST_PG_URL database (from synchronous code)."""
    asyncio.run(query(sql))


async def terminate_backends(url: str, where: str = "true") -> int:
    """pg_terminate_backend() the connections to `url`'s database that match `where`
    (never our own); return how many. The server itself keeps running."""
    name = url.rsplit("/", 1)[1]
    rows = await query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        f" WHERE datname = $1 AND pid <> pg_backend_pid() AND ({where})",
        name,
    )
    return sum(1 for row in rows if row[0])


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (dropped after); skips without RELAY_TEST_PG_URL."""
    if not os.environ.get(PG_ENV):
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL tests need a server (CI sets it)")
    name = f"relay_test_{uuid.uuid4().hex[:12]}"
    admin(f'CREATE DATABASE "{name}"')
    base = os.environ[PG_ENV].rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
