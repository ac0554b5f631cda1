"""A million stored messages: the UI, the API, `relay stats`, start, memory, disk, pruning.

    .venv/bin/python -m bench.scale                       # 1,000,000 messages, SQLite
    .venv/bin/python -m bench.scale --count 100000        # a quicker run
    .venv/bin/python -m bench.scale --pg postgresql+asyncpg://postgres@127.0.0.1:5432/test
    .venv/bin/python -m bench.scale --keep /tmp/scale --no-prune        # seed once, keep
    .venv/bin/python -m bench.scale --pg URL --keep 1m --no-prune       # relay_scale_1m

Seeds `--count` messages of 5 KB by bulk inserts (bench/seed.py: the rows the SMTP
handler writes; 1.2% of them deferred or held, the rest done with; on PostgreSQL by COPY
on two connections, bench/pgseed.py), into a fresh SQLite file or a fresh PostgreSQL
database made beside the one `--pg` names (dropped at the end). With `--keep DIR`
(SQLite: DIR/relay.db) or `--pg URL --keep NAME` (the database relay_scale_NAME beside
the one named) the database is kept, and a later run with the same `--keep` measures it
again without seeding (with `--no-prune`, which leaves it as seeded; each run's ingest
client adds about a thousand messages, and the figures are of the count it holds). A
kept PostgreSQL database is marked seeded (its comment) only once its seed finished; one
left half seeded is dropped and seeded again. Then, with `relay serve` on the shipped
relay.toml (only its addresses and database changed) and issue 20's target 3 beside each
figure:

- server start: from the process's start to `/healthz` answering;
- the UI's list page, a search for a common word, the API's list with its totals:
  median of `--runs` fetches over one kept-alive connection (client round trip);
- RSS of the relay process after those (VmHWM, its peak);
- `relay stats` from start to exit (median of 3), and the database's size beside the
  raw bytes of the messages;
- retention: relay restarted with `max_messages` a tenth of the count and
  `prune_interval = 1`, so that it prunes 90% of the messages while one client sends
  a message after another; the MAIL-to-250 latency of those (p99), how long the prune
  took, and whether every queued recipient (deferred, held) is exactly as before.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

from bench import fair, load, pgseed, servers
from bench.runner import machine
from bench.seed import COMMON_WORD, seed
from bench.ui import memory
from relay.config import StorageConfig
from relay.store import Store
from relay.store.retention import KEPT
from relay.store.schema import message, recipient

SIZE = 5120


class PruningRelay(servers.Relay):
    """relay serve as shipped, but for retention: at most `keep` messages, checked every
    second."""

    def __init__(self, workdir: Path, db_url: str, keep: int) -> None:
        super().__init__(workdir, db_url=db_url)
        self.keep = keep

    def config_text(self) -> str:
        """The shipped config with max_messages and prune_interval set."""
        text = super().config_text()
        for old, new in (
            ("# max_messages = 0\n", f"max_messages = {self.keep}\n"),
            ("# prune_interval = 60.0\n", "prune_interval = 1.0\n"),
        ):
            if old not in text:
                raise RuntimeError(f"relay.toml no longer has {old.strip()!r}")
            text = text.replace(old, new, 1)
        return text


@contextmanager
def database(pg: str | None, workdir: Path, keep: str | None = None) -> Iterator[tuple[str, bool]]:
    """The database's URL and whether it is seeded already: SQLite's WORKDIR/relay.db (a
    fresh one unless kept there), or a PostgreSQL database beside `pg`: a fresh one,
    dropped after, or with `keep` relay_scale_KEEP, kept (seeded already when a run
    finished seeding it: its comment says so)."""
    if not pg:
        path = workdir.resolve() / "relay.db"
        yield f"sqlite+aiosqlite:///{path}", path.exists()
        return
    base, _, _ = pg.rpartition("/")
    name = f"relay_scale_{keep or os.getpid()}"
    admin = base.replace("postgresql+asyncpg", "postgresql") + "/postgres"
    seeded = asyncio.run(pgseed.kept(admin, name)) if keep else False
    if not keep:
        asyncio.run(pgseed.admin_run(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{base}/{name}", seeded
    finally:
        if not keep:
            asyncio.run(pgseed.admin_run(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def fill(url: str, count: int, seeded: bool = False) -> dict[str, Any]:
    """Seed and index (unless `seeded`); the messages and raw bytes stored, and the queued
    recipients. A PostgreSQL database is marked seeded once it is (see `kept`)."""
    store = Store(StorageConfig(url=url))
    await store.open()
    try:
        if not seeded:
            await seed_and_index(store, count)
        async with store.db.reader.connect() as conn:
            stored = (await conn.execute(select(func.count()).select_from(message))).scalar_one()
        if seeded:
            print(f"seeded already: {stored:,} messages", flush=True)
        raw = await raw_bytes(store)
        return {"messages": int(stored), "raw": raw, "queued": await queued(store)}
    finally:
        await store.close()


async def seed_and_index(store: Store, count: int) -> None:
    """Seed `count` messages; fill SQLite's search index as an idle relay would; mark a
    PostgreSQL database seeded."""
    seconds = await seed(store, count, batch=5000, size=SIZE)
    print(f"seeded {count:,} messages in {seconds:.0f} s ({count / seconds:,.0f}/s)", flush=True)
    if store.indexer is not None:  # SQLite: what an idle relay does after ingest
        started = time.perf_counter()
        await store.indexer.catch_up()
        print(f"search index filled in {time.perf_counter() - started:.0f} s", flush=True)
    if not (store.db.is_sqlite or store.db.is_mysql):
        await pgseed.mark_seeded(store)


async def raw_bytes(store: Store) -> int:
    """The bytes of every stored message, as received."""
    async with store.db.reader.connect() as conn:
        return int((await conn.execute(select(func.sum(message.c.size)))).scalar_one() or 0)


async def queued(store: Store) -> list[tuple[Any, ...]]:
    """Every recipient the queue owns, with what a prune must not change."""
    columns = (recipient.c.id, recipient.c.message_id, recipient.c.status)
    query = select(*columns, recipient.c.attempts, recipient.c.next_attempt_at)
    query = query.where(recipient.c.status.in_([s.value for s in KEPT]))
    async with store.db.reader.connect() as conn:
        return [tuple(r) for r in await conn.execute(query.order_by(recipient.c.id))]


async def after_prune(url: str) -> dict[str, Any]:
    """The queued recipients and the count of messages after the prune."""
    store = Store(StorageConfig(url=url))
    await store.open()
    try:
        async with store.db.reader.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(message))).scalar_one()
        return {"queued": await queued(store), "messages": int(total)}
    finally:
        await store.close()


def files_size(workdir: Path) -> int:
    """The SQLite database's bytes on disk: the file and its WAL."""
    return sum(p.stat().st_size for p in workdir.glob("relay.db*"))


async def size_on_disk(url: str) -> int:
    """PostgreSQL's database's bytes on disk."""
    store = Store(StorageConfig(url=url))
    await store.open()
    try:
        async with store.db.reader.connect() as conn:
            query = text("SELECT pg_database_size(current_database())")
            return int((await conn.execute(query)).scalar_one())
    finally:
        await store.close()


FIRST: dict[str, float] = {}
"""Milliseconds of the first fetch of each path (cold caches, counts not yet kept)."""


def timed_fetch(client: httpx.Client, path: str, runs: int) -> float:
    """Median milliseconds of `runs` fetches of `path`, after one to warm up."""
    started = time.perf_counter()
    if client.get(path).status_code != 200:
        raise RuntimeError(f"{path} did not answer 200")
    FIRST[path] = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.get(path).read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def stats_seconds(config: Path) -> float:
    """Median seconds of three `relay stats` runs, start to exit."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "relay", "stats", "--config", str(config)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def serve_and_read(url: str, workdir: Path, runs: int, baseline: bool) -> dict[str, float]:
    """Start relay on the seeded database; time start, pages, API, stats; memory; with
    `baseline`, the ingest latency without a prune (it adds messages: a kept database
    measured with --no-prune is left as seeded, its newest messages the seeded ones)."""
    relay = servers.Relay(workdir, db_url=url)
    started = time.perf_counter()
    relay.start()  # returns once /healthz answers
    figures = {"start": time.perf_counter() - started}
    try:
        with httpx.Client(
            base_url=f"http://{servers.HOST}:{relay.web_port}", timeout=300
        ) as client:
            figures["list"] = timed_fetch(client, "/", runs)
            figures["search"] = timed_fetch(client, f"/?q={COMMON_WORD}", runs)
            figures["api"] = timed_fetch(client, "/api/v1/messages?limit=50", runs)
            figures["api_search"] = timed_fetch(
                client, f"/api/v1/search?query={COMMON_WORD}&limit=50", runs
            )
        figures["rss"], figures["hwm"] = memory(relay.pid)
        figures["stats"] = stats_seconds(workdir / "relay.toml")
        latencies: list[float] = []
        if baseline:
            with ingesting(relay.port) as latencies:  # the same client without a prune
                time.sleep(10)
        figures["base_p50"] = load.percentile(latencies, 0.5)
        figures["base_p99"] = load.percentile(latencies, 0.99)
    finally:
        relay.stop()
    return figures


POLL = 5.0
"""Seconds between two looks at the count while pruning: each look counts per status (at a
million on PostgreSQL, 0.6 s of the database's CPU; every 0.5 s, it starved the prune)."""


def total_messages(client: httpx.Client) -> int:
    """The number of stored messages, as the API's list reports it."""
    return int(client.get("/api/v1/messages?limit=1").json()["total"])


@contextmanager
def ingesting(port: int) -> Iterator[list[float]]:
    """While inside: one client sends a 5 KB message after another (5 ms apart) to
    `port`; the list fills with each MAIL-to-250 time in ms (sorted on the way out)."""
    latencies: list[float] = []
    stop = threading.Event()

    def send() -> None:
        data = load.message(SIZE) + b".\r\n"
        with load.Client(port) as smtp:
            while not stop.is_set():
                began = time.perf_counter()
                smtp.send(data)
                latencies.append((time.perf_counter() - began) * 1000)
                time.sleep(0.005)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        yield latencies
    finally:
        stop.set()
        sender.join(30)
        latencies.sort()


def prune_under_ingest(url: str, workdir: Path, count: int) -> dict[str, float]:
    """Restart relay with max_messages = count / 10; send one message after another
    until it is done pruning; the latencies meanwhile and the prune's duration."""
    keep = max(1, count // 10)
    relay = PruningRelay(workdir, url, keep)
    relay.start()
    started = time.perf_counter()
    try:
        with (
            ingesting(relay.port) as latencies,
            httpx.Client(base_url=f"http://{servers.HOST}:{relay.web_port}", timeout=300) as client,
        ):
            while total_messages(client) > keep + len(latencies) + 100:
                if time.perf_counter() - started > 3600:
                    break
                time.sleep(POLL)
            took = time.perf_counter() - started
    finally:
        relay.stop()
    return {
        "prune_seconds": took,
        "p99": load.percentile(latencies, 0.99),
        "p50": load.percentile(latencies, 0.5),
    }


def report(count: int, figures: dict[str, float], kind: str) -> str:
    """Target 3 beside the figures of the run."""
    rows = [
        fair.Target("UI list page", figures["list"], "<=", 30, "ms"),
        fair.Target(f"search: {COMMON_WORD} (common)", figures["search"], "<=", 100, "ms"),
        fair.Target("API list with totals", figures["api"], "<=", 50, "ms"),
        fair.Target("relay stats", figures["stats"], "<=", 1, "s"),
        fair.Target("server start", figures["start"], "<=", 2, "s"),
        fair.Target("RSS (peak, after the pages)", figures["hwm"], "<=", 250, "MB"),
        fair.Target("database size / raw bytes", figures["ratio"], "<=", 1.5, "x"),
        fair.Target("ingest p99 while pruning 90%", figures.get("p99"), "<=", 50, "ms"),
        fair.Target("queued recipients untouched (1 = yes)", figures.get("untouched"), ">=", 1),
    ]
    extra = (
        f"  (API search for {COMMON_WORD}: {figures['api_search']:.1f} ms; prune of"
        f" {count - count // 10:,} took {figures.get('prune_seconds', -1):.0f} s, ingest p50"
        f" {figures.get('p50', -1):.1f} ms meanwhile; the same client without a prune: p50"
        f" {figures['base_p50']:.1f} ms, p99 {figures['base_p99']:.1f} ms; RSS after"
        f" start-up and pages {figures['rss']:.0f} MB)"
    )
    extra += (
        "\n  (first fetch after start, cold: "
        + ", ".join(f"{path} {ms:,.0f} ms" for path, ms in FIRST.items())
        + ")"
    )
    title = f"targets (issue 20, target 3: {count:,} messages of 5 KB, {kind}, relay as shipped)"
    return fair.targets_table(title, rows) + "\n" + extra


def bytecode() -> None:
    """Write the bytecode of relay's and the web UI's modules, as an installed relay has it
    (pip compiles a wheel's modules at install). Without it, a checkout run with
    PYTHONDONTWRITEBYTECODE=1 (as some shells and CI set) compiles about 185 modules at
    every start of `relay serve` and `relay stats`: 0.5 s of CPU that no user pays."""
    import compileall

    import relay
    import web

    for package in (relay, web):
        compileall.compile_dir(Path(str(package.__file__)).parent, quiet=1)


def run(
    url: str, workdir: Path, count: int, runs: int, prune: bool, reuse: bool = False
) -> dict[str, float]:
    """Every measurement of target 3 on `url` (`reuse`: it is seeded already, with however
    many messages it holds: `messages` in the figures)."""
    bytecode()
    seeded = asyncio.run(fill(url, count, reuse))
    count = seeded["messages"]
    figures = serve_and_read(url, workdir, runs, baseline=prune)
    figures["messages"] = count
    size = files_size(workdir) if url.startswith("sqlite") else asyncio.run(size_on_disk(url))
    figures["ratio"] = size / max(1, seeded["raw"])
    print(f"raw bytes {seeded['raw']:,}; database {size:,} ({figures['ratio']:.2f}x)", flush=True)
    if prune:
        figures.update(prune_under_ingest(url, workdir, count))
        left = asyncio.run(after_prune(url))
        figures["untouched"] = float(left["queued"] == seeded["queued"])
        print(
            f"after the prune: {left['messages']:,} messages; {len(left['queued']):,} queued"
            f" recipients (before: {len(seeded['queued']):,})"
        )
    return figures


def options(argv: list[str] | None) -> argparse.Namespace:
    """The command line's options."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--count", type=int, default=1_000_000, help="messages (1,000,000)")
    p.add_argument("--pg", help="a PostgreSQL URL: a fresh database is made beside it")
    p.add_argument("--runs", type=int, default=7, help="timed fetches per page (7)")
    p.add_argument("--no-prune", action="store_true", help="skip the retention run")
    p.add_argument(
        "--keep",
        metavar="DIR|NAME",
        help="SQLite: seed into DIR/relay.db and keep it; with --pg: seed into the database"
        " relay_scale_NAME beside the one named and keep it; a later run with the same"
        " --keep (and --no-prune, which leaves it as seeded) measures it again without"
        " seeding",
    )
    args = p.parse_args(argv)
    if args.pg and args.keep and not re.fullmatch(r"[a-z0-9_]{1,40}", args.keep):
        p.error("--keep NAME with --pg: lower-case letters, digits and _ only")
    return args


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run on SQLite or PostgreSQL, print the targets."""
    args = options(argv)
    print(f"machine: {machine()}", flush=True)
    kind = "PostgreSQL" if args.pg else "SQLite"
    prune = not args.no_prune
    if args.keep and not args.pg:
        workdir = Path(args.keep)
        workdir.mkdir(parents=True, exist_ok=True)
        with database(None, workdir) as (url, reuse):
            figures = run(url, workdir, args.count, args.runs, prune, reuse)
    else:
        with (
            tempfile.TemporaryDirectory(prefix="relay-scale-") as tmp,
            database(args.pg, Path(tmp), args.keep) as (url, reuse),
        ):
            figures = run(url, Path(tmp), args.count, args.runs, prune, reuse)
    print()
    print(report(int(figures["messages"]), figures, kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
