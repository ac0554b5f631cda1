"""`relay serve`: run the listeners, the delivery worker and the web UI until SIGTERM.

The server's libraries (asyncio, the app and everything it builds) are imported inside the
command, so that the other commands start without them (output.run_async says why).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relay.cli.output import DB_HELP, DEFAULT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from relay.cli.output import load as _load
from relay.config import config_warnings, resolved, with_overrides
from relay.errors import ConfigError, StartupError, StoreError

if TYPE_CHECKING:
    import asyncio

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

    from relay.app import Relay  # the server's imports, for `serve` alone (output.run_async)
    from relay.processes import as_helper

    helper = args.smtp_helper is not None
    try:
        config = with_overrides(
            _load(args.config),
            smtp=args.smtp,
            web=args.web,
            db=args.db,
            roles=args.role,
            chaos=args.chaos,
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


def add_parser(sub: Any) -> None:
    """Register `relay serve`."""
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
    serve.add_argument(
        "--chaos",
        action="store_true",
        help="enable chaos ([chaos] enabled = true): its rules fire and its API answers",
    )
    # Internal: how a primary starts its SMTP helpers ([server] smtp_processes).
    serve.add_argument("--smtp-helper", type=int, metavar="N", help=argparse.SUPPRESS)
    serve.set_defaults(func=cmd_serve)
