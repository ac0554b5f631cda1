"""bench.seed's fast path on PostgreSQL: COPY on both cores, every index kept as it is.

Where the time went, row by row (bench.seed's bulk INSERTs, one batch after another, about
900-1,200 messages/s on the 2-core machine): in PostgreSQL, pg_trgm cutting each
message's search text into trigrams for the GIN index on `message_text.text`, about
0.6 ms of CPU per 5 KB message (`show_trgm` over the texts alone costs as much); in
Python, drawing the words of the bodies, about 0.25 ms. Building the GIN index after the
load instead saves nothing: the build cuts the same trigrams, in one process, while the
other core idles (PostgreSQL 15 builds only B-trees in parallel). So the rows go in
while the work is spread over the cores:

- a worker process makes the rows (bench.seed's, the rows ingest writes, as tuples in
  column order) a few batches ahead;
- `CONNECTIONS` connections of the writer's pool take a batch each and COPY it
  (asyncpg's `copy_records_to_table`, binary), one transaction a batch: two PostgreSQL
  backends cut trigrams at once, as concurrent ingest would;
- nothing is dropped or rebuilt: every index, key and constraint of the migrations is
  there throughout and takes the rows as ingest's would;

then VACUUM ANALYZE, as autovacuum does shortly after a bulk load (since PostgreSQL 13 it
vacuums after inserts too, which sets the visibility map that index-only scans need; this
machine's server runs with autovacuum off). The rows, indexes and
constraints are those the row-by-row inserts left (compared table by table, ids aside).

Also bench.scale's kept databases (`--pg URL --keep NAME`): `kept` says whether one is
there and seeded, `mark_seeded` says so once its seed finished (its comment).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from relay.store import Store

TABLES = {"message": "message", "raw": "message_raw", "text": "message_text", "rcpt": "recipient"}
"""bench.seed's keys of its rows, and the table each goes into (parents first)."""

CONNECTIONS = 2
"""Batches copied at once: one a core on the 2-core machine the benchmarks run on."""

AHEAD = 2
"""Batches made ahead of the copies (each about 45 MB of rows at 5,000 messages of 5 KB)."""

Rows = dict[str, list[dict[str, Any]]]
Records = list[tuple[str, list[str], list[tuple[Any, ...]]]]
MakeRows = Callable[[int, float], Rows]
"""bench.seed's rows of `n` messages received from time `at` on (picklable: a partial)."""


def records(make_rows: MakeRows, n: int, at: float) -> Records:
    """The rows of `n` messages from `at` on, for COPY: (table, columns, tuples), parents
    first. Runs in the worker process."""
    rows = make_rows(n, at)
    out: Records = []
    for key, table in TABLES.items():
        columns = list(rows[key][0]) if rows[key] else []
        out.append((table, columns, [tuple(row[c] for c in columns) for row in rows[key]]))
    return out


async def copy(pg: Any, batch: Records) -> None:
    """COPY one batch into its tables in one transaction."""
    async with pg.transaction():
        for table, columns, tuples in batch:
            if tuples:
                await pg.copy_records_to_table(table, records=tuples, columns=columns)


async def copier(store: Store, batches: asyncio.Queue[asyncio.Future[Records] | None]) -> None:
    """Take batches (futures of the worker process) off `batches` and COPY each, on a
    connection of the writer's pool of its own, until None."""
    async with store.db.writer.connect() as conn:
        pg: Any = (await conn.get_raw_connection()).driver_connection
        while (made := await batches.get()) is not None:
            await copy(pg, await made)


async def seed(store: Store, count: int, batch: int, start: float, make_rows: MakeRows) -> None:
    """COPY `count` messages, batches of `batch` received 0.5 s apart from `start` on, made
    by `make_rows` in a worker process; then VACUUM ANALYZE."""
    loop = asyncio.get_running_loop()
    batches: asyncio.Queue[asyncio.Future[Records] | None] = asyncio.Queue(AHEAD)
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:

        async def produce() -> None:
            for done in range(0, count, batch):
                n = min(batch, count - done)
                await batches.put(
                    loop.run_in_executor(pool, records, make_rows, n, start + done * 0.5)
                )
            for _ in range(CONNECTIONS):
                await batches.put(None)

        tasks = [asyncio.create_task(copier(store, batches)) for _ in range(CONNECTIONS)]
        tasks.append(asyncio.create_task(produce()))
        try:
            await asyncio.gather(*tasks)  # the first failure ends the seed
        finally:
            for task in tasks:
                task.cancel()
    started = time.perf_counter()
    async with store.db.writer.connect() as conn:
        pg: Any = (await conn.get_raw_connection()).driver_connection
        await pg.execute("VACUUM ANALYZE")
    print(f"PostgreSQL: VACUUM ANALYZE took {time.perf_counter() - started:.0f} s", flush=True)


SEEDED = "seeded by bench.scale"
"""The comment on a kept database (bench.scale's --keep) once its seed is complete."""


async def admin_run(admin: str, statement: str) -> None:
    """Run one statement on the server's `postgres` database (asyncpg URL `admin`)."""
    import asyncpg  # only for PostgreSQL runs

    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def kept(admin: str, name: str) -> bool:
    """Whether the kept database `name` is there and seeded; if not, make it (again: one
    whose seed did not finish is dropped)."""
    import asyncpg  # only for PostgreSQL runs

    conn = await asyncpg.connect(admin)
    try:
        note = await conn.fetchval(
            "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database"
            " WHERE datname = $1",
            name,
        )
        if note == SEEDED:
            return True
        if note is not None:
            print(f"{name}: its seed did not finish; made again", flush=True)
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        return False
    finally:
        await conn.close()


async def mark_seeded(store: Store) -> None:
    """Comment the store's database as seeded (see `kept`)."""
    name = str(store.db.url.database).replace('"', '""')
    async with store.db.writer.connect() as conn:
        pg: Any = (await conn.get_raw_connection()).driver_connection
        await pg.execute(f"COMMENT ON DATABASE \"{name}\" IS '{SEEDED}'")
