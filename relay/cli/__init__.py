"""The `relay` command line: serve, check-config, hash-password, stats, queue, sendmail, db,
healthcheck, dkim, suppression.

Each command (or group of commands) lives in a module of this package with an
`add_parser(sub)` that registers it; relay.cli.output has the exit codes and output
helpers they share. Only `serve`, and the commands that open the database, import the
server's libraries, inside the command (output.run_async), so that `relay --help`,
`check-config`, `healthcheck` and `sendmail` start quickly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from relay import __version__
from relay.cli import configure, db, dkim, health, queue, sendmail, serve, stats, suppression
from relay.cli.output import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="relay",
        description="A local SMTP relay and capture server. `relay COMMAND --help` tells more.",
        epilog="Exit codes: 0 done; 1 nothing matched or not found (queue), or the server"
        " could not start (serve); 2 usage or configuration error; 3 the database cannot be"
        " used (stats, queue). sendmail exits with sendmail's codes (sysexits.h).",
    )
    parser.add_argument("--version", action="version", version=f"relay {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve.add_parser(sub)
    configure.add_parsers(sub)
    stats.add_parser(sub)
    queue.add_parser(sub)
    sendmail.add_parser(sub)
    db.add_parser(sub)
    health.add_parser(sub)
    dkim.add_parser(sub)
    suppression.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `relay` script and of `python -m relay`; called as `sendmail`
    (a link named so), it is `relay sendmail`."""
    if argv is None and Path(sys.argv[0]).name == "sendmail":
        argv = ["sendmail", *sys.argv[1:]]
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
