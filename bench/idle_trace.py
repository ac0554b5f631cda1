"""Where the idle delivery delay goes: relay mode's path from ingest to the sink, step by step.

    .venv/bin/python -m bench.idle_trace [--messages 300]

The idle client of bench/relay.py (one message at a time, 20-50 ms apart) sends to a relay
that relays to the recording sink, as `make bench-relay` does, but relay runs with
timestamps (CLOCK_MONOTONIC, as the client and the sink use) at the entry and exit of
each step of the path: the store (the group commit, durable on return), the claim, the
delivery task, the SMTP transaction to the sink, the recorded result. Printed: for each
step, p50, p90 and p99 of its time after the message reached the store, and the idle
delay itself (our 250 to the sink's 250). The timestamps cost a few microseconds a step.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import load, runner, servers
from bench import relay as bench_relay
from bench.sinks import RelayToSink, Sink

OUT = "RELAY_IDLE_TRACE"
"""The environment variable naming the file the traced relay writes its timestamps to."""
STEPS = [
    ("store<", "committed, durable (add_message returns: the 250 follows)"),
    ("claim>", "a claim starts"),
    ("claim<", "the claim has leased it"),
    ("deliver>", "its delivery task starts"),
    ("transmit>", "the SMTP transaction starts"),
    ("transmit<", "the sink's reply is read"),
    ("record<", "the result is recorded"),
]


def _traced(events: list[tuple[float, str, str | None]]) -> None:
    """Wrap the steps of the delivery path with timestamps (in the relay process)."""
    from relay.delivery.recorder import Recorder
    from relay.delivery.worker import Worker
    from relay.store import Store
    from relay.store.queue import Queue

    def wrap(cls: Any, name: str, label: str, key: Callable[[Any, Any], str | None]) -> None:
        original = getattr(cls, name)

        @functools.wraps(original)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            result = await original(*args, **kwargs)
            message_id = key(args, result)  # a claim knows its messages only at the end
            events.append((start, label + ">", message_id))
            events.append((time.monotonic(), label + "<", message_id))
            return result

        setattr(cls, name, wrapper)

    def first(claims: Any) -> str | None:
        return claims[0].message_id if claims else None

    wrap(Store, "add_message", "store", lambda a, r: a[1].id)
    wrap(Queue, "claim_batch", "claim", lambda a, r: None if r is None else first(r.claims))
    wrap(Worker, "_deliver", "deliver", lambda a, r: a[1].first.message_id)
    wrap(Worker, "_transmit", "transmit", lambda a, r: a[1][0].message_id)
    wrap(Recorder, "record", "record", lambda a, r: a[1][0].message_id if a[1] else None)


def serve(argv: list[str]) -> int:
    """Run `relay` with its delivery path traced; write the timestamps at exit."""
    events: list[tuple[float, str, str | None]] = []
    path = os.environ[OUT]
    atexit.register(lambda: Path(path).write_text(json.dumps(events)))
    _traced(events)
    from relay.cli import main as relay_main

    return relay_main(argv)


class TracedRelay(RelayToSink):
    """RelayToSink, its process run through `serve`."""

    def command(self) -> list[str]:
        """`python -m bench.idle_trace --serve serve --config …`."""
        command = super().command()
        return [sys.executable, "-m", "bench.idle_trace", "--serve", *command[3:]]


def steps(events: list[tuple[float, str, str | None]]) -> dict[str, list[float]]:
    """For each step, its times (ms) after its message reached the store."""
    first: dict[str, dict[str, float]] = {}
    for at, label, message_id in sorted(events):
        if message_id is not None:
            first.setdefault(message_id, {}).setdefault(label, at)
    times: dict[str, list[float]] = {label: [] for label, _ in STEPS}
    for marks in first.values():
        start = marks.get("store>")
        if start is None:
            continue
        for label in times:
            if label in marks:
                times[label].append((marks[label] - start) * 1000)
    return times


def report(times: dict[str, list[float]], delay: bench_relay.Delay, messages: int) -> str:
    """The table of steps and the delay."""
    lines = [f"{'step (ms after the message reached the store)':<58}{'p50':>8}{'p90':>8}{'p99':>8}"]
    for label, what in STEPS:
        values = times[label]
        if not values:
            lines.append(f"{what:<58}{'never':>8}")
            continue
        row = "".join(f"{load.percentile(sorted(values), q):8.2f}" for q in (0.5, 0.9, 0.99))
        share = "" if len(values) == messages else f"  ({len(values)} of {messages})"
        lines.append(f"{what:<58}{row}{share}")
    p90 = load.percentile(sorted(delay.samples), 0.9)
    lines.append(
        f"idle delay, our 250 → the sink's 250: p50 {delay.p50:.2f}  p90 {p90:.2f}"
        f"  p99 {delay.p99:.2f}  (mean {statistics.mean(delay.samples):.2f})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start the sink and a traced relay, send the idle messages, print where time went."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--serve"]:
        return serve(args_in[1:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=300, help="idle messages (300)")
    parser.add_argument("--size", type=int, default=5120, help="message size in bytes (5120)")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    args = parser.parse_args(args_in)
    with tempfile.TemporaryDirectory(prefix="relay-idle-trace-") as tmp:
        work = Path(tmp)
        trace = work / "trace.json"
        os.environ[OUT] = str(trace)
        sink = Sink(runner.resolve_loop(args.loop))
        (work / "relay").mkdir()
        relay = TracedRelay(work / "relay", sink, args.loop, None)
        print(f"machine: {runner.machine()}", flush=True)
        with servers.running([sink, relay]):
            runner.ready([sink, relay])
            delay = bench_relay.idle_delay(relay, sink, args.messages, args.size)
        events = [(at, label, key) for at, label, key in json.loads(trace.read_text())]
    print(report(steps(events), delay, args.messages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
