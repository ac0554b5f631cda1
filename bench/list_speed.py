"""How fast the message list, its filters, search and counts are with many stored messages.

    python -m bench.list_speed                  # 100,000 messages in a temporary SQLite file
    python -m bench.list_speed --count 20000 --db postgresql+asyncpg://postgres@127.0.0.1/bench

Seeds the database with bulk inserts (bench/seed.py: the rows the SMTP handler writes:
summary, raw bytes, search text, recipients; a mix of statuses, listeners and users), then
times each query the list page runs, and the whole list page through the web app in-process.
On SQLite the search index is brought up to date first (what an idle relay does by itself).
Prints the median of several runs per query, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.seed import seed
from relay.config import Config, StorageConfig
from relay.query import parse
from relay.store import Filter, Store
from web import create_app

RUNS = 7


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    """Median milliseconds of RUNS calls of `fn` (after one warm-up call)."""
    await fn()
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def main(count: int, url: str) -> None:
    """Seed, then print the timings."""
    store = Store(StorageConfig(url=url))
    await store.open()
    seconds = await seed(store, count)
    print(f"seeded {count:,} messages in {seconds:.1f} s ({url.split(':')[0]})")
    if store.indexer is not None:  # SQLite: fill the search index, as the idle relay would
        started = time.perf_counter()
        indexed = await store.indexer.catch_up()
        took = time.perf_counter() - started
        print(f"indexed {indexed:,} messages for search in {took:.1f} s")
    m = store.messages
    deep = (count // 2 // 50) * 50

    def page(q: str = "", offset: int = 0, **kw: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: m.page(offset, 50, Filter(query=parse(q), **kw))

    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("page 1, newest first", page()),
        (f"page at offset {deep:,}", page(offset=deep)),
        ("status=failed (rare)", page(status="failed")),
        ("status=captured (common)", page(status="captured")),
        ("listener=submission", page(listener="submission")),
        ("user=app1", page(user="app1")),
        ("is:unread", page("is:unread")),
        ("has:attachment", page("has:attachment")),
        ("from:app3", page("from:app3")),
        ("subject:invoice", page("subject:invoice")),
        ("free text, common word (invoice)", page("invoice")),
        ("free text, rare word (needle-in-a-haystack)", page("needle-in-a-haystack")),
        ("free text, no match", page("zzzznotthere")),
        # Every word is in nearly every message, the three in a row in few: the index
        # narrows nothing (each trigram is everywhere) and checks positions in each.
        ("free text, rare phrase of common words", page('"welcome reset invoice"')),
        ("counts per status (navigation)", m.counts),
    ]
    app = create_app(Config(storage=StorageConfig(url=url)), store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as web:
        cases.append(("GET / (whole page, in-process)", lambda: web.get("/")))
        filtered = "/?q=invoice&status=delivered"
        cases.append((f"GET {filtered}", lambda: web.get(filtered)))
        for name, fn in cases:
            print(f"{name:<45} {await timed(fn):8.1f} ms")
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(main(args.count, db))
