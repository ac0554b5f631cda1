"""The web UI with many stored messages: list, search and a 1 MB message, over HTTP.

    .venv/bin/python -m bench.ui                 # 100,000 messages in a temporary SQLite file
    .venv/bin/python -m bench.ui --count 20000 --db postgresql+asyncpg://postgres@127.0.0.1/bench

Seeds the database (bench/seed.py: bulk inserts, plus one real multipart message of about
1 MB stored the way SMTP DATA stores it), starts `relay serve` on it in its own process
(capture mode, free loopback ports), then fetches each page over one kept-alive HTTP
connection: the list, searches for a common and a rare word, the same through the JSON
API, and the large message's page, tabs and body views. The app sends no Server-Timing
header, so the time is the client's round trip on loopback (request sent to last byte
read), which is the server's time plus well under a millisecond; the CPU time the relay
process used per request is printed beside it. Then the relay process's resident memory
(VmRSS, and its peak VmHWM) from /proc, after start and after the page loads.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import servers
from bench.runner import machine, resolve_loop
from bench.seed import COMMON_WORD, LARGE_SIZE, RARE_WORD, add_large, seed
from relay import mime
from relay.config import Config, StorageConfig
from relay.store import Store

LIST_TARGET_MS = 50.0
SEARCH_TARGET_MS = 200.0
RSS_TARGET_MB = 200.0


@dataclass(frozen=True)
class Case:
    """One page to time, and the target its median should meet (0: none)."""

    label: str
    path: str
    target_ms: float = 0.0


@dataclass(frozen=True)
class Timing:
    """The figures of one case: median and best round trip, CPU and bytes per request."""

    case: Case
    median_ms: float
    best_ms: float
    cpu_ms: float
    size: int


def cases(large_id: str, part_id: str) -> list[Case]:
    """The pages to time: list, searches, API, and the large message's views."""
    m = f"/message/{large_id}"
    return [
        Case("GET / (list, page 1)", "/", LIST_TARGET_MS),
        Case(f"GET /?q={COMMON_WORD} (common word)", f"/?q={COMMON_WORD}", SEARCH_TARGET_MS),
        Case("GET /?q=<rare word> (1 in 10,000)", f"/?q={RARE_WORD}", SEARCH_TARGET_MS),
        Case("GET /?status=failed", "/?status=failed", LIST_TARGET_MS),
        Case("API messages (50)", "/api/v1/messages", LIST_TARGET_MS),
        Case(f"API search {COMMON_WORD}", f"/api/v1/search?query={COMMON_WORD}", SEARCH_TARGET_MS),
        Case("API search <rare word>", f"/api/v1/search?query={RARE_WORD}", SEARCH_TARGET_MS),
        Case("1 MB message: page (HTML tab)", m),
        Case("1 MB message: page, text tab", f"{m}?tab=text"),
        Case("1 MB message: page, source tab", f"{m}?tab=source"),
        Case("1 MB message: body.html (iframe)", f"{m}/body.html"),
        Case("1 MB message: /view/ID.html", f"/view/{large_id}.html"),
        Case("1 MB message: /view/ID.txt", f"/view/{large_id}.txt"),
        Case("1 MB message: API message", f"/api/v1/message/{large_id}"),
        Case("1 MB message: attachment", f"{m}/part/{part_id}"),
    ]


async def prepare(url: str, count: int, size: int) -> tuple[str, int, str]:
    """Seed `count` messages and the large one into `url`; return its id, its size and
    the part id of its attachment."""
    storage = StorageConfig(url=url)
    store = Store(storage)
    await store.open()
    try:
        seconds = await seed(store, count)
        print(f"seeded {count:,} messages in {seconds:.1f} s ({url.split(':')[0]})")
        large_id, stored = await add_large(store, Config(storage=storage), size)
        raw = await store.messages.raw(large_id)
        if store.indexer is not None:  # SQLite: fill the search index, as an idle relay does
            started = time.perf_counter()
            indexed = await store.indexer.catch_up()
            took = time.perf_counter() - started
            print(f"indexed {indexed:,} messages for search in {took:.1f} s")
    finally:
        await store.close()
    assert raw is not None
    attachments = mime.view.of(raw).attachments
    return large_id, stored, attachments[0].part_id


def memory(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM (peak RSS) of `pid`, in MB."""
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024  # kB
    return fields["VmRSS"], fields["VmHWM"]


def measure(client: httpx.Client, pid: int, case: Case, runs: int) -> Timing:
    """Fetch `case` once to warm up, then `runs` times; median and best, CPU per request."""
    first = client.get(case.path)
    if first.status_code != 200:
        raise RuntimeError(f"{case.path}: HTTP {first.status_code}")
    times = []
    cpu_before = servers.process_tree_cpu(pid)
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(case.path)
        response.read()
        times.append((time.perf_counter() - started) * 1000)
    cpu = (servers.process_tree_cpu(pid) - cpu_before) / runs * 1000
    return Timing(case, statistics.median(times), min(times), cpu, len(first.content))


def header() -> list[str]:
    """The table's heading lines."""
    return [
        f"{'page':<42} {'median':>8} {'best':>8} {'CPU':>7} {'size':>9}  target",
        f"{'':<42} {'ms':>8} {'ms':>8} {'ms':>7} {'KB':>9}",
    ]


def row(t: Timing) -> str:
    """One page's line of the table, with its target when it has one."""
    target = ""
    if t.case.target_ms:
        verdict = "ok" if t.median_ms <= t.case.target_ms else "OVER"
        target = f"≤ {t.case.target_ms:.0f} ms {verdict}"
    return (
        f"{t.case.label:<42} {t.median_ms:8.1f} {t.best_ms:8.1f} {t.cpu_ms:7.1f}"
        f" {t.size / 1024:9.1f}  {target}"
    )


def run(url: str, workdir: Path, count: int, size: int, runs: int, loop: str) -> None:
    """Seed, start relay, time every page, print the table and the memory figures."""
    large_id, stored, part_id = asyncio.run(prepare(url, count, size))
    print(f"large message {large_id}: {stored:,} bytes")
    relay = servers.Relay(workdir, event_loop=loop, db_url=url)
    relay.start()
    try:
        with httpx.Client(base_url=f"http://{servers.HOST}:{relay.web_port}") as client:
            servers.wait_http(f"http://{servers.HOST}:{relay.web_port}/healthz", 30)
            rss, hwm = memory(relay.pid)
            print(f"relay serve (pid {relay.pid}, event loop {loop}) after start:")
            print(f"  VmRSS {rss:.0f} MB, VmHWM {hwm:.0f} MB")
            print(
                f"\nmedian and best of {runs} fetches over one kept-alive connection (client"
                " round trip on loopback); CPU: the relay process's per fetch\n"
            )
            print("\n".join(header()), flush=True)
            for case in cases(large_id, part_id):
                print(row(measure(client, relay.pid, case, runs)), flush=True)
            rss, hwm = memory(relay.pid)
    finally:
        relay.stop()
    print()
    verdict = "ok" if hwm <= RSS_TARGET_MB else "OVER"
    print(
        f"relay serve after the page loads: VmRSS {rss:.0f} MB, VmHWM {hwm:.0f} MB"
        f" (target ≤ {RSS_TARGET_MB:.0f} MB: {verdict})"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="small messages to seed")
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--size", type=int, default=LARGE_SIZE, help="bytes of the large one")
    parser.add_argument("--runs", type=int, default=7, help="timed fetches per page")
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = args.db or f"sqlite+aiosqlite:///{workdir / 'relay.db'}"
        run(url, workdir, args.count, args.size, args.runs, resolve_loop(args.loop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
