"""The database's size beside the raw bytes it holds, on PostgreSQL or MySQL/MariaDB.

    .venv/bin/python -m bench.db_size mysql+asyncmy://root@127.0.0.1:3306/test
    .venv/bin/python -m bench.db_size --count 20000 postgresql+asyncpg://postgres@127.0.0.1/test

Seeds `--count` messages of 5 KB (bench/seed.py, as bench/scale.py does) into a fresh
database made beside the one the URL names (dropped at the end), then prints the size of
the database (PostgreSQL: `pg_database_size`; MySQL: the tables' data and index lengths
after ANALYZE TABLE, the biggest tables each) over the raw bytes of the messages. For
SQLite, bench/scale.py prints the same ratio.
"""

from __future__ import annotations

import argparse
import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from bench.scale import SIZE, raw_bytes
from bench.seed import seed
from relay.config import StorageConfig
from relay.store import Store

NAME = "relay_db_size"
"""The database made (and dropped) beside the one the URL names."""


async def _fresh(url: str, drop_only: bool = False) -> None:
    mysql = url.startswith("mysql")
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            if mysql:
                await conn.execute(text(f"DROP DATABASE IF EXISTS {NAME}"))
                if not drop_only:
                    await conn.execute(
                        text(f"CREATE DATABASE {NAME} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                    )
            else:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)'))
                if not drop_only:
                    await conn.execute(text(f'CREATE DATABASE "{NAME}"'))
    finally:
        await admin.dispose()


async def _mysql_size(conn: AsyncConnection, raw: int) -> int:
    tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
    for (name,) in (await conn.execute(text(tables))).all():
        await conn.execute(text(f"ANALYZE TABLE {name}"))
    query = (
        "SELECT table_name, data_length + index_length FROM information_schema.tables"
        " WHERE table_schema = DATABASE() ORDER BY 2 DESC"
    )
    rows = [(str(n), int(b)) for n, b in (await conn.execute(text(query))).all()]
    for name, size in rows[:4]:
        print(f"  {name}: {size / raw:.2f}x the raw bytes")
    return sum(size for _, size in rows)


async def measure(url: str, count: int) -> float:
    """Seed `count` messages into a fresh database beside `url`; its size / raw bytes."""
    await _fresh(url)
    store = Store(StorageConfig(url=f"{url.rpartition('/')[0]}/{NAME}"))
    await store.open()
    try:
        await seed(store, count, batch=2000, size=SIZE)
        raw = await raw_bytes(store)
        async with store.db.writer.connect() as conn:
            if store.db.is_mysql:
                size = await _mysql_size(conn, raw)
            else:
                query = text("SELECT pg_database_size(current_database())")
                size = int((await conn.execute(query)).scalar_one())
    finally:
        await store.close()
        await _fresh(url, drop_only=True)
    ratio = size / max(1, raw)
    print(f"{count:,} messages: raw bytes {raw:,}; database {size:,} ({ratio:.2f}x)")
    return ratio


def main(argv: list[str] | None = None) -> int:
    """Parse the options, measure, print."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("url", help="a PostgreSQL or MySQL URL: a fresh database is made beside it")
    p.add_argument("--count", type=int, default=20_000, help="messages (20,000)")
    args = p.parse_args(argv)
    asyncio.run(measure(args.url, args.count))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
