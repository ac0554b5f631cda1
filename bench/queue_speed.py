"""How fast the queue page's queries are with a large queue of deferred and failed mail.

    python bench/queue_speed.py                     # 100,000 recipients, temporary SQLite file
    python bench/queue_speed.py --count 20000 --db postgresql+asyncpg://postgres@127.0.0.1/bench

Seeds the database with bulk inserts: messages of three recipients each, every recipient
deferred, failed or held across 40 destinations (named upstreams and MX domains), with
replies that differ in addresses and ids as real ones do (so that grouping by error has
to normalise them). Times each query the queue page runs, the whole page in-process, and
a retry of one error group. Prints the median of several runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text

from relay import ids
from relay.config import Config, StorageConfig
from relay.store import ErrorKey, QueueFilter, Store
from relay.store.error_key import normalize
from relay.store.rawzip import pack, text_at_rest
from relay.store.schema import message, message_raw, message_text, recipient
from web import create_app

RUNS = 5
REPLIES = [
    (550, "5.1.1", "<{addr}>: Recipient address rejected: User unknown in virtual mailbox table"),
    (451, "4.7.1", "Greylisted, please try again in {n} seconds"),
    (421, "4.7.0", "Try again later, closing connection (rate limit for 203.0.113.{n})"),
    (None, "4.4.1", "connection timed out after 30 s"),
    (452, "4.2.2", "Mailbox full, try again later (id {id})"),
    (554, "5.7.1", "Relay access denied"),
    (450, "4.2.0", "<{addr}>: Recipient address rejected: Greylisted, see id={id}"),
]
STATUSES = ["deferred"] * 6 + ["failed"] * 3 + ["held"]


def _rows(
    n: int, start: float, rng: random.Random, dialect: str
) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {"message": [], "raw": [], "text": [], "rcpt": []}
    for i in range(n):
        when = start + i
        mid = ids.new_id(when)
        subject = f"Notification #{i}"
        raw = f"From: app@example.com\r\nSubject: {subject}\r\n\r\nhi\r\n".encode()
        rows["message"].append(
            {
                "id": mid, "received_at": when, "mail_from": "app@example.com", "size": len(raw),
                "subject": subject, "from_header": "app@example.com", "to_header": "",
                "cc_header": "", "message_id_header": "", "attachments": 0, "snippet": "hi",
                "listener": "smtp", "peer": "127.0.0.1", "helo": "bench", "auth_user": None,
                "tls": False, "read": False,
            }
        )  # fmt: skip
        stored = pack(raw)  # compressed, as ingest stores it
        rows["raw"].append({"message_id": mid, "data": stored.data, "encoding": stored.encoding})
        rows["text"].append({"message_id": mid, "text": text_at_rest(subject.lower(), dialect)})
        for j in range(3):
            site = rng.randrange(40)
            domain = f"site{site}.example"
            addr = f"user{i}-{j}@{domain}"
            route = "relay:mx" if site >= 4 else f"relay:up{site}"
            code, enhanced, pattern = REPLIES[(site + j) % len(REPLIES)]
            reply = pattern.format(addr=addr, n=rng.randrange(300), id=rng.randrange(1 << 32))
            status = rng.choice(STATUSES)
            rows["rcpt"].append(
                {
                    "message_id": mid, "address": addr, "address_key": addr, "domain": domain,
                    "route": route, "status": status, "attempts": rng.randint(1, 9),
                    "next_attempt_at": when + 3600 if status == "deferred" else None,
                    "last_code": code, "last_enhanced": enhanced, "last_text": reply,
                    "last_error_key": normalize(reply),
                    "updated_at": when,
                }
            )  # fmt: skip
    return rows


async def seed(store: Store, count: int, batch: int = 1000) -> float:
    """Insert messages until there are `count` recipients; return the seconds it took."""
    started = time.perf_counter()
    rng = random.Random(count)
    messages = count // 3
    start = time.time() - messages
    done = 0
    while done < messages:
        n = min(batch, messages - done)
        rows = _rows(n, start + done, rng, store.db.dialect)
        async with store.db.writer.begin() as conn:
            await conn.execute(insert(message), rows["message"])
            await conn.execute(insert(message_raw), rows["raw"])
            await conn.execute(insert(message_text), rows["text"])
            await conn.execute(insert(recipient), rows["rcpt"])
        done += n
    return time.perf_counter() - started


async def timed(fn: Callable[[], Awaitable[Any]], runs: int = RUNS) -> float:
    """Median milliseconds of `runs` calls of `fn` (after one warm-up call)."""
    await fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def main(count: int, url: str) -> None:
    """Seed, then print the timings."""
    store = Store(StorageConfig(url=url))
    await store.open()
    seconds = await seed(store, count)
    print(f"seeded {count:,} queued recipients in {seconds:.1f} s ({url.split(':')[0]})")
    if not store.db.is_sqlite:
        async with store.db.writer.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    view = store.queue_view
    grey = ErrorKey(451, "4.7.1", "greylisted, please try again in # seconds")
    one_site = QueueFilter(destination="relay:mx:site17.example")
    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("navigation counts (every page)", store.messages.counts),
        ("summary (navigation badge)", view.summary),
        ("counts per status (tabs)", view.counts),
        ("groups by destination", lambda: view.groups("destination")),
        ("groups by error (normalised text)", lambda: view.groups("error")),
        ("page 1 (50 rows, with total)", lambda: view.page()),
        ("page 1, one error group", lambda: view.page(QueueFilter(error=grey))),
        ("page 1, one MX domain", lambda: view.page(one_site)),
        ("page 1, search user42-", lambda: view.page(QueueFilter(search="user42-"))),
    ]
    app = create_app(Config(storage=StorageConfig(url=url)), store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as web:
        cases.append(("GET /queue (whole page, in-process)", lambda: web.get("/queue")))
        for name, fn in cases:
            print(f"{name:<45} {await timed(fn):8.1f} ms")
    affected = await store.actions.affected("retry", QueueFilter(error=grey))
    started = time.perf_counter()
    changed = await store.actions.act_matching("retry", QueueFilter(error=grey), time.time())
    took = (time.perf_counter() - started) * 1000
    print(f"{f'retry one error group ({changed:,} of {affected:,})':<45} {took:8.1f} ms")
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(main(args.count, db))
