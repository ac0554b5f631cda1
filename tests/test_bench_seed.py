"""bench/pgseed.py, the benchmarks' fast seed on PostgreSQL: it leaves the database the
row-by-row inserts leave (the rows, indexes and constraints ingest's would)."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from sqlalchemy import insert

from bench import pgseed
from bench.seed import _message_rows
from relay.config import StorageConfig
from relay.store import Store
from relay.store.schema import message, message_raw, message_text, recipient
from tests import pg

COUNT, BATCH = 300, 100

CONTENT = {
    "message": "SELECT received_at, mail_from, size, subject, from_header, to_header,"
    " cc_header, message_id_header = id || '@example.com', attachments, snippet, listener,"
    " peer, helo, auth_user, tls, read, mailbox FROM message ORDER BY received_at",
    "raw": "SELECT r.data, r.encoding FROM message_raw r JOIN message m ON m.id = r.message_id"
    " ORDER BY m.received_at",
    "text": "SELECT t.text FROM message_text t JOIN message m ON m.id = t.message_id"
    " ORDER BY m.received_at",
    "recipient": "SELECT r.address, r.address_key, r.domain, r.route, r.status, r.attempts,"
    " r.next_attempt_at - m.received_at, r.lease_owner, r.last_code, r.updated_at"
    " = m.received_at FROM recipient r JOIN message m ON m.id = r.message_id"
    " ORDER BY m.received_at",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes"
    " WHERE schemaname = 'public' ORDER BY indexname",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
    " FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY conname",
}


async def _seed(url: str, start: float, fast: bool) -> None:
    """COUNT messages from `start` on: by bench/pgseed.py, or batch by batch by INSERT."""
    store = Store(StorageConfig(url=url))
    await store.open()
    try:
        if fast:
            make_rows = functools.partial(_message_rows, size=0, dialect="postgresql")
            await pgseed.seed(store, COUNT, BATCH, start, make_rows)
            return
        for done in range(0, COUNT, BATCH):
            rows = _message_rows(BATCH, start + done * 0.5, 0, False)
            async with store.db.writer.begin() as conn:
                await conn.execute(insert(message), rows["message"])
                await conn.execute(insert(message_raw), rows["raw"])
                await conn.execute(insert(message_text), rows["text"])
                await conn.execute(insert(recipient), rows["rcpt"])
    finally:
        await store.close()


async def _contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Each table's rows (ids aside), the indexes and the constraints."""
    return {key: [tuple(r) for r in await pg.query(sql, url=url)] for key, sql in CONTENT.items()}


def test_the_fast_seed_leaves_what_row_by_row_inserts_leave(pg_url: str) -> None:
    """The same 300 messages seeded by COPY on two connections and by INSERT batch by
    batch: equal rows in every table, the same indexes and constraints, the statistics
    of ANALYZE there."""
    start = time.time() - COUNT
    asyncio.run(_seed(pg_url, start, fast=True))
    with pg.fresh_database() as other:
        asyncio.run(_seed(other, start, fast=False))
        expected = asyncio.run(_contents(other))
    got = asyncio.run(_contents(pg_url))
    assert len(got["message"]) == len(got["recipient"]) == COUNT
    assert "ix_message_text_trgm" in {row[1] for row in got["indexes"]}
    for key in CONTENT:
        assert got[key] == expected[key], key
    analyzed = "SELECT count(*) FROM pg_stats WHERE tablename = 'message_text'"
    assert asyncio.run(pg.query(analyzed, url=pg_url))[0][0] > 0
