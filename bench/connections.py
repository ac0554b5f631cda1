"""Many connections: 1,000 idle SMTP sessions, the one beyond the limit, 500 sending.

    .venv/bin/python -m bench.connections [--idle 1000] [--senders 500] [--messages 10]

relay serves with the shipped relay.toml, its listener's max_connections set to `--idle`
(the limit). The script then, with issue 20's target 4 beside each figure:

- opens `--idle` sessions (banner read, EHLO answered) and leaves them idle; the resident
  memory of relay's whole process tree (VmRSS summed) is the figure;
- opens one more: it must get 421 at once (the time to that reply is printed);
- closes them, waits until relay is quiet, then runs `--senders` sessions at once, each
  sending `--messages` messages of 5 KB one after another on its connection; per
  message, the time from MAIL to the 250 after the final dot; p50 and p99;
- the same senders against the aiosmtpd null handler (bench/nullsmtp.py: stock aiosmtpd
  on the same event loop, a handler that keeps nothing), unless `--no-null`: the latency
  of the SMTP stack alone under that load, the floor below relay's figure.

The clients run in this process on one event loop (uvloop when installed), so on a
small machine they share the cores with relay: the latencies include that.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from bench import fair, load, servers
from bench.runner import machine

IDLE_RSS_MB = 300.0
"""Target: relay's resident memory with the idle sessions."""
AT_ONCE_MS = 100.0
"""What "at once" means for the 421 of the session beyond the limit."""
SENDING_P99_MS = 100.0
"""Target: p99 from MAIL to the 250 after the dot with the senders at work."""
T = TypeVar("T")


class LimitedRelay(servers.Relay):
    """relay serve as shipped, its listener allowing `limit` sessions at once."""

    def __init__(self, workdir: Path, limit: int) -> None:
        super().__init__(workdir)
        self.limit = limit

    def config_text(self) -> str:
        """The shipped config with the listener's max_connections set."""
        text = super().config_text()
        old = "# max_connections = 100\n"
        if text.count(old) != 1:
            raise RuntimeError(f"relay.toml no longer has one {old.strip()!r}")
        return text.replace(old, f"max_connections = {self.limit}\n")


def tree_rss_mb(pid: int) -> float:
    """VmRSS of `pid` and its descendants, summed, in MB."""
    parent: dict[int, int] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parent[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
    total = 0.0
    for candidate in parent:
        node = candidate
        while node > 1 and node != pid:
            node = parent.get(node, 0)
        if node != pid:
            continue
        try:
            with open(f"/proc/{candidate}/status") as fh:
                rss = next((ln for ln in fh if ln.startswith("VmRSS:")), "VmRSS: 0 kB")
        except OSError:
            continue
        total += int(rss.split()[1]) / 1024
    return total


async def reply(reader: asyncio.StreamReader) -> bytes:
    """One whole SMTP reply (its last line)."""
    while True:
        line = await reader.readline()
        if not line or line[3:4] != b"-":
            return line


async def idle_session(port: int) -> asyncio.StreamWriter:
    """A session greeted and EHLO'd, then left idle; its writer (to close it)."""
    reader, writer = await asyncio.open_connection(servers.HOST, port)
    if not (await reply(reader)).startswith(b"220"):
        raise RuntimeError("no 220 banner")
    writer.write(b"EHLO idle.bench.invalid\r\n")
    if not (await reply(reader)).startswith(b"250"):
        raise RuntimeError("EHLO refused")
    return writer


async def one_too_many(port: int) -> tuple[bytes, float]:
    """The first reply a session beyond the limit gets, and how long it took (ms)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(servers.HOST, port)
    first = await asyncio.wait_for(reply(reader), 10)
    took = (time.perf_counter() - started) * 1000
    writer.close()
    return first, took


async def idle(port: int, count: int, pid: int) -> tuple[float, bytes, float]:
    """Open `count` idle sessions; relay's RSS then, and the reply to one more."""
    writers: list[asyncio.StreamWriter] = []
    for start in range(0, count, 100):  # in waves, as clients arrive
        batch = [idle_session(port) for _ in range(min(100, count - start))]
        writers += await asyncio.gather(*batch)
    await asyncio.sleep(1)
    rss = tree_rss_mb(pid)
    first, took = await one_too_many(port)
    for writer in writers:
        writer.close()
    return rss, first, took


async def sender(port: int, messages: int, data: bytes, out: list[float]) -> None:
    """One session sending `messages` one after another; MAIL-to-250 times into `out`."""
    reader, writer = await asyncio.open_connection(servers.HOST, port)
    await reply(reader)
    writer.write(b"EHLO sender.bench.invalid\r\n")
    await reply(reader)
    for _ in range(messages):
        started = time.perf_counter()
        for command, code in (
            (f"MAIL FROM:<{load.MAIL_FROM}>\r\n".encode(), b"250"),
            (f"RCPT TO:<{load.RCPT_TO}>\r\n".encode(), b"250"),
            (b"DATA\r\n", b"354"),
            (data, b"250"),
        ):
            writer.write(command)
            answer = await reply(reader)
            if not answer.startswith(code):
                raise RuntimeError(f"unexpected reply {answer!r}")
        out.append((time.perf_counter() - started) * 1000)
    writer.write(b"QUIT\r\n")
    await reply(reader)
    writer.close()


async def sending(port: int, senders: int, messages: int) -> list[float]:
    """`senders` sessions at once, each sending `messages`; every MAIL-to-250 time."""
    data = load.message(5120) + b".\r\n"
    out: list[float] = []
    await asyncio.gather(*(sender(port, messages, data, out) for _ in range(senders)))
    return sorted(out)


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop when installed, else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def report(
    args: argparse.Namespace,
    rss: tuple[float, float],
    first: bytes,
    took: float,
    times: list[float],
    null: list[float] | None = None,
) -> str:
    """The figures, then target 4 beside them."""
    p99 = load.percentile(times, 0.99)
    floor = (
        []
        if not null
        else [
            f"the same against the aiosmtpd null handler: p50 {statistics.median(null):.1f} ms,"
            f" p99 {load.percentile(null, 0.99):.1f} ms (the SMTP stack alone)"
        ]
    )
    lines = [
        f"relay's RSS after start {rss[0]:.0f} MB; with {args.idle:,} idle sessions"
        f" {rss[1]:.0f} MB",
        f"session {args.idle + 1:,}: {first.decode(errors='replace').strip()!r} in {took:.1f} ms",
        f"{args.senders} sessions sending {args.messages} each: MAIL to 250, p50"
        f" {statistics.median(times):.1f} ms, p99 {p99:.1f} ms ({len(times):,} messages)",
        *floor,
        "",
    ]
    rows = [
        fair.Target(f"RSS with {args.idle:,} idle sessions", rss[1], "<=", IDLE_RSS_MB, "MB"),
        fair.Target(
            f"session {args.idle + 1:,} gets 421 (ms to the reply)",
            took if first.startswith(b"421") else None,
            "<=",
            AT_ONCE_MS,
            "ms",
        ),
        fair.Target(f"{args.senders} sending: MAIL to 250, p99", p99, "<=", SENDING_P99_MS, "ms"),
    ]
    title = "targets (issue 20, target 4: relay as shipped, the listener's limit set)"
    return "\n".join(lines) + fair.targets_table(title, rows)


def main(argv: list[str] | None = None) -> int:
    """Start relay, measure, print the targets."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--idle", type=int, default=1000, help="idle sessions, the limit (1000)")
    p.add_argument("--senders", type=int, default=500, help="sessions sending at once (500)")
    p.add_argument("--messages", type=int, default=10, help="messages per sender (10)")
    p.add_argument(
        "--no-null", action="store_true", help="skip the senders against the null handler"
    )
    args = p.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 2 * args.idle + 200))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # relay inherits it too
    print(f"machine: {machine()}; open files limit {wanted}", flush=True)
    with tempfile.TemporaryDirectory(prefix="relay-conns-") as tmp:
        relay = LimitedRelay(Path(tmp), args.idle)
        with servers.running([relay]):
            rss_start = tree_rss_mb(relay.pid)
            rss, first, took = run_loop(idle(relay.port, args.idle, relay.pid))
            fair.wait_quiet(relay.pid)
            times = run_loop(sending(relay.port, args.senders, args.messages))
        null = None
        if not args.no_null:
            loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"  # as relay's
            floor = servers.NullSMTP(event_loop=loop)
            with servers.running([floor]):
                fair.wait_quiet(floor.pid)
                null = run_loop(sending(floor.port, args.senders, args.messages))
    print(report(args, (rss_start, rss), first, took, times, null))
    return 0


if __name__ == "__main__":
    sys.exit(main())
