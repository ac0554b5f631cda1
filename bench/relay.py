"""Relay mode: relay relaying everything to a recording sink, end to end, beside Postfix.

    .venv/bin/python -m bench.relay [--rounds N] [--messages 2000] [--sessions 32]

relay serves with a fresh SQLite file (WAL, synchronous = full) and one route that relays
every recipient to [upstream.sink], a recording sink on loopback (bench/sink.py) that notes
when it accepted each message and counts the connections made to it. Printed, as medians
over rounds:

- messages/s end to end: from the start of the load (smtp-source, else a Python generator)
  to the last message accepted by the sink, with connections kept open and with one message
  per connection; the CPU time relay's process used per message;
- the upstream connections relay opened during those runs, and messages per connection;
- idle delivery delay: one client sends messages one at a time, 20-50 ms apart, so that
  relay is idle when each arrives; per message, the time from our 250 (read by the client)
  to the sink's 250 for it (matched by an X-Bench-Id header); p50 and p99.

With Postfix installed and root (or --postfix), a throwaway Postfix relaying to a sink of
its own gets the same runs, alternating with relay from round to round, and the ratios are
printed. The sink alone (the load sent straight to it) is the ceiling of the setup.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench import fair, load, postfix, runner, servers
from bench.sinks import Direct, PostfixToSink, RelayToSink, Sink

HOST = servers.HOST
IDLE_GAP = (0.020, 0.050)
"""Seconds the idle client waits between two messages (uniformly at random)."""


@dataclass(frozen=True)
class Throughput:
    """One end-to-end run: messages in how long, on how many upstream connections."""

    messages: int
    seconds: float
    connections: int
    cpu_us: float

    @property
    def rate(self) -> float:
        """Messages per second, end to end."""
        return self.messages / self.seconds

    @property
    def per_connection(self) -> float:
        """Messages carried by each upstream connection opened."""
        return self.messages / max(1, self.connections)


@dataclass(frozen=True)
class Delay:
    """Idle delivery delays of one run, in milliseconds, sorted."""

    samples: list[float]

    @property
    def p50(self) -> float:
        """The median delay."""
        return statistics.median(self.samples)

    @property
    def p99(self) -> float:
        """The 99th percentile."""
        return load.percentile(self.samples, 0.99)


@dataclass
class Results:
    """Every run, by target name and scenario label."""

    tool: str
    runs: dict[str, dict[str, list[Throughput]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    delays: dict[str, list[Delay]] = field(default_factory=lambda: defaultdict(list))


def throughput(
    target: servers.Server,
    sink: Sink,
    scenario: runner.Scenario,
    messages: int,
    size: int,
    tool: str,
) -> Throughput:
    """Send `messages` to `target`; time from the start of the load to the sink's last 250."""
    send = {"smtp-source": load.smtp_source, "python": load.python_source}[tool]
    sink.take()
    cpu_before = servers.process_tree_cpu(target.pid)
    start = time.monotonic()
    send(target.port, scenario.sessions, messages, size, scenario.keep_open)
    sink.wait_for(messages)
    target.settle()
    connections, accepted = sink.take()
    cpu = servers.process_tree_cpu(target.pid) - cpu_before
    last = sorted(t for t, _ in accepted)[messages - 1]
    return Throughput(messages, last - start, connections, cpu / messages * 1e6)


def idle_delay(target: servers.Server, sink: Sink, messages: int, size: int) -> Delay:
    """One client, one connection, messages 20-50 ms apart; per message, our 250 to the
    sink's 250 (both on CLOCK_MONOTONIC)."""
    body = load.message(size)
    ours: dict[str, float] = {}
    run = f"{time.monotonic_ns():x}"
    pause = random.Random(0)
    sink.take()
    with load.Client(target.port) as client:
        for seq in range(messages):
            key = f"{run}-{seq}"
            client.send(f"X-Bench-Id: {key}\r\n".encode() + body + b".\r\n")
            ours[key] = time.monotonic()
            time.sleep(pause.uniform(*IDLE_GAP))
    sink.wait_for(messages)
    target.settle()
    _, accepted = sink.take()
    theirs = {key: t for t, key in accepted if key is not None}
    missing = set(ours) - set(theirs)
    if missing:
        raise RuntimeError(f"{len(missing)} idle messages did not reach the sink with their id")
    return Delay(sorted((theirs[k] - ours[k]) * 1000 for k in ours))


def measure(
    targets: list[servers.Server],
    sink: Sink,
    scenarios: list[runner.Scenario],
    args: argparse.Namespace,
    tool: str,
) -> Results:
    """Every scenario on every target, `rounds` times, the order rotating; then idle delays."""
    results = Results(tool=tool)
    send = {"smtp-source": load.smtp_source, "python": load.python_source}[tool]
    for target in targets:  # warm up: schema created, caches filled, processes spawned
        sink.take()
        warmup = min(args.messages, 200)
        send(target.port, 8, warmup, args.size, False)
        sink.wait_for(warmup)
        target.settle()
    for round_no in range(args.rounds):
        shift = round_no % len(targets)
        order = targets[shift:] + targets[:shift]
        for scenario in scenarios:
            for target in order:
                runner.ready([sink, *targets])
                run = throughput(target, sink, scenario, args.messages, args.size, tool)
                results.runs[target.name][scenario.label].append(run)
                print(
                    f"  round {round_no + 1} {scenario.label:<24} {target.name:<11}"
                    f" {run.rate:7.0f} msg/s  {run.connections:4d} upstream connections",
                    flush=True,
                )
        for target in order:
            if args.idle_messages and not isinstance(target, Direct):
                runner.ready([sink, *targets])
                delay = idle_delay(target, sink, args.idle_messages, args.size)
                results.delays[target.name].append(delay)
                print(
                    f"  round {round_no + 1} idle delay {target.name:<11}"
                    f" p50 {delay.p50:6.2f} ms  p99 {delay.p99:6.2f} ms",
                    flush=True,
                )
    return results


def report(
    results: Results, names: list[str], scenarios: list[runner.Scenario], ours: str = "relay"
) -> str:
    """The table of medians, connections and ratios (`ours`: relay's name in `names`)."""
    lines = [
        "end to end, load start → sink's last 250: messages/s (median), CPU µs/message of"
        f" the server's processes, upstream connections (load: {results.tool})"
    ]
    head = f"{'scenario':<26}" + "".join(f"{n:>30}" for n in names)
    if "postfix" in names:
        head += f"{ours + '/postfix':>20}"
    lines.append(head)
    for scenario in scenarios:
        row = f"{scenario.label:<26}"
        rate: dict[str, float] = {}
        for name in names:
            runs = results.runs[name][scenario.label]
            rate[name] = statistics.median(r.rate for r in runs)
            cpu = statistics.median(r.cpu_us for r in runs)
            conns = statistics.median(r.connections for r in runs)
            row += f"{rate[name]:>10.0f} msg/s [{cpu:5.0f}] {conns:>5.0f} cx"
        if "postfix" in names:
            row += f"{rate[ours] / rate['postfix']:>20.2f}"
        lines.append(row)
    lines.append("")
    lines.append(f"{ours}'s upstream connections (target: at most one per 100 messages)")
    for scenario in scenarios:
        runs = results.runs[ours][scenario.label]
        opened = [r.connections for r in runs]
        per = statistics.median(r.per_connection for r in runs)
        lines.append(
            f"  {scenario.label:<24} {statistics.median(opened):.0f} opened per"
            f" {runs[0].messages} messages (runs: {opened}), {per:.0f} messages per connection"
        )
    if any(results.delays.values()):
        lines.append("")
        lines.append(
            "idle delivery delay, our 250 → the sink's 250 (ms, median of rounds;"
            " relay's target: p50 ≤ 2, p99 ≤ 5)"
        )
        for name in names:
            delays = results.delays.get(name)
            if not delays:
                continue
            p50 = statistics.median(d.p50 for d in delays)
            p99 = statistics.median(d.p99 for d in delays)
            lines.append(
                f"  {name:<12} p50 {p50:7.2f}   p99 {p99:7.2f}"
                f"   ({len(delays[0].samples)} messages a round)"
            )
    return "\n".join(lines)


def relay_targets(
    results: Results, names: list[str], scenarios: list[runner.Scenario], ours: str
) -> str:
    """Issue 20's targets 1 (relay mode) and 2, beside the figures of this run."""
    rows: list[fair.Target] = []
    for keep_open in (True, False):
        scenario = runner.Scenario(32, keep_open)
        label = scenario.label
        runs = results.runs.get(ours, {}).get(label) if scenario in scenarios else None
        ratio = per = None
        if runs and "postfix" in names:
            ours_rate = statistics.median(r.rate for r in runs)
            theirs = statistics.median(r.rate for r in results.runs["postfix"][label])
            ratio = ours_rate / theirs
        if runs:
            per = statistics.median(r.per_connection for r in runs)
        how = label.split(", ")[1]
        rows.append(
            fair.Target(f"end to end, 32 sessions, {how}: relay / Postfix", ratio, ">=", 3, "x")
        )
        rows.append(fair.Target(f"messages per upstream connection, {how}", per, ">=", 100))
    delays = results.delays.get(ours)
    p50 = statistics.median(d.p50 for d in delays) if delays else None
    p99 = statistics.median(d.p99 for d in delays) if delays else None
    rows.append(fair.Target("idle delivery delay p50", p50, "<=", 2, "ms"))
    rows.append(fair.Target("idle delivery delay p99", p99, "<=", 5, "ms"))
    return fair.targets_table(
        f"targets (issue 20, targets 1 and 2: {ours}, medians of the alternating rounds)", rows
    )


def as_json(results: Results, names: list[str]) -> object:
    """Every raw figure, for the record."""
    return {
        "tool": results.tool,
        "machine": runner.machine(),
        "runs": {
            name: {
                label: [
                    {
                        "messages": r.messages,
                        "seconds": r.seconds,
                        "rate": r.rate,
                        "upstream_connections": r.connections,
                        "cpu_us_per_message": r.cpu_us,
                    }
                    for r in runs
                ]
                for label, runs in results.runs[name].items()
            }
            for name in names
        },
        "idle_delay_ms": {
            name: [{"p50": d.p50, "p99": d.p99, "samples": d.samples} for d in delays]
            for name, delays in results.delays.items()
        },
    }


def parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--messages", type=int, default=2000, help="messages per run (2000)")
    p.add_argument("--size", type=int, default=5120, help="message size in bytes (5120)")
    p.add_argument("--sessions", default="32", help="parallel sessions to try (32)")
    p.add_argument(
        "--mode",
        choices=("both", "per-connection", "kept-open"),
        default="both",
        help="connections kept open (smtp-source -d), one message per connection, or both",
    )
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (3)")
    p.add_argument(
        "--idle-messages", type=int, default=300, help="idle-delay client, 0: skip (300)"
    )
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    p.add_argument("--tool", choices=("auto", "smtp-source", "python"), default="auto")
    p.add_argument(
        "--db-url",
        action="append",
        default=[],
        help="another database to relay from, beside a fresh SQLite file (repeatable;"
        " an empty PostgreSQL or MySQL database: relay-pg, relay-mysql)",
    )
    p.add_argument(
        "--smtp-processes",
        type=int,
        default=None,
        help="relay's [server] smtp_processes (default: as shipped; 2 names it relay-2p)",
    )
    p.add_argument(
        "--helpers-only",
        action="store_true",
        help="[server] smtp_in_primary = false: only the helpers accept SMTP (relay-2p-h)",
    )
    postfix_group = p.add_mutually_exclusive_group()
    postfix_group.add_argument(
        "--postfix",
        action="store_true",
        default=None,
        help="compare with a throwaway Postfix (default: when installed and root)",
    )
    postfix_group.add_argument("--no-postfix", dest="postfix", action="store_false")
    p.add_argument("--no-sink-alone", action="store_true", help="skip the sink-alone runs")
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    return p


def main(argv: list[str] | None = None) -> int:
    """Start the sink, relay (and Postfix), measure, print the tables."""
    args = parser().parse_args(argv)
    tool = args.tool
    if tool == "auto":
        tool = "smtp-source" if load.smtp_source_path() else "python"
        if tool == "python":
            print("smtp-source not found: using the Python load generator (see bench/README.md)")
    loop = runner.resolve_loop(args.loop)
    modes = {"both": (True, False), "per-connection": (False,), "kept-open": (True,)}
    scenarios = [
        runner.Scenario(int(s), keep) for keep in modes[args.mode] for s in args.sessions.split(",")
    ]
    why_not = postfix.available()
    with_postfix = why_not is None if args.postfix is None else args.postfix
    if with_postfix and why_not is not None:
        print(f"no Postfix comparison: {why_not}")
        return 2
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # Postfix's processes run as the postfix user
        sink = Sink(loop)
        relays = []
        for number, db_url in enumerate([None, *args.db_url]):
            (work / f"relay-{number}").mkdir()
            relays.append(
                RelayToSink(
                    work / f"relay-{number}",
                    sink,
                    args.loop,
                    db_url,
                    args.smtp_processes,
                    smtp_in_primary=not args.helpers_only,
                )
            )
        relay = relays[0]
        targets: list[servers.Server] = [*relays]
        if with_postfix:
            targets.append(PostfixToSink(work, sink))
        print(f"machine: {runner.machine()}")
        print(
            f"relay mode to a recording sink; event loop {loop}; load {tool};"
            f" Postfix: {'yes' if with_postfix else why_not or 'no (--no-postfix)'}"
        )
        print(
            f"{args.messages} messages of {args.size} bytes per run, {args.rounds} round(s)",
            flush=True,
        )
        with servers.running([sink, *targets]):
            if not args.no_sink_alone:
                targets.append(Direct(sink))
            results = measure(targets, sink, scenarios, args, tool)
    names = [t.name for t in targets]
    print()
    print(report(results, names, scenarios, relay.name))
    print()
    print(relay_targets(results, names, scenarios, relay.name))
    print(fair.IDLE.summary())
    if args.json:
        args.json.write_text(json.dumps(as_json(results, names), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
