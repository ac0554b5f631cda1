"""`relay suppression list | add | remove`: the addresses relay no longer sends to, read
and changed in the database the server uses (docs/delivery.md#the-suppression-list)."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from relay.cli.output import (
    DB_HELP,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    fail,
    iso_time,
    load_for,
    open_existing,
    print_json,
    run_async,
    table,
)
from relay.errors import ConfigError

if TYPE_CHECKING:
    from relay.store import Store, Suppressed


def shown(entry: Suppressed) -> dict[str, Any]:
    """An entry as `--json` prints it (and the API answers it)."""
    return {
        "address": entry.address,
        "since": iso_time(entry.created_at),
        "expires": iso_time(entry.expires_at),
        "reason": entry.reason,
        "enhanced": entry.enhanced,
    }


async def _list(store: Store, args: argparse.Namespace) -> int:
    entries = await store.suppressions.entries(time.time(), args.limit)
    if args.json:
        print_json([shown(e) for e in entries])
    elif entries:
        rows = [[e.address, iso_time(e.created_at), iso_time(e.expires_at) or "never", e.reason]
                for e in entries]  # fmt: skip
        print(table(rows, header=["address", "since", "expires", "reason"]))
    else:
        print("no suppressed addresses")
    return EXIT_OK


async def _add(store: Store, args: argparse.Namespace) -> int:
    if "@" not in args.address or any(c in args.address for c in " \r\n\0<>"):
        return fail(f"not an address: {args.address!r}", EXIT_USAGE)
    entry = await store.suppressions.add(args.address, args.reason, time.time())
    print(
        f"suppressed {entry.address}"
        + (f" until {iso_time(entry.expires_at)}" if entry.expires_at else "")
    )
    return EXIT_OK


async def _remove(store: Store, args: argparse.Namespace) -> int:
    if not await store.suppressions.remove(args.address):
        return fail(f"{args.address} is not suppressed", EXIT_NOT_FOUND)
    print(f"{args.address} is no longer suppressed")
    return EXIT_OK


VERBS = {"list": _list, "add": _add, "remove": _remove}


def cmd_suppression(args: argparse.Namespace) -> int:
    """Run one verb; exit 0 done, 1 not on the list (remove), 2 usage or config, 3 no
    database."""
    try:
        config = load_for(args)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)

    async def go() -> int:
        store = await open_existing(config.storage)
        store.configure(config.webhook, config.suppression)  # ttl for the entries added
        try:
            return await VERBS[args.verb](store, args)
        finally:
            await store.close()

    try:
        return run_async(go())
    except LookupError as exc:
        return fail(str(exc), EXIT_UNAVAILABLE)
    except Exception as exc:  # noqa: BLE001 - reported in one line
        return fail(f"cannot use the database: {exc}", EXIT_UNAVAILABLE)


def add_parser(sub: Any) -> None:
    """Register `relay suppression list | add | remove`."""
    group = sub.add_parser(
        "suppression",
        help="addresses relay no longer sends to: list, add, remove (exit 0; 1 not listed;"
        " 2 usage; 3 no database)",
    )
    verbs = group.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="the suppressed addresses, newest first")
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    listing.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    adding = verbs.add_parser("add", help="suppress an address ([suppression] ttl applies)")
    adding.add_argument("address")
    adding.add_argument("--reason", default="added by an operator", help="why (shown in replies)")
    removing = verbs.add_parser("remove", help="send to an address again")
    removing.add_argument("address")
    for parser in (listing, adding, removing):
        parser.add_argument("--config", help="config file (default: ./relay.toml if present)")
        parser.add_argument("--db", metavar="URL", help=DB_HELP)
        parser.set_defaults(func=cmd_suppression)
