"""`relay db upgrade` migrates the database schema to this relay's; `relay db current`
shows the schema's revision (exit 1 when it is not this relay's, for deploy scripts)."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from relay.cli.output import (
    DB_HELP,
    DEFAULT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    load_for,
    run_async,
)
from relay.config import Config
from relay.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from relay.store import Database


def _database(config: Config) -> Database:
    """The database of `config`, not yet connected."""
    from relay.store import Database  # here, not on top: see output.run_async

    return Database(config.storage)


async def upgrade(config: Config) -> str:
    """Run the migrations up to this relay's revision; say what was done."""
    db = _database(config)
    try:
        before = await db.upgrade()
        after = await db.schema_state()
    finally:
        await db.close()
    if before.up_to_date:
        return f"{db.display_url}: schema at revision {after.current}, the newest"
    return f"{db.display_url}: schema upgraded from revision {before.describe()} to {after.current}"


async def current(config: Config) -> tuple[str, bool]:
    """The schema's revision, said, and whether it is the one this relay needs."""
    db = _database(config)
    try:
        state = await db.schema_state()
    finally:
        await db.close()
    verdict = "up to date" if state.up_to_date else f"this relay needs {state.head}"
    return f"{db.display_url}: schema at revision {state.describe()} ({verdict})", state.up_to_date


def cmd_db(args: argparse.Namespace) -> int:
    """Run `relay db ACTION`."""
    try:
        config = load_for(args)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    logging.basicConfig(level=logging.WARNING)
    try:
        if args.action == "upgrade":
            print(run_async(upgrade(config)))
            return EXIT_OK
        said, up_to_date = run_async(current(config))
    except StoreError as exc:
        return fail(str(exc))
    print(said)
    return EXIT_OK if up_to_date else EXIT_FAILURE


def add_parser(sub: Any) -> None:
    """Register `relay db`."""
    db = sub.add_parser("db", help="the database schema: upgrade it, or show its revision")
    db.add_argument(
        "action",
        choices=["upgrade", "current"],
        help="upgrade: migrate to this relay's schema (run it once per database, before"
        " starting the new relay); current: show the schema's revision",
    )
    db.add_argument("--config", help=f"config file (default: ./{DEFAULT_CONFIG} if present)")
    db.add_argument("--db", metavar="URL", help=DB_HELP)
    db.set_defaults(func=cmd_db)
