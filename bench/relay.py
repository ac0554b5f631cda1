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
import contextlib
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import load, postfix, runner, servers

HOST = servers.HOST
IDLE_GAP = (0.020, 0.050)
"""Seconds the idle client waits between two messages (uniformly at random)."""
SINK_TIMEOUT = 120.0
"""Seconds to wait for the sink to get every message of a run before giving up."""


class Sink(servers.Server):
    """bench/sink.py in its own process, asked over its stdin/stdout what it recorded."""

    name = "sink"

    def __init__(self, event_loop: str) -> None:
        super().__init__()
        self.event_loop = event_loop

    def command(self) -> list[str]:
        """python -m bench.sink on the port."""
        loop = "uvloop" if self.event_loop == "uvloop" else "asyncio"
        return [sys.executable, "-m", "bench.sink", f"{HOST}:{self.port}", "--loop", loop]

    def start(self) -> None:
        """Start the sink with pipes for its control channel; wait for its banner."""
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        servers.wait_banner(self.port, self.proc)

    def _ask(self, command: str) -> Any:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the sink exited")
        return json.loads(line)

    def count(self) -> int:
        """Messages accepted since the last `take`."""
        return int(self._ask("count"))

    def take(self) -> tuple[int, list[tuple[float, str | None]]]:
        """(connections made, [(monotonic time of the 250, X-Bench-Id)]) since the last
        take; the sink forgets them."""
        taken = self._ask("take")
        return int(taken["connections"]), [(float(t), i) for t, i in taken["accepted"]]

    def wait_for(self, messages: int, timeout: float = SINK_TIMEOUT) -> None:
        """Return once the sink has accepted `messages` since the last take."""
        deadline = time.monotonic() + timeout
        while (got := self.count()) < messages:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sink got {got} of {messages} messages in {timeout:.0f}s")
            time.sleep(0.01)

    def stop(self) -> None:
        """Close stdin (the sink stops), then the usual SIGTERM."""
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        super().stop()


class RelayToSink(servers.Relay):
    """relay serve, every recipient relayed to the sink (upstream defaults, no TLS)."""

    def __init__(
        self,
        workdir: Path,
        sink: Sink,
        event_loop: str,
        db_url: str | None,
        smtp_processes: int = 1,
        smtp_in_primary: bool = True,
    ) -> None:
        super().__init__(
            workdir,
            event_loop=event_loop,
            db_url=db_url,
            smtp_processes=smtp_processes,
            smtp_in_primary=smtp_in_primary,
        )
        self.sink = sink

    def config_text(self) -> str:
        """Capture mode's config plus a catch-all relay route to [upstream.sink]."""
        return super().config_text() + (
            "[[route]]\n"
            'match = "*"\n'
            'action = "relay"\n'
            'upstream = "sink"\n'
            "[upstream.sink]\n"
            f'host = "{HOST}"\n'
            f"port = {self.sink.port}\n"
            'tls = "none"\n'
        )


class PostfixToSink(servers.Server):
    """A throwaway Postfix (bench/postfix.py) whose relayhost is a recording sink."""

    name = "postfix"

    def __init__(self, workdir: Path, sink: Sink) -> None:
        super().__init__()
        self.sink = sink
        self.instance = postfix.Postfix(workdir / "postfix", self.port, sink.port)

    @property
    def pid(self) -> int:
        """Postfix's master: smtpd, cleanup, qmgr and smtp are its children."""
        assert self.instance.master_pid is not None
        return self.instance.master_pid

    def start(self) -> None:
        """Start Postfix (the sink is started by the caller)."""
        try:
            self.instance.start()
            servers.wait_banner(self.port, None)
        except BaseException:
            self.stop()
            raise

    def settle(self) -> None:
        """Wait until Postfix's queue is empty."""
        self.instance.wait_empty()

    def stop(self) -> None:
        """Stop Postfix and delete its directory."""
        self.instance.stop()


class Direct(servers.Server):
    """The sink itself as the server under load: the ceiling of the setup."""

    name = "sink alone"

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.port = sink.port
        self.proc = sink.proc

    @property
    def pid(self) -> int:
        """The sink's process."""
        return self.sink.pid

    def start(self) -> None:
        """Nothing to start: the sink runs already."""

    def stop(self) -> None:
        """Nothing to stop here: the sink is stopped with the others."""


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
        index = min(len(self.samples) - 1, round(0.99 * (len(self.samples) - 1)))
        return self.samples[index]


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
                run = throughput(target, sink, scenario, args.messages, args.size, tool)
                results.runs[target.name][scenario.label].append(run)
                print(
                    f"  round {round_no + 1} {scenario.label:<24} {target.name:<11}"
                    f" {run.rate:7.0f} msg/s  {run.connections:4d} upstream connections",
                    flush=True,
                )
        for target in order:
            if args.idle_messages and not isinstance(target, Direct):
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
    lines.append(f"{ours}'s upstream connections (target: at most one per 50 messages)")
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
            " relay's target: p50 ≤ 5, p99 ≤ 25)"
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
        default=1,
        help="relay's [server] smtp_processes (1; 2 names it relay-2p)",
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
                    loop,
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
    if args.json:
        args.json.write_text(json.dumps(as_json(results, names), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
