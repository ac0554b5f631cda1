"""Raw bytes in chunks, on MySQL and MariaDB: every statement stays small.

MySQL refuses a statement larger than `max_allowed_packet` (16 MB on MariaDB 10.11, 64 MB
on MySQL 8, 4 MB on older servers), and a message's bytes are sent inside the INSERT. So
there `message_raw.data` holds the first `CHUNK` bytes and `message_raw_chunk` the rest,
one row of at most `CHUNK` bytes each (`seq` 1, 2, ...): a 40 MB message is one INSERT
of 1 MiB plus 39 more, each well under any server's limit. Reads put the pieces back
together. A message of `CHUNK` bytes or fewer has no chunk rows, so most reads cost what
they cost before; SQLite and PostgreSQL, which have no such limit, keep whole messages in
`message_raw` (no extra rows, no extra query).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from relay.store.mysql import is_mysql
from relay.store.schema import message_raw_chunk

CHUNK = 1 << 20
"""Bytes in one row: with the driver's escaping (at most twice the size) a statement
stays under 4 MB, the smallest default `max_allowed_packet` of supported servers."""


def chunked(dialect_name: str) -> bool:
    """Whether raw bytes are kept in chunks on this database."""
    return is_mysql(dialect_name)


def split(raw_rows: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """message_raw rows with only their first chunk, and the message_raw_chunk rows of the
    rest (the bytes are sliced once, with no copy of the whole)."""
    firsts: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for row in raw_rows:
        data = memoryview(row["data"])
        firsts.append({**row, "data": bytes(data[:CHUNK])})
        for seq, start in enumerate(range(CHUNK, len(data), CHUNK), 1):
            piece = bytes(data[start : start + CHUNK])
            rest.append({"message_id": row["message_id"], "seq": seq, "data": piece})
    return firsts, rest


def completed(conn: Connection, firsts: dict[str, bytes]) -> dict[str, bytes]:
    """The whole raw bytes of messages whose first chunks are `firsts` (message id →
    bytes): those of exactly `CHUNK` bytes may have more, read here in order. Blocking:
    run it through `AsyncConnection.run_sync`."""
    longer = [m for m, first in firsts.items() if len(first) >= CHUNK]
    if not chunked(conn.dialect.name) or not longer:
        return firsts
    pieces: dict[str, list[bytes]] = {m: [firsts[m]] for m in longer}
    result = conn.execute(
        select(message_raw_chunk.c.message_id, message_raw_chunk.c.data)
        .where(message_raw_chunk.c.message_id.in_(longer))
        .order_by(message_raw_chunk.c.message_id, message_raw_chunk.c.seq)
    )
    for message_id, data in result:
        pieces[str(message_id)].append(bytes(data))
    whole = dict(firsts)
    for message_id, parts in pieces.items():
        whole[message_id] = b"".join(parts)
        parts.clear()
    return whole
