"""How long the quick commands take from start to exit, as a shell or cron job sees it.

Runs `python -m relay --help`, `relay check-config relay.toml` and `relay sendmail` (one
small message to the aiosmtpd null handler on loopback), and `python -c pass` for the
floor, many times each, after warm-up
runs, the way hyperfine does: mean ± standard deviation, min and max of the wall time.
Then one `python -X importtime` run of each, for the milliseconds spent importing.

    python -m bench.startup [--runs 30] [--source DIR]

`--source` times another checkout of relay (say the commit before a change) with the same
interpreter. PYTHONDONTWRITEBYTECODE is dropped from the children's environment, so that
they use compiled bytecode as an installed relay does.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.servers import HOST, NullSMTP

ROOT = Path(__file__).resolve().parent.parent
MESSAGE = b"Subject: nightly job\n\nThe nightly job finished.\n"
WARMUP = 3
_IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")


def commands(smtp: str) -> dict[str, list[str]]:
    """The commands timed, by label: what follows `python` on the command line."""
    relay = ["-m", "relay"]
    return {
        "python -c pass (the floor)": ["-c", "pass"],
        "relay --help": [*relay, "--help"],
        "relay check-config relay.toml": [*relay, "check-config", str(ROOT / "relay.toml")],
        "relay sendmail (one message)": [*relay, "sendmail", "--smtp", smtp, "ops@example.com"],
    }


def child_env() -> dict[str, str]:
    """The environment of the timed runs: this one, with bytecode caching allowed."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(args: list[str], source: Path, importtime: bool = False) -> tuple[float, str]:
    """Run `python ARGS` in `source`; its wall time in seconds and its stderr."""
    extra = ["-X", "importtime"] if importtime else []
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *extra, *args],
        cwd=source,
        input=MESSAGE,
        capture_output=True,
        env=child_env(),
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"python {' '.join(args)} exited {done.returncode}: {done.stderr!r}")
    return elapsed, done.stderr.decode(errors="replace")


def import_ms(stderr: str) -> float:
    """Milliseconds of imports in a `-X importtime` report: the top-level ones summed."""
    total = 0
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match and not match.group(2).startswith(" "):
            total += int(match.group(1))
    return total / 1000


def measure(label: str, args: list[str], source: Path, runs: int) -> None:
    """Time one command and print its line."""
    for _ in range(WARMUP):
        run_once(args, source)
    times = [run_once(args, source)[0] * 1000 for _ in range(runs)]
    imports = import_ms(run_once(args, source, importtime=True)[1])
    print(
        f"{label:<32} {statistics.mean(times):6.1f} ms ± {statistics.stdev(times):5.1f}"
        f"   min {min(times):6.1f}   max {max(times):6.1f}   imports {imports:6.1f} ms"
    )


def main(argv: list[str] | None = None) -> None:
    """Time each quick command against a null SMTP server."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each command")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout of relay to time")
    args = parser.parse_args(argv)
    server = NullSMTP()
    server.start()
    try:
        print(f"{args.runs} runs of each, after {WARMUP} to warm up, in {args.source}:")
        for label, command in commands(f"{HOST}:{server.port}").items():
            measure(label, command, args.source.resolve(), args.runs)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
