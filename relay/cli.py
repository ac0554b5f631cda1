"""The `relay` command line: serve, check-config, hash-password, stats, queue, sendmail, db,
healthcheck.

Each further command lives in its own module (relay/cli_*.py) with an `add_parser(sub)`
that registers it; relay.cli_output has the exit codes and output helpers they share.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from relay import __version__, cli_db, cli_health, cli_queue, cli_sendmail, cli_stats, passwords
from relay.cli_output import DB_HELP, DEFAULT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from relay.cli_output import load as _load
from relay.config import config_warnings, load_config, resolved, with_overrides
from relay.errors import ConfigError, StartupError, StoreError

if TYPE_CHECKING:
    import asyncio

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

log = logging.getLogger("relay")


def _setup_logging(level: str, prefix: str = "") -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("mail.log", "uvicorn.error", "uvicorn.access", "aiosqlite", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def loop_factory(event_loop: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop constructor for `[server] event_loop`: uvloop's or asyncio's (None)."""
    if event_loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if event_loop == "uvloop":
            raise StartupError(
                "event_loop = \"uvloop\" but uvloop is not installed: pip install 'relay[speed]'"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def cmd_serve(args: argparse.Namespace) -> int:
    """Run relay until SIGTERM or SIGINT."""
    import asyncio

    from relay.app import Relay  # the server's imports, for `serve` alone (cli_output.run_async)
    from relay.helpers import as_helper

    helper = args.smtp_helper is not None
    try:
        config = with_overrides(
            _load(args.config), smtp=args.smtp, web=args.web, db=args.db, roles=args.role
        )
        if helper:
            config = as_helper(resolved(config))
    except ConfigError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _setup_logging(config.server.log_level, f"smtp-helper-{args.smtp_helper} " if helper else "")
    for warning in [] if helper else config_warnings(config):
        log.warning("%s", warning)
    try:
        with asyncio.Runner(loop_factory=loop_factory(config.server.event_loop)) as runner:
            command = None if helper else _helper_command(args)
            relay = Relay(config, helper_command=command, helper=helper)
            runner.run(relay.run())
    except ConfigError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StartupError, StoreError) as exc:
        log.error("%s", exc)
        return EXIT_FAILURE
    return EXIT_OK


def _helper_command(args: argparse.Namespace) -> list[str]:
    """`relay serve` as this process was started, as an SMTP helper (number appended)."""
    command = [sys.executable, "-m", "relay", "serve"]
    for flag, value in (("--config", args.config), ("--smtp", args.smtp), ("--db", args.db)):
        if value is not None:
            command += [flag, value]
    return [*command, "--smtp-helper"]


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file: exit 0 when valid, 2 with the problem when not."""
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for warning in config_warnings(config):
        print(f"relay: warning: {warning}", file=sys.stderr)
    print(f"{args.file}: valid")
    return EXIT_OK


def _read_password() -> str | None:
    """The new password: asked twice on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            print("relay: the passwords differ", file=sys.stderr)
            return None
        return first
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def cmd_hash_password(args: argparse.Namespace) -> int:
    """Print a scrypt hash for [auth.users] of a password read from stdin or a prompt."""
    password = _read_password()
    if password is None:
        return EXIT_FAILURE
    if not password:
        print("relay: empty password", file=sys.stderr)
        return EXIT_USAGE
    print(passwords.hash_password(password))
    return EXIT_OK


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

    serve = sub.add_parser("serve", help="accept mail over SMTP and serve the web UI")
    serve.add_argument("--config", help=f"config file (default: ./{DEFAULT_CONFIG} if present)")
    serve.add_argument("--smtp", metavar="HOST:PORT", help="one plain SMTP listener here")
    serve.add_argument("--web", metavar="HOST:PORT", help="web UI and API address")
    serve.add_argument("--db", metavar="URL", help=DB_HELP)
    serve.add_argument(
        "--role",
        metavar="ROLES",
        help="what this process runs, comma-separated among smtp,web,delivery (default: all)",
    )
    # Internal: how a primary starts its SMTP helpers ([server] smtp_processes).
    serve.add_argument("--smtp-helper", type=int, metavar="N", help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check-config", help="validate a config file (exit 0 valid, 2 not)")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)

    hashpw = sub.add_parser(
        "hash-password",
        help="print a password hash for [auth.users] (the password is read from stdin"
        " or asked for, never taken from the command line)",
    )
    hashpw.set_defaults(func=cmd_hash_password)
    cli_stats.add_parser(sub)
    cli_queue.add_parser(sub)
    cli_sendmail.add_parser(sub)
    cli_db.add_parser(sub)
    cli_health.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `relay` script and of `python -m relay`; called as `sendmail`
    (a link named so), it is `relay sendmail`."""
    if argv is None and Path(sys.argv[0]).name == "sendmail":
        argv = ["sendmail", *sys.argv[1:]]
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
