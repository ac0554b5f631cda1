"""UPDATE and DELETE that say which rows they changed, on every database.

SQLite and PostgreSQL have `RETURNING`. MySQL has none, MariaDB only on DELETE; and
neither lets a statement read, in a subquery, the table it changes ("You can't specify
target table for update in FROM clause"), nor take LIMIT in an IN subquery. There the rows
are first selected `FOR UPDATE` (locked until the transaction ends, so they are the ones
changed), then changed by primary key. The same code runs on both MySQL and MariaDB.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from relay.store.mysql import is_mysql

_BATCH = 5000
"""Rows changed by one statement on MySQL (the IN list of their keys stays small)."""


async def _locked(
    conn: AsyncConnection, table: Table, where: Sequence[ColumnElement[bool]], key: Any
) -> tuple[list[Any], list[tuple[Any, ...]]]:
    keys = list(table.primary_key.columns)
    rows = (await conn.execute(select(key, *keys).where(*where).with_for_update())).all()
    return [row[0] for row in rows], [tuple(row[1:]) for row in rows]


def _by_key(table: Table, keys: list[tuple[Any, ...]]) -> ColumnElement[bool]:
    columns = list(table.primary_key.columns)
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    return tuple_(*columns).in_(keys)


async def update_returning(
    conn: AsyncConnection,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    values: dict[str, Any],
    key: Any,
) -> list[Any]:
    """UPDATE `table` SET `values` WHERE `where`; the `key` column of each row changed."""
    if not is_mysql(conn.dialect.name):
        result = await conn.execute(update(table).where(*where).values(**values).returning(key))
        return list(result.scalars())
    found, keys = await _locked(conn, table, where, key)
    for start in range(0, len(keys), _BATCH):
        batch = keys[start : start + _BATCH]
        await conn.execute(update(table).where(_by_key(table, batch)).values(**values))
    return found


async def delete_returning(
    conn: AsyncConnection, table: Table, where: Sequence[ColumnElement[bool]], key: Any
) -> list[Any]:
    """DELETE FROM `table` WHERE `where`; the `key` column of each row deleted."""
    if not is_mysql(conn.dialect.name):
        result = await conn.execute(delete(table).where(*where).returning(key))
        return list(result.scalars())
    found, keys = await _locked(conn, table, where, key)
    for start in range(0, len(keys), _BATCH):
        await conn.execute(delete(table).where(_by_key(table, keys[start : start + _BATCH])))
    return found
