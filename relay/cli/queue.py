"""`relay queue`: the delivery queue from a terminal, on the database the server uses.

    relay queue list    [FILTERS] [--limit N] [--offset N]
    relay queue groups  [--by destination|error] [FILTERS]
    relay queue shape   [--status STATUS]...
    relay queue show    ID
    relay queue retry   ID... | --all [FILTERS]     (hold, release and cancel alike)
    relay queue purge   --older-than AGE [--status STATUS]... [--dry-run]

FILTERS: --status deferred|failed|held, --destination relay:NAME|relay:mx:DOMAIN,
--domain DOMAIN, --error CODE|ENHANCED|TEXT (a key from `groups --by error`), --search WORDS.
An ID is a recipient number (the ID column of `list`) or a message ID (the MESSAGE column:
all its recipients); `show` shows the whole message either names.
`shape` is Postfix's qshape: per destination, the recipients waiting (queued, being sent
or deferred; --status to choose) by the minutes since their message arrived.
Retry and release make recipients due at once: a running relay on SQLite sends them at
its next look at the queue, within [delivery] poll_interval (15 s by default).

Exit codes: 0 done; 1 nothing matched, not found, or nothing changed; 2 usage or
configuration error; 3 the database cannot be used. --json prints JSON for scripts.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from relay.cli import queue_text as text
from relay.cli.output import (
    DB_HELP,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    fail,
    load_for,
    open_existing,
    print_json,
    run_async,
)
from relay.config import Config
from relay.config.durations import parse_duration
from relay.errors import ConfigError, StoreError
from relay.status import ACTIONS, DONE, SHOWN, Status, applies_to

if TYPE_CHECKING:
    from relay.store import QueueFilter, Store

Command = Callable[["Store", Config, argparse.Namespace], Awaitable[int]]

_MESSAGE_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}", re.IGNORECASE)
PAST = {"retry": "retried", "hold": "held", "release": "released", "cancel": "cancelled"}
FILTER_FLAGS = ("status", "destination", "domain", "error", "search")
SHAPE_STATUSES = tuple(
    s.value for s in (Status.QUEUED, Status.SENDING, Status.DEFERRED, Status.HELD)
)
SHAPE_DEFAULT = SHAPE_STATUSES[:3]


class UsageError(Exception):
    """The arguments do not make sense: exit 2 with this message."""


def message_id(value: str) -> str:
    """A message ID as stored (upper case); UsageError when `value` is not one."""
    if not _MESSAGE_ID.fullmatch(value):
        raise UsageError(f"not a message ID: {value!r}")
    return value.upper()


def read_filter(args: argparse.Namespace) -> QueueFilter:
    """The queue filter the flags describe; UsageError when a value is bad."""
    from relay.store import QueueFilter  # here, not on top: see output.run_async

    try:
        return QueueFilter.of(**{k: getattr(args, k, None) for k in FILTER_FLAGS})
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _has_filter(args: argparse.Namespace) -> bool:
    return any(getattr(args, k, None) for k in FILTER_FLAGS)


def older_than(value: str) -> float:
    """Seconds in a purge's --older-than; UsageError when it is not a duration."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def check(args: argparse.Namespace) -> None:
    """Refuse bad arguments (UsageError) before the database is opened."""
    if args.queue_command in ("list", "groups", *ACTIONS):
        read_filter(args)
    if args.queue_command in ACTIONS:
        _targets(args)
    elif args.queue_command == "show" and not args.id.isdigit():
        message_id(args.id)
    elif args.queue_command == "purge":
        older_than(args.older_than)


def run(args: argparse.Namespace, command: Command) -> int:
    """Check the arguments, load the config, open the existing database, run `command`;
    map failures to exit codes."""
    from sqlalchemy.exc import SQLAlchemyError  # here, not on top: see output.run_async

    try:
        check(args)
        config = load_for(args)
    except UsageError as exc:
        return fail(str(exc), EXIT_USAGE)
    except ConfigError as exc:
        return fail(str(exc), EXIT_USAGE)

    async def go() -> int:
        store = await open_existing(config.storage)
        store.configure(config.webhook, config.suppression)  # holds and releases raise events
        try:
            return await command(store, config, args)
        finally:
            await store.close()

    try:
        return run_async(go())
    except LookupError as exc:
        return fail(str(exc), EXIT_UNAVAILABLE)
    except (OSError, SQLAlchemyError, StoreError) as exc:
        return fail(f"cannot use the database: {exc}", EXIT_UNAVAILABLE)


async def list_queue(store: Store, config: Config, args: argparse.Namespace) -> int:
    """`relay queue list`: deferred, failed and held recipients, newest first."""
    page = await store.queue_view.page(read_filter(args), args.offset, args.limit)
    if args.json:
        print_json(
            {
                "total": page.total,
                "offset": page.offset,
                "limit": page.limit,
                "recipients": [text.row_data(r) for r in page.rows],
            }
        )
    elif page.rows:
        print(text.render_list(page, time.time()))
    else:
        fail("no deferred, failed or held recipient matches", EXIT_NOT_FOUND)
    return EXIT_OK if page.rows else EXIT_NOT_FOUND


async def groups(store: Store, config: Config, args: argparse.Namespace) -> int:
    """`relay queue groups`: the recipients grouped by destination or by error."""
    found = await store.queue_view.groups(args.by, read_filter(args))
    if args.json:
        print_json([text.group_data(g) for g in found])
    elif found:
        print(text.render_groups(args.by, found, time.time()))
    else:
        fail("no deferred, failed or held recipient matches", EXIT_NOT_FOUND)
    return EXIT_OK if found else EXIT_NOT_FOUND


async def shape(store: Store, config: Config, args: argparse.Namespace) -> int:
    """`relay queue shape`: recipients per destination by the age of their message."""
    now = time.time()
    found = await store.queue_shape(now, args.status or SHAPE_DEFAULT)
    if args.json:
        print_json(text.shape_data(found))
    else:
        print(text.render_shape(found, now))
    return EXIT_OK


async def show(store: Store, config: Config, args: argparse.Namespace) -> int:
    """`relay queue show`: a message's recipients and every attempt; the message is named
    by its ID or by one of its recipients' numbers."""
    if args.id.isdigit():
        found = await store.queue_view.find([int(args.id)])
        if not found:
            return fail(f"no such recipient: {args.id}", EXIT_NOT_FOUND)
        wanted = found[0].message_id
    else:
        wanted = message_id(args.id)
    row = await store.messages.get(wanted)
    if row is None:
        return fail(f"no such message: {args.id}", EXIT_NOT_FOUND)
    timeline = await store.timeline.of_message(row.id)
    if args.json:
        print_json(text.message_data(row, timeline))
    else:
        print(text.render_message(row, timeline, time.time()))
    return EXIT_OK


def _targets(args: argparse.Namespace) -> tuple[list[int], list[str]]:
    """The recipient numbers and message IDs named on the command line."""
    if args.all and args.ids:
        raise UsageError("give IDs or --all, not both")
    if not args.all and not args.ids:
        raise UsageError("give recipient numbers or message IDs, or --all with filters")
    if not args.all and _has_filter(args):
        raise UsageError("filters choose recipients only with --all")
    numbers = [int(i) for i in args.ids if i.isdigit()]
    messages = [message_id(i) for i in args.ids if not i.isdigit()]
    return numbers, messages


async def act(store: Store, config: Config, args: argparse.Namespace) -> int:
    """`relay queue retry|hold|release|cancel`: act on recipients, messages, or a filter."""
    action: str = args.queue_command
    numbers, messages = _targets(args)
    now = time.time()
    missing: list[str] = []
    if args.all:
        changed = await store.actions.act_matching(action, read_filter(args), now)
    else:
        found = {r.id for r in await store.queue_view.find(numbers)}
        missing += [str(n) for n in numbers if n not in found]
        changed = await store.actions.act_on(action, sorted(found), now)
        for wanted in messages:
            if await store.messages.get(wanted) is None:
                missing.append(wanted)
            else:
                changed += await store.actions.act(action, wanted, now)
    if args.json:
        print_json({"action": action, "changed": changed, "not_found": missing})
    else:
        print(f"{PAST[action]} {changed} recipient{'' if changed == 1 else 's'}")
        if changed and action in ("retry", "release"):
            print(
                "a running relay sends them at its next look at the queue, within"
                f" [delivery] poll_interval ({config.delivery.poll_interval:g} s)"
            )
    if missing:
        return fail(f"not found: {', '.join(missing)}", EXIT_NOT_FOUND)
    if not changed:
        return fail(
            f"nothing changed: {action} applies to {applies_to(action)} recipients", EXIT_NOT_FOUND
        )
    return EXIT_OK


async def purge(store: Store, config: Config, args: argparse.Namespace) -> int:
    """`relay queue purge`: delete old done-with mail, never mail the queue still owns."""
    seconds = older_than(args.older_than)
    statuses = sorted(set(args.status)) if args.status else None
    cutoff = time.time() - seconds
    if args.dry_run:
        count = await store.purgeable(cutoff, statuses)
    else:
        count = len(await store.purge(cutoff, statuses))
    chosen = statuses or [s.value for s in DONE]
    if args.json:
        print_json(
            {"purged": count, "dry_run": args.dry_run, "older_than": seconds, "statuses": chosen}
        )
    else:
        verb = "would purge" if args.dry_run else "purged"
        print(
            f"{verb} {count} message{'' if count == 1 else 's'}"
            f" ({', '.join(chosen)}, received over {args.older_than} ago)"
        )
    return EXIT_OK if count else EXIT_NOT_FOUND


def _command(command: Command) -> Callable[[argparse.Namespace], int]:
    def call(args: argparse.Namespace) -> int:
        return run(args, command)

    return call


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="config file (default: ./relay.toml if present)")
    common.add_argument("--db", metavar="URL", help=DB_HELP)
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    return common


def _filters() -> argparse.ArgumentParser:
    filters = argparse.ArgumentParser(add_help=False)
    group = filters.add_argument_group("filters")
    group.add_argument("--status", choices=SHOWN, help="only recipients in this state")
    group.add_argument("--destination", metavar="KEY", help="relay:NAME, or relay:mx:DOMAIN")
    group.add_argument("--domain", help="recipient domain (exact)")
    group.add_argument("--error", metavar="KEY", help="error group: CODE|ENHANCED|TEXT")
    group.add_argument("--search", metavar="WORDS", help="in address, sender, subject, reply")
    return filters


def add_parser(sub: Any) -> None:
    """Register `relay queue` and its commands."""
    common, filters = _common(), _filters()
    queue = sub.add_parser(
        "queue",
        help="the delivery queue: list, groups, shape, show, retry, hold, release, cancel, purge"
        " (exit 0 done; 1 nothing matched; 2 usage; 3 database)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = queue.add_subparsers(dest="queue_command", required=True, metavar="COMMAND")

    listing = commands.add_parser(
        "list", parents=[common, filters], help="deferred, failed and held recipients"
    )
    listing.add_argument("--limit", type=_positive, default=50, help="at most N (default 50)")
    listing.add_argument("--offset", type=_natural, default=0, help="skip the first N")
    listing.set_defaults(func=_command(list_queue))

    grouped = commands.add_parser(
        "groups", parents=[common, filters], help="the same recipients by destination or error"
    )
    grouped.add_argument("--by", choices=("destination", "error"), default="destination")
    grouped.set_defaults(func=_command(groups))

    _add_shape(commands, common)
    shown = commands.add_parser(
        "show", parents=[common], help="a message's recipients and attempts"
    )
    shown.add_argument("id", metavar="ID", help="message ID, or a recipient number from `list`")
    shown.set_defaults(func=_command(show))

    for action in ACTIONS:
        acting = commands.add_parser(
            action,
            parents=[common, filters],
            help=f"{action} recipients ({applies_to(action)} ones): by number,"
            " by message, or --all matching the filters",
        )
        acting.add_argument("ids", nargs="*", metavar="ID", help="recipient number or message ID")
        acting.add_argument("--all", action="store_true", help="every recipient the filters match")
        acting.set_defaults(func=_command(act))

    purging = commands.add_parser(
        "purge",
        parents=[common],
        help="delete old captured, delivered, failed or cancelled mail (never queued,"
        " deferred, held or sending)",
    )
    purging.add_argument(
        "--older-than", required=True, metavar="AGE", help="received over AGE ago: 7d, 12h, 30m"
    )
    purging.add_argument(
        "--status",
        action="append",
        choices=[s.value for s in DONE],
        help="only messages in this state (repeat for several; default: all four)",
    )
    purging.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    purging.set_defaults(func=_command(purge))


def _add_shape(commands: Any, common: argparse.ArgumentParser) -> None:
    shaped = commands.add_parser(
        "shape",
        parents=[common],
        help="Postfix's qshape: recipients waiting per destination, by minutes since arrival",
    )
    shaped.add_argument(
        "--status",
        action="append",
        choices=SHAPE_STATUSES,
        help="count recipients in this state (repeat; default: queued, sending, deferred)",
    )
    shaped.set_defaults(func=_command(shape))


def _positive(value: str) -> int:
    number = _natural(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _natural(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number
