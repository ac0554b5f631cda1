"""Ingest: relay in capture mode under load, beside the aiosmtpd null handler and smtp-sink.

    .venv/bin/python -m bench.ingest [--rounds N] [--sessions 1,8,32] [--loop auto]

Prints messages/s for 1 / 8 / 32 parallel sessions, one message per connection and
connections kept open (smtp-source -d), and the p50/p99 latency of a single sequential
client. Load comes from Postfix's smtp-source (Debian: apt-get install postfix, see
bench/README.md) or, when it is missing, from a Python generator.
"""

from __future__ import annotations

import sys

from bench import runner


def main(argv: list[str] | None = None) -> int:
    """Run the ingest benchmark and print its table."""
    return runner.main(__doc__ or "", argv, with_postfix=False, rounds=1)


if __name__ == "__main__":
    sys.exit(main())
