"""Measure ingest on several servers in one run: alternating runs, medians, ratios.

Every scenario (parallel sessions, and one message per connection or connections kept open)
runs on every server in turn, the order rotating from round to round, so that whatever
else the machine is doing weighs on all of them alike. Figures are medians over rounds;
ratios compare medians of the same run. Besides messages/s, the CPU time the server's
process tree used per message is printed: on a busy machine it is steadier than the rate.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench import fair, load, postfix, servers


@dataclass(frozen=True)
class Scenario:
    """Parallel sessions, and whether each connection carries many messages."""

    sessions: int
    keep_open: bool

    @property
    def label(self) -> str:
        """Short description for tables."""
        how = "kept open" if self.keep_open else "1 msg/conn"
        return f"{self.sessions:>2} sessions, {how}"


@dataclass
class Results:
    """Every measurement of a run, by server name and scenario."""

    tool: str
    rates: dict[str, dict[Scenario, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    cpu_us: dict[str, dict[Scenario, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    latency: dict[str, list[load.Latency]] = field(default_factory=lambda: defaultdict(list))


def resolve_loop(name: str) -> str:
    """The event loop for `name`: auto means uvloop when it is installed, else asyncio."""
    if name != "auto":
        return name
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def measure(
    targets: list[servers.Server],
    scenarios: list[Scenario],
    rounds: int,
    messages: int,
    size: int,
    latency_messages: int,
    tool: str,
) -> Results:
    """Run every scenario on every server, `rounds` times, rotating the order."""
    send = {"smtp-source": load.smtp_source, "python": load.python_source}[tool]
    results = Results(tool=tool)
    for server in targets:  # warm up: processes spawned, caches filled, schema created
        send(server.port, 8, min(messages, 200), size, False)
        server.settle()
    for round_no in range(rounds):
        order = targets[round_no % len(targets) :] + targets[: round_no % len(targets)]
        for scenario in scenarios:
            for server in order:
                ready(targets)
                cpu_before = servers.process_tree_cpu(server.pid)
                run = send(server.port, scenario.sessions, messages, size, scenario.keep_open)
                server.settle()
                cpu = servers.process_tree_cpu(server.pid) - cpu_before
                results.rates[server.name][scenario].append(run.rate)
                results.cpu_us[server.name][scenario].append(cpu / messages * 1e6)
                print(
                    f"  round {round_no + 1} {scenario.label:<24} {server.name:<14}"
                    f" {run.rate:8.0f} msg/s",
                    flush=True,
                )
        for server in order:
            if latency_messages:
                ready(targets)
                latency = load.sequential_latency(server.port, latency_messages, size)
                server.settle()
                results.latency[server.name].append(latency)
    return results


def ready(targets: list[servers.Server]) -> None:
    """Before a measured run: every server has finished its leftover work (Postfix's
    queue drained, relay's indexer done) and the machine is idle."""
    for target in targets:
        target.settle()
    fair.wait_idle(t.pid for t in targets)


def ingest_targets(results: Results, names: list[str], scenarios: list[Scenario]) -> str:
    """Issue 20's target 1 for capture ingest, beside relay's ratio to Postfix with 32
    sessions (relay: the shipped configuration)."""
    wanted = {False: 3.0, True: 4.5}
    rows: list[fair.Target] = []
    for keep_open, limit in wanted.items():
        scenario = Scenario(32, keep_open)
        value = None
        if {"relay", "postfix"} <= set(names) and scenario in scenarios:
            value = statistics.median(results.rates["relay"][scenario]) / statistics.median(
                results.rates["postfix"][scenario]
            )
        what = f"ingest, 32 sessions, {scenario.label.split(', ')[1]}: relay / Postfix"
        rows.append(fair.Target(what, value, ">=", limit, "x"))
    title = "targets (issue 20, target 1: relay as shipped, medians of the alternating rounds)"
    return fair.targets_table(title, rows) + _stack_ceiling(results, names, scenarios)


def _stack_ceiling(results: Results, names: list[str], scenarios: list[Scenario]) -> str:
    """The aiosmtpd null handler's ratio to Postfix in the same scenarios: what one process
    of a server built on aiosmtpd could reach at most on this machine."""
    if not {"aiosmtpd-null", "postfix"} <= set(names):
        return ""
    lines = ["", "the SMTP stack alone (aiosmtpd, a handler that keeps nothing) / Postfix:"]
    for scenario in scenarios:
        if scenario.sessions != 32:
            continue
        ratio = statistics.median(results.rates["aiosmtpd-null"][scenario]) / statistics.median(
            results.rates["postfix"][scenario]
        )
        lines.append(f"  {scenario.label}: {ratio:.2f}x")
    return "\n".join(lines)


def report(results: Results, names: list[str], scenarios: list[Scenario]) -> str:
    """The table of medians and the ratios of each relay (relay, relay-2p…) to the others."""
    ours = [n for n in names if n.startswith("relay")]
    others = [n for n in names if n not in ours]
    pairs = [(a, b) for a in ours for b in others]
    lines = [f"messages/s (median; CPU µs per message in brackets; load: {results.tool})"]
    head = f"{'scenario':<26}" + "".join(f"{n:>20}" for n in names)
    head += "".join(f"{a + '/' + b:>22}" for a, b in pairs)
    lines.append(head)
    for scenario in scenarios:
        rate = {n: statistics.median(results.rates[n][scenario]) for n in names}
        cpu = {n: statistics.median(results.cpu_us[n][scenario]) for n in names}
        row = f"{scenario.label:<26}"
        row += "".join(f"{rate[n]:>11.0f} [{cpu[n]:>5.0f}]" for n in names)
        row += "".join(f"{rate[a] / rate[b]:>22.2f}" for a, b in pairs)
        lines.append(row)
    if any(results.latency.values()):
        lines.append("")
        lines.append(
            "single sequential client, MAIL FROM → 250 after the dot (ms, median of rounds)"
        )
        for name in names:
            samples = results.latency[name]
            if not samples:
                continue
            p50 = statistics.median(s.p50 for s in samples)
            p99 = statistics.median(s.p99 for s in samples)
            lines.append(f"  {name:<16} p50 {p50:6.2f}   p99 {p99:6.2f}")
    return "\n".join(lines)


def as_json(results: Results, names: list[str], scenarios: list[Scenario]) -> object:
    """Every raw figure, for the record."""
    return {
        "tool": results.tool,
        "machine": machine(),
        "rates": {n: {s.label: results.rates[n][s] for s in scenarios} for n in names},
        "cpu_us_per_message": {
            n: {s.label: results.cpu_us[n][s] for s in scenarios} for n in names
        },
        "latency_ms": {
            n: [{"p50": x.p50, "p99": x.p99} for x in results.latency[n]] for n in names
        },
    }


def machine() -> str:
    """One line about this machine."""
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if "model name" in ln), "")
    except OSError:
        pass
    cpus = os.cpu_count()
    return f"{platform.platform()}, {cpus} CPUs {model}, Python {platform.python_version()}"


def parser(description: str, rounds: int) -> argparse.ArgumentParser:
    """The options shared by bench.ingest and bench.compare."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--messages", type=int, default=2000, help="messages per run (2000)")
    p.add_argument("--size", type=int, default=5120, help="message size in bytes (5120)")
    p.add_argument("--sessions", default="1,8,32", help="parallel sessions to try (1,8,32)")
    p.add_argument(
        "--mode",
        choices=("both", "per-connection", "kept-open"),
        default="both",
        help="one message per connection, connections kept open (smtp-source -d), or both",
    )
    p.add_argument("--rounds", type=int, default=rounds, help=f"alternating rounds ({rounds})")
    p.add_argument("--latency-messages", type=int, default=500, help="sequential client (500)")
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    p.add_argument("--tool", choices=("auto", "smtp-source", "python"), default="auto")
    p.add_argument(
        "--db-url",
        action="append",
        default=[],
        help="another database to run relay on, beside a fresh SQLite file (repeatable;"
        " an empty PostgreSQL or MySQL database: relay-pg, relay-mysql)",
    )
    p.add_argument(
        "--smtp-processes",
        default="shipped",
        help="relays to run, comma-separated: shipped (relay.toml as shipped: relay) or a"
        " number of [server] smtp_processes (2: relay-2p); default shipped",
    )
    p.add_argument("--only", help="comma-separated servers to run (default: all available)")
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    return p


def main(description: str, argv: list[str] | None, with_postfix: bool, rounds: int) -> int:
    """Build the servers, measure, print the table."""
    args = parser(description, rounds).parse_args(argv)
    tool = args.tool
    if tool == "auto":
        tool = "smtp-source" if load.smtp_source_path() else "python"
        if tool == "python":
            print(
                "smtp-source not found: using the Python load generator, which takes CPU from"
                " the servers (install Debian's postfix package: see bench/README.md)"
            )
    loop = resolve_loop(args.loop)
    scenarios = [
        Scenario(int(s), keep)
        for keep in {"both": (False, True), "per-connection": (False,), "kept-open": (True,)}[
            args.mode
        ]
        for s in args.sessions.split(",")
    ]
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # Postfix's processes run as the postfix user
        targets: list[servers.Server] = []
        for number, db_url in enumerate([None, *args.db_url]):
            for choice in args.smtp_processes.split(","):
                count = None if choice == "shipped" else int(choice)
                relay_dir = work / f"relay-{choice}-{number}"
                relay_dir.mkdir()
                targets.append(
                    servers.Relay(
                        relay_dir, event_loop=args.loop, db_url=db_url, smtp_processes=count
                    )
                )
        targets.append(servers.NullSMTP(event_loop=loop))
        if servers.smtp_sink_available():
            targets.append(servers.Sink())
        else:
            print("smtp-sink not found: no no-storage reference (Debian package postfix)")
        if with_postfix:
            why_not = postfix.available()
            if why_not is None:
                targets.insert(1, servers.PostfixServer(work))
            else:
                print(f"no Postfix comparison: {why_not}")
        if args.only:
            wanted = set(args.only.split(","))
            targets = [t for t in targets if t.name in wanted]
        names = [t.name for t in targets]
        print(f"machine: {machine()}")
        print(f"servers: {', '.join(names)}; event loop {loop}; load {tool}")
        print(
            f"{args.messages} messages of {args.size} bytes per run, {args.rounds} round(s)",
            flush=True,
        )
        with servers.running(targets):
            results = measure(
                targets,
                scenarios,
                args.rounds,
                args.messages,
                args.size,
                args.latency_messages,
                tool,
            )
    print()
    print(report(results, names, scenarios))
    print()
    print(ingest_targets(results, names, scenarios))
    print(fair.IDLE.summary())
    if args.json:
        args.json.write_text(json.dumps(as_json(results, names, scenarios), indent=2))
    return 0
