"""`relay queue` as a process on a database with no server: exit codes scripts can trust,
purge on both backends, and `relay --help` naming every command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relay import ids
from relay.cli.output import EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE
from relay.status import Status
from relay.store import NewRecipient, Store
from tests.queueing import new_message, open_store
from tests.test_queue_view import seeded

DAY = 86400.0


def relay_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m relay ARGS`; its result."""
    return subprocess.run(
        [sys.executable, "-m", "relay", *args], capture_output=True, text=True, timeout=60
    )


async def in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """`relay_cli` without blocking the test's event loop."""
    return await asyncio.to_thread(relay_cli, *args)


def config_file(tmp_path: Path, db_url: str) -> str:
    """A config file naming the database, as an operator would pass with --config."""
    path = tmp_path / "relay.toml"
    path.write_text(f'[storage]\nurl = "{db_url}"\n')
    return str(path)


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["list"], EXIT_OK, "b1@slow.example"),
        (["list", "--status", "held", "--json"], EXIT_OK, '"b3@other.example"'),
        (["list", "--domain", "nowhere.example"], EXIT_NOT_FOUND, "no deferred, failed or held"),
        (["list", "--status", "delivered"], EXIT_USAGE, "invalid choice"),
        (["list", "--error", "nonsense"], EXIT_USAGE, "error must be an error group"),
        (["list", "--limit", "0"], EXIT_USAGE, "must be 1 or more"),
        (["groups", "--by", "error"], EXIT_OK, "550|5.1.1|<address>: recipient address"),
        (["groups", "--search", "nothing-like-this"], EXIT_NOT_FOUND, "matches"),
        (["show", "NEW_ID"], EXIT_NOT_FOUND, "no such message"),
        (["show", "not-an-id"], EXIT_USAGE, "not a message ID"),
        (["retry"], EXIT_USAGE, "give recipient numbers or message IDs"),
        (["retry", "1", "--all"], EXIT_USAGE, "not both"),
        (["retry", "1", "--status", "failed"], EXIT_USAGE, "only with --all"),
        (["retry", "999999"], EXIT_NOT_FOUND, "not found: 999999"),
        (["cancel", "99999999999999999999999"], EXIT_NOT_FOUND, "not found: 9999"),
        (["retry", "NEW_ID"], EXIT_NOT_FOUND, "not found: "),
        (["release", "--all", "--status", "failed"], EXIT_NOT_FOUND, "nothing changed"),
        (["retry", "--all", "--destination", "relay:mx:slow.example"], EXIT_OK, "retried 2"),
        (["hold", "--all", "--json"], EXIT_OK, '"changed": 3'),
        (["purge", "--older-than", "soon"], EXIT_USAGE, "not a duration"),
        (["purge", "--older-than", "1d", "--status", "deferred"], EXIT_USAGE, "invalid choice"),
        (["purge"], EXIT_USAGE, "--older-than"),
    ],
)
async def test_exit_codes(
    sqlite_url: str, tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    """0 done; 1 nothing matched, not found or nothing changed; 2 bad arguments."""
    async with open_store(sqlite_url) as store:
        await seeded(store)
    args = [ids.new_id() if a == "NEW_ID" else a for a in args]
    result = await in_process("queue", *args, "--config", config_file(tmp_path, sqlite_url))
    assert result.returncode == code, result.stderr
    assert says in result.stdout + result.stderr


async def test_list_shows_message_ids_and_show_takes_either_id(
    sqlite_url: str, tmp_path: Path
) -> None:
    """`queue list` puts each recipient's message ID beside its number; `queue show` takes
    either and prints the same message."""
    async with open_store(sqlite_url) as store:
        await seeded(store)
        rows = (await store.queue_view.page()).rows
    config = ["--config", config_file(tmp_path, sqlite_url)]
    listed = await in_process("queue", "list", *config)
    assert listed.returncode == EXIT_OK, listed.stderr
    header, *lines = listed.stdout.split("\n\n")[0].splitlines()
    assert header.split()[:3] == ["ID", "MESSAGE", "STATUS"]
    assert [line.split()[:2] for line in lines] == [[str(r.id), r.message_id] for r in rows]
    by_message = await in_process("queue", "show", rows[0].message_id, *config)
    by_number = await in_process("queue", "show", str(rows[0].id), *config)
    assert by_message.returncode == by_number.returncode == EXIT_OK, by_number.stderr
    assert by_number.stdout.splitlines()[0] == f"message   {rows[0].message_id}"
    assert by_number.stdout.splitlines()[4:] == by_message.stdout.splitlines()[4:]
    missing = await in_process("queue", "show", "999999", *config)
    assert missing.returncode == EXIT_NOT_FOUND and "no such recipient: 999999" in missing.stderr


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--db", "sqlite+aiosqlite:///{tmp}/missing.db"], EXIT_UNAVAILABLE, "no relay database"),
        (["--db", "postgresql+asyncpg://nobody@127.0.0.1:1/none"], EXIT_UNAVAILABLE, "cannot use"),
        (["--db", "oracle://x"], EXIT_USAGE, "--db: expected a SQLite file"),
        (["--config", "{tmp}/nowhere.toml"], EXIT_USAGE, "nowhere.toml"),
    ],
)
def test_database_and_config_problems(
    tmp_path: Path, args: list[str], code: int, says: str
) -> None:
    """No database (nothing is created) exits 3; a bad URL or config file exits 2."""
    result = relay_cli("queue", "list", *[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == code, result.stderr
    assert says in result.stderr
    assert not (tmp_path / "missing.db").exists()


def test_help_describes_every_command() -> None:
    """`relay --help` lists every command with the exit codes; `relay queue --help` every
    queue command, the filters and the exit codes."""
    top = relay_cli("--help")
    assert top.returncode == 0
    for command in ("serve", "check-config", "hash-password", "stats", "queue", "sendmail"):
        assert f"\n    {command}" in top.stdout, command
    assert "Exit codes: 0 done; 1 nothing matched" in " ".join(top.stdout.split())
    queue = relay_cli("queue", "--help").stdout
    for command in ("list", "groups", "show", "retry", "hold", "release", "cancel", "purge"):
        assert f"\n    {command} " in queue, command
    assert "--domain DOMAIN" in queue and "poll_interval" in queue and "Exit codes" in queue


async def _store_aged(store: Store, now: float) -> dict[str, str]:
    """Messages received 10 days ago in every state (and a fresh captured one); their ids."""
    made: dict[str, str] = {}
    cases = {
        "captured": [NewRecipient("c@x.example")],
        "delivered": [NewRecipient("d@x.example", "relay:up", Status.DELIVERED)],
        "failed": [NewRecipient("f@x.example", "relay:up", Status.FAILED)],
        "cancelled": [NewRecipient("k@x.example", "relay:up", Status.CANCELLED)],
        "deferred": [NewRecipient("w@x.example", "relay:up", Status.DEFERRED)],
        "held": [NewRecipient("h@x.example", "relay:up", Status.HELD)],
        "queued": [NewRecipient("q@x.example", "relay:up", Status.QUEUED)],
        "mixed": [NewRecipient("m@x.example"), NewRecipient("n@x.example", "relay:up",
                                                            Status.DEFERRED)],
    }  # fmt: skip
    for name, rcpts in cases.items():
        message = new_message(rcpts, received_at=now - 10 * DAY)
        await store.add_message(message)
        made[name] = message.id
    fresh = new_message([NewRecipient("new@x.example")], received_at=now - 60)
    await store.add_message(fresh)
    made["fresh"] = fresh.id
    return made


async def _left(db_url: str, made: dict[str, str]) -> set[str]:
    async with open_store(db_url) as store:
        return {name for name, mid in made.items() if await store.messages.get(mid)}


async def test_purge_deletes_only_old_mail_that_is_done_with(db_url: str, tmp_path: Path) -> None:
    """--dry-run counts; --status captured deletes old captured mail only; without --status
    old delivered, failed and cancelled mail goes too; queued, deferred, held and mixed
    mail and recent mail stay; a purge with nothing to delete exits 1."""
    async with open_store(db_url) as store:
        made = await _store_aged(store, time.time())
    config = ["--config", config_file(tmp_path, db_url)]
    counted = await in_process("queue", "purge", "--older-than", "7d", "--dry-run", "--json",
                               *config)  # fmt: skip
    assert counted.returncode == EXIT_OK, counted.stderr
    assert json.loads(counted.stdout)["purged"] == 4
    assert await _left(db_url, made) == set(made)
    captured = await in_process(
        "queue", "purge", "--status", "captured", "--older-than", "7d", *config
    )
    assert captured.returncode == EXIT_OK, captured.stderr
    assert "purged 1 message (captured, received over 7d ago)" in captured.stdout
    assert await _left(db_url, made) == set(made) - {"captured"}
    rest = await in_process("queue", "purge", "--older-than", "7d", "--json", *config)
    assert json.loads(rest.stdout)["purged"] == 3
    assert await _left(db_url, made) == {"deferred", "held", "queued", "mixed", "fresh"}
    again = await in_process("queue", "purge", "--older-than", "7d", *config)
    assert again.returncode == EXIT_NOT_FOUND and "purged 0 messages" in again.stdout
