"""What makes a comparison fair, and the issue's targets beside the figures.

- relay runs with the relay.toml it ships (only its addresses and database changed),
  so the figures are those of `make run`, not of settings a user must know to set;
- before each measured run every server under test has finished what the previous run
  left it (relay's search indexer, Postfix's queue) and the machine is idle, or as idle
  as it gets within `IDLE_WAIT` seconds when other work shares it;
- targets are printed beside the measured figure with whether they hold.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bench import servers

SHIPPED = Path(__file__).resolve().parent.parent / "relay.toml"
"""The relay.toml in the repository: what `make run` serves with."""
QUIET_CPU = 0.03
"""A server is quiet when its process tree uses less than this share of one core."""
MACHINE_BUSY = 0.5
"""The machine is idle enough when less than this share of all its cores is busy."""
WINDOW = 0.5
"""Seconds over which CPU use is sampled."""
IDLE_WAIT = 30.0
"""Most seconds to wait for the machine (servers under test: 120 s) to become idle."""


def shipped_config(smtp: str, web: str, db_url: str, server: dict[str, object]) -> str:
    """relay.toml as shipped, listening on `smtp` and `web`, storing in `db_url`, with
    `server` keys (smtp_processes...) set in [server]; everything else as shipped."""
    text = SHIPPED.read_text()
    replaced = {
        'address = "127.0.0.1:1025"': f'address = "{smtp}"',
        'address = "127.0.0.1:8025"': f'address = "{web}"',
        'url = "sqlite+aiosqlite:///relay.db"': f'url = "{db_url}"',
    }
    for old, new in replaced.items():
        if text.count(old) != 1:
            raise RuntimeError(f"relay.toml no longer has exactly one line {old!r}")
        text = text.replace(old, new)
    lines = "".join(f"{key} = {_toml(value)}\n" for key, value in server.items())
    return re.sub(r"(?m)^\[server\]\n", lambda m: m.group(0) + lines, text, count=1)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(f) for f in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    total = sum(fields[:8])
    return total - idle, total


@dataclass
class IdleLog:
    """How long the waits for idleness took, and how many gave up on a busy machine."""

    waits: int = 0
    seconds: float = 0.0
    busy_starts: int = 0

    def summary(self) -> str:
        """One line for the report."""
        mean = self.seconds / self.waits if self.waits else 0.0
        return (
            f"waited for idle before {self.waits} runs (mean {mean:.1f} s); "
            f"{self.busy_starts} started with the machine still more than"
            f" {MACHINE_BUSY:.0%} busy after {IDLE_WAIT:.0f} s (other work on it)"
        )


IDLE = IdleLog()


def wait_idle(pids: Iterable[int]) -> None:
    """Wait until every process tree in `pids` is quiet (leftover work done: at most
    120 s), then until the whole machine is idle (at most IDLE_WAIT seconds)."""
    pids = list(pids)
    start = time.monotonic()
    trees_quiet = machine_idle = False
    while True:
        before = [servers.process_tree_cpu(pid) for pid in pids]
        busy0, total0 = _machine_busy_ticks()
        time.sleep(WINDOW)
        used = [servers.process_tree_cpu(pid) - b for pid, b in zip(pids, before, strict=True)]
        busy1, total1 = _machine_busy_ticks()
        trees_quiet = all(u < QUIET_CPU * WINDOW for u in used)
        machine_idle = (busy1 - busy0) < MACHINE_BUSY * max(1, total1 - total0)
        waited = time.monotonic() - start
        if trees_quiet and (machine_idle or waited > IDLE_WAIT):
            break
        if waited > 120:
            break
    IDLE.waits += 1
    IDLE.seconds += time.monotonic() - start
    if not machine_idle:
        IDLE.busy_starts += 1


def wait_quiet(pid: int, timeout: float = 120.0) -> None:
    """Wait until `pid`'s process tree is quiet: the work a run left is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = servers.process_tree_cpu(pid)
        time.sleep(WINDOW)
        if servers.process_tree_cpu(pid) - before < QUIET_CPU * WINDOW:
            return


@dataclass(frozen=True)
class Target:
    """One target of the issue: `what`, measured `value`, which must be `op` `limit`."""

    what: str
    value: float | None
    op: str
    limit: float
    unit: str = ""

    @property
    def holds(self) -> bool | None:
        """Whether it holds (None: not measured in this run)."""
        if self.value is None:
            return None
        check: dict[str, Callable[[float, float], bool]] = {
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
        }
        return check[self.op](self.value, self.limit)


def _figure(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if value >= 100:
        return f"{value:,.0f} {unit}".rstrip()
    return f"{value:.3g} {unit}".rstrip()


def targets_table(title: str, targets: list[Target]) -> str:
    """The targets, each beside its measured figure and whether it holds."""
    width = max([len(t.what) for t in targets] + [6])
    lines = [title, f"  {'target':<{width}}  {'wanted':>14}  {'measured':>14}  holds"]
    for t in targets:
        wanted = f"{'≥' if t.op == '>=' else '≤'} {_figure(t.limit, t.unit)}"
        measured = "-" if t.value is None else _figure(t.value, t.unit)
        holds = {True: "yes", False: "NO", None: "not measured"}[t.holds]
        lines.append(f"  {t.what:<{width}}  {wanted:>14}  {measured:>14}  {holds}")
    return "\n".join(lines)
