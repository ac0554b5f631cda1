"""Compare: relay and a throwaway Postfix side by side, in one run, with ratios.

    sudo .venv/bin/python -m bench.compare [--rounds 3]

The ingest scenarios of bench.ingest, run on relay, Postfix (its own config, queue and
log under a temporary directory, listening on a loopback port only, relaying to an
smtp-sink on loopback), the aiosmtpd null handler and smtp-sink, alternating from round
to round; prints the medians and relay's ratio to each. Postfix's own figure swings from
run to run, hence the rounds. Without Postfix (or without root) it runs the others.
"""

from __future__ import annotations

import sys

from bench import runner


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print its table."""
    return runner.main(__doc__ or "", argv, with_postfix=True, rounds=3)


if __name__ == "__main__":
    sys.exit(main())
