"""What every `relay` subcommand shares: exit codes scripts can trust, finding the
config and the database, and output as a table for people or JSON for scripts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from relay.config import Config, StorageConfig, load_config, with_overrides

if TYPE_CHECKING:
    from relay.store import Store
    from relay.store.database import Database

EXIT_OK = 0  # done
EXIT_FAILURE = 1  # the command could not do its job (the server failed to start)
EXIT_NOT_FOUND = 1  # nothing matched, no such message or recipient, nothing changed
EXIT_USAGE = 2  # bad configuration or arguments
EXIT_UNAVAILABLE = 3  # the database cannot be reached, or holds no relay data
DEFAULT_CONFIG = "relay.toml"
T = TypeVar("T")
DB_HELP = (
    "the database, overriding the config: a SQLite file (relay.db), sqlite:///relay.db,"
    " postgresql://USER@HOST/DB, mysql://USER@HOST/DB"
)


def load(path: str | None) -> Config:
    """The config in `path`, else ./relay.toml when present, else the defaults."""
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    return load_config(path)


def load_for(args: argparse.Namespace) -> Config:
    """The config a command's --config and --db flags name (raises ConfigError)."""
    return with_overrides(load(args.config), db=getattr(args, "db", None))


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's `coroutine` to its end in a new event loop.

    asyncio, the store and SQLAlchemy are imported only by the commands that run one, so
    that `relay --help`, `check-config` and `sendmail` start in a few tens of ms.
    """
    import asyncio

    return asyncio.run(coroutine)


async def open_database(storage: StorageConfig) -> Database:
    """An existing relay database, never creating one (`check_existing` says when it
    raises LookupError). Only the database: a command that reads a few figures (`relay
    stats`) loads none of the Store's queue, retention, webhooks or MIME code."""
    from relay.store.database import Database  # here, not on top: see run_async

    db = Database(storage)
    try:
        await check_existing(db)
    except BaseException:
        await db.close()
        raise
    return db


async def open_existing(storage: StorageConfig) -> Store:
    """The store of an existing relay database, never creating one (`check_existing`
    says when it raises LookupError)."""
    from relay.store import Store  # here, not on top: see run_async

    store = Store(storage)
    try:
        await check_existing(store.db)
    except BaseException:
        await store.close()
        raise
    return store


async def check_existing(db: Database) -> None:
    """Raise LookupError when `db` holds no relay database (a missing SQLite file, an
    empty database) or its schema is another."""
    import asyncio

    path = Path(str(db.url.database))
    if db.is_sqlite and not await asyncio.to_thread(path.exists):
        raise LookupError(f"no relay database at {db.url.database}")
    schema = await db.schema_state()
    if schema.current is None:
        raise LookupError(f"no relay database at {db.display_url}")
    if not schema.up_to_date:
        raise LookupError(
            f"the database schema is at revision {schema.describe()}, this relay needs"
            f" {schema.head}: run `relay db upgrade`"
        )


def print_json(data: Any, out: TextIO | None = None) -> None:
    """`data` as indented JSON on stdout."""
    print(json.dumps(data, indent=2, sort_keys=False), file=out or sys.stdout)


def table(rows: Sequence[Sequence[object]], header: Sequence[str] | None = None) -> str:
    """Rows as aligned columns (numbers right-aligned), with an optional header line."""
    lines = [list(map(str, row)) for row in rows]
    if header is not None:
        lines.insert(0, list(header))
    if not lines:
        return ""
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(lines[0]))]
    out = []
    for line in lines:
        cells = [
            cell.rjust(width) if cell.replace(".", "", 1).isdigit() else cell.ljust(width)
            for cell, width in zip(line, widths, strict=False)
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def fail(message: str, code: int = EXIT_FAILURE) -> int:
    """Print `relay: message` on stderr and return `code`."""
    print(f"relay: {message}", file=sys.stderr)
    return code


def age(seconds: float | None) -> str:
    """A length of time for people: "45s", "3m 10s", "2h 5m", "4d 1h"; "-" for None."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def iso_time(epoch: float | None) -> str | None:
    """An epoch as ISO 8601 UTC to the second, for JSON; None stays None."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
