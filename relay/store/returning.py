"""UPDATE and DELETE that say which rows they changed, on every database.

SQLite and PostgreSQL have `RETURNING`. MySQL has none, MariaDB only on DELETE; and
neither lets a statement read, in a subquery, the table it changes ("You can't specify
target table for update in FROM clause"), nor take LIMIT in an IN subquery. There the rows
are first selected `FOR UPDATE` (locked until the transaction ends, so they are the ones
changed), then changed by primary key. The same code runs on both MySQL and MariaDB.
Each has a blocking form (`_sync`, inside `run_sync` or the queue's transactions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, select, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from relay.store.mysql import is_mysql

_BATCH = 5000
"""Rows changed by one statement on MySQL (the IN list of their keys stays small)."""


def _locked(
    conn: Connection, table: Table, where: Sequence[ColumnElement[bool]], columns: Sequence[Any]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    keys = list(table.primary_key.columns)
    rows = conn.execute(select(*columns, *keys).where(*where).with_for_update()).all()
    width = len(columns)
    return [tuple(row[:width]) for row in rows], [tuple(row[width:]) for row in rows]


def _by_key(table: Table, keys: list[tuple[Any, ...]]) -> ColumnElement[bool]:
    columns = list(table.primary_key.columns)
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    return tuple_(*columns).in_(keys)


def update_returning_sync(
    conn: Connection,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    values: dict[str, Any],
    columns: Sequence[Any],
) -> list[tuple[Any, ...]]:
    """UPDATE `table` SET `values` WHERE `where`; the `columns` of each row changed."""
    if not is_mysql(conn.dialect.name):
        statement = update(table).where(*where).values(**values).returning(*columns)
        return [tuple(row) for row in conn.execute(statement).all()]
    found, keys = _locked(conn, table, where, columns)
    for start in range(0, len(keys), _BATCH):
        batch = keys[start : start + _BATCH]
        conn.execute(update(table).where(_by_key(table, batch)).values(**values))
    return found


def delete_returning_sync(
    conn: Connection, table: Table, where: Sequence[ColumnElement[bool]], columns: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """DELETE FROM `table` WHERE `where`; the `columns` of each row deleted."""
    if not is_mysql(conn.dialect.name):
        statement = delete(table).where(*where).returning(*columns)
        return [tuple(row) for row in conn.execute(statement).all()]
    found, keys = _locked(conn, table, where, columns)
    for start in range(0, len(keys), _BATCH):
        conn.execute(delete(table).where(_by_key(table, keys[start : start + _BATCH])))
    return found


async def update_returning_rows(
    conn: AsyncConnection,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    values: dict[str, Any],
    columns: Sequence[Any],
) -> list[tuple[Any, ...]]:
    """`update_returning_sync` on an async connection."""
    return await conn.run_sync(update_returning_sync, table, where, values, columns)


async def update_returning(
    conn: AsyncConnection,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    values: dict[str, Any],
    key: Any,
) -> list[Any]:
    """UPDATE `table` SET `values` WHERE `where`; the `key` column of each row changed."""
    rows = await update_returning_rows(conn, table, where, values, [key])
    return [row[0] for row in rows]


async def delete_returning(
    conn: AsyncConnection, table: Table, where: Sequence[ColumnElement[bool]], key: Any
) -> list[Any]:
    """DELETE FROM `table` WHERE `where`; the `key` column of each row deleted."""
    rows = await conn.run_sync(delete_returning_sync, table, where, [key])
    return [row[0] for row in rows]
