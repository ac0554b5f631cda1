"""The MySQL or MariaDB test server: fresh databases, and statements run as its admin user."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

MYSQL_ENV = "RELAY_TEST_MYSQL_URL"


def _params(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 3306,
        "user": parsed.username or "root",
        "password": parsed.password or "",
        "database": parsed.database,
    }


async def query(sql: str, *args: Any, url: str | None = None) -> list[Any]:
    """Run one statement (on `url`, else the RELAY_TEST_MYSQL_URL database); return its rows."""
    import asyncmy

    conn = await asyncmy.connect(**_params(url or os.environ[MYSQL_ENV]), autocommit=True)
    try:
        async with conn.cursor() as cursor:
            await cursor.execute(sql, args or None)
            return list(await cursor.fetchall() or [])
    finally:
        conn.close()


def admin(sql: str, *args: Any, url: str | None = None) -> list[Any]:
    """Run one statement from synchronous code; return its rows."""
    return asyncio.run(query(sql, *args, url=url))


@contextmanager
def fresh_database(charset: str = "utf8mb4") -> Iterator[str]:
    """A new, empty database with `charset` (dropped after); skips without
    RELAY_TEST_MYSQL_URL."""
    if not os.environ.get(MYSQL_ENV):
        pytest.skip(f"{MYSQL_ENV} is not set: MySQL tests need a server (CI sets it)")
    name = f"relay_test_{uuid.uuid4().hex[:12]}"
    admin(f"CREATE DATABASE `{name}` CHARACTER SET {charset}")
    base = os.environ[MYSQL_ENV].rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin(f"DROP DATABASE IF EXISTS `{name}`")
