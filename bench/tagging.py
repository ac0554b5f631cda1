"""What tagging costs new mail: the tags of one message, and ingest with and without them.

    python -m bench.tagging                    # 20,000 tag computations, 3,000 messages stored
    python -m bench.tagging --messages 5000 --rounds 5

Two figures per setting, for the 5 KB plain messages of the ingest benchmark:
- **tags**: microseconds of CPU to find one message's tags as ingest does (`tagging.wanted`,
  then `relay.ingest.tags_for`: the X-Tags header, plus addresses, the `[[tag]]` rules
  judged in memory), beside the summary that ingest already makes of every message
  (`relay.mime.summary.summarize`);
- **ingest**: messages per second and CPU per message through `relay.ingest.submit` into
  a fresh SQLite file (32 at once, group commit, `sqlite_synchronous = "normal"` so that
  the disk does not drown the difference), the tags written with the message.

Settings: no tags at all (as shipped), an X-Tags header, plus addresses, ten rules on
headers and envelope, ten rules on free text (each reads the message's search text).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from relay import ingest, mime, tagging
from relay.config import Config, StorageConfig, TagRule, TagsConfig
from relay.store import Store

BODY = ("The quick brown fox jumps over the lazy dog. " * 110)[:5000]
HEADER_RULES = tuple(
    TagRule(match, (f"h{n}",))
    for n, match in enumerate(
        [
            "from:billing@shop.example",
            "to:ops@example.org",
            "subject:invoice",
            "has:attachment",
            "listener:submission",
            "user:app",
            "larger:1M",
            "is:queued",
            "message-id:shop.example",
            "-from:noreply subject:report",
        ]
    )
)
TEXT_RULES = tuple(
    TagRule(word, (f"t{n}",))
    for n, word in enumerate(
        [
            "invoice",
            "password reset",
            "unsubscribe",
            "refund",
            "order",
            "tracking",
            "welcome",
            "verify",
            '"lazy dog"',
            "zebra",
        ]
    )
)
SETTINGS: dict[str, tuple[Config, str]] = {
    "none (as shipped)": (Config(), ""),
    "X-Tags header": (Config(), "X-Tags: invoice, Order 12\r\n"),
    "plus addresses": (Config(tags=TagsConfig(plus_addresses=True)), ""),
    "10 header rules": (Config(tag=HEADER_RULES), ""),
    "10 free-text rules": (Config(tag=TEXT_RULES), ""),
}


def raw_message(extra: str, n: int = 0) -> bytes:
    """A 5 KB plain message as the ingest benchmark sends."""
    return (
        f"From: app@example.com\r\nTo: jane+news@example.org\r\nSubject: Message {n}\r\n"
        f"Message-ID: <{n}@app.example>\r\n{extra}\r\n{BODY}\r\n"
    ).encode()


def tag_cost(config: Config, extra: str, count: int) -> tuple[float, float]:
    """Median microseconds of CPU to tag one message, and to summarize it."""
    raw = raw_message(extra)
    summary = mime.summary.summarize(raw)
    arrival = tagging.Arrival(
        "app@example.com", [("jane+news@example.org", "captured")], len(raw), "smtp", None, 0.0
    )
    rounds_tags, rounds_summary = [], []
    for _ in range(5):
        started = time.process_time()
        for _ in range(count // 5):  # as ingest does: the gate, then the tags if wanted
            if tagging.wanted(config.tags, config.tag, summary):
                ingest.tags_for(config, summary, arrival)
        rounds_tags.append((time.process_time() - started) / (count // 5) * 1e6)
        started = time.process_time()
        for _ in range(count // 50):
            mime.summary.summarize(raw)
        rounds_summary.append((time.process_time() - started) / (count // 50) * 1e6)
    return statistics.median(rounds_tags), statistics.median(rounds_summary)


async def ingest_rate(
    config: Config, extra: str, messages: int, directory: Path
) -> tuple[float, float]:
    """Messages per second and CPU microseconds per message through ingest.submit."""
    storage = StorageConfig(url=f"sqlite+aiosqlite:///{directory / 'bench.db'}",
                            sqlite_synchronous="normal")  # fmt: skip
    store = Store(storage)
    await store.open()
    origin = ingest.Origin("smtp", "127.0.0.1")
    queue = [raw_message(extra, n) for n in range(messages)]

    async def sender() -> None:
        while queue:
            raw = queue.pop()
            await ingest.submit(
                store, config, "app@example.com", ["jane+news@example.org"], raw, origin
            )

    try:
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(sender() for _ in range(32)))
        wall, used = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await store.close()
    return messages / wall, used / messages * 1e6


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=20_000, help="tag computations (20000)")
    parser.add_argument("--messages", type=int, default=3000, help="messages stored per run")
    parser.add_argument("--rounds", type=int, default=3, help="ingest runs per setting (3)")
    args = parser.parse_args(argv)
    print(
        f"{'setting':<22} {'tags µs':>8} {'summary µs':>11} {'ingest msg/s':>13} {'CPU µs/msg':>11}"
    )
    for name, (config, extra) in SETTINGS.items():
        tags_us, summary_us = tag_cost(config, extra, args.calls)
        runs = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as directory:
                runs.append(asyncio.run(ingest_rate(config, extra, args.messages, Path(directory))))
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{name:<22} {tags_us:>8.1f} {summary_us:>11.1f} {rate:>13.0f} {cpu:>11.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
