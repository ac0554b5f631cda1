"""`relay stats`: messages, recipients and the queue, read from the database the server uses."""

from __future__ import annotations

import argparse
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from relay.cli.output import (
    DB_HELP,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    age,
    fail,
    load_for,
    open_database,
    print_json,
    run_async,
    table,
)
from relay.config import Config
from relay.errors import ConfigError

T = TypeVar("T")


async def gather(config: Config) -> dict[str, Any]:
    """The figures `relay stats` shows, as plain data: its three groups of counts asked
    side by side, each on its own connection (at a million messages on PostgreSQL, the
    statements took 0.95 s one after another)."""
    import asyncio

    from relay.store import counts  # see run_async

    db = await open_database(config.storage)

    async def on_own(count: Callable[[Any], Awaitable[T]]) -> T:  # a connection
        async with db.reader.connect() as conn:
            return await count(conn)

    try:
        (total, unread), statuses, recipients = await asyncio.gather(
            on_own(counts.count_totals), on_own(counts.count_statuses),
            on_own(counts.count_recipients),
        )  # fmt: skip
        size = await db.size()
    finally:
        await db.close()
    messages = counts.counts_of(total, unread, statuses)
    oldest = recipients.oldest_deferred_at
    return {
        "database": {"url": db.display_url, "size": size},
        "messages": {"total": messages.total, "unread": messages.unread, **messages.by_status},
        "recipients": recipients.by_status,
        "queue_depth": recipients.queue_depth,
        "oldest_deferred_age": None if oldest is None else round(time.time() - oldest, 1),
    }


def render(stats: dict[str, Any]) -> str:
    """The figures as tables for people."""
    messages = stats["messages"]
    recipients = stats["recipients"]
    statuses = [k for k in messages if k not in ("total", "unread")]
    parts = [
        f"database  {stats['database']['url']}  ({stats['database']['size']:,} bytes)",
        "",
        table(
            [["messages", messages["total"], ""], ["unread", messages["unread"], ""]]
            + [[status, messages[status], recipients.get(status, 0)] for status in statuses],
            header=["", "messages", "recipients"],
        ),
        "",
        f"queue depth      {stats['queue_depth']}",
        f"oldest deferred  {age(stats['oldest_deferred_age'])}",
    ]
    return "\n".join(parts)


def cmd_stats(args: argparse.Namespace) -> int:
    """Print the figures; exit 0, 2 on bad config, 3 when the database cannot be read."""
    try:
        config = load_for(args)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)
    try:
        stats = run_async(gather(config))
    except LookupError as exc:
        return fail(str(exc), EXIT_UNAVAILABLE)
    except Exception as exc:  # noqa: BLE001 - reported in one line
        return fail(f"cannot read the database: {exc}", EXIT_UNAVAILABLE)
    if args.json:
        print_json(stats)
    else:
        print(render(stats))
    return EXIT_OK


def add_parser(sub: Any) -> None:
    """Register `relay stats`."""
    stats = sub.add_parser(
        "stats",
        help="messages, recipients and the queue in the database (exit 0; 2 bad config;"
        " 3 database unreadable)",
    )
    stats.add_argument("--config", help="config file (default: ./relay.toml if present)")
    stats.add_argument("--db", metavar="URL", help=DB_HELP)
    stats.add_argument("--json", action="store_true", help="print JSON for scripts")
    stats.set_defaults(func=cmd_stats)
