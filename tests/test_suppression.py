"""The suppression list: which permanent failures add an address, mail to a listed
address failed or held without the upstream hearing of it, its `failed` event, expiry."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from relay.config import Config, StorageConfig, SuppressionConfig, WebhookConfig
from relay.events.worker import EventSender
from relay.status import Status
from relay.store import Result, Store
from tests import upstream as up
from tests.queueing import (
    new_message,
    open_store,
    recipients,
    relay_config,
    running_worker,
    upstream_at,
    wait_for_status,
)
from tests.receiver import Receiver
from tests.support import RunningRelay, make_config
from tests.upstream import Upstream

A, B = "alice@example.com", "bob@example.com"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """A recording SMTP upstream."""
    with Upstream().start() as server:
        yield server


def suppressing(db_url: str, port: int, **settings: object) -> Config:
    """A config relaying to `port` with `[suppression]` as `settings` say (no DSNs)."""
    config = relay_config(db_url, {"smarthost": upstream_at(port)}, dsn=False)
    return dataclasses.replace(config, suppression=SuppressionConfig(**settings))  # type: ignore[arg-type]


@asynccontextmanager
async def worker_on(config: Config) -> AsyncIterator[Store]:
    """A store configured as `config` says, with its delivery worker running."""
    async with running_worker(config) as (store, _worker):
        store.configure(config.webhook, config.suppression)
        yield store


@pytest.mark.parametrize(
    ("reply", "on_policy", "listed"),
    [
        (up.RCPT_550, False, True),
        ("550 5.1.10 Recipient address has null MX", False, True),
        (up.RCPT_554, False, False),
        (up.RCPT_554, True, True),
        ("552 5.2.2 Mailbox full", True, False),
    ],
)
async def test_which_permanent_failures_put_the_address_on_the_list(
    sqlite_url: str, upstream: Upstream, reply: str, on_policy: bool, listed: bool
) -> None:
    """5.1.1 and 5.1.10 list the address with the reply; 5.7.1 only with on_policy; other
    permanent failures never."""
    upstream.script(A, reply)
    config = suppressing(sqlite_url, upstream.port, on_policy=on_policy)
    async with worker_on(config) as store:
        new = new_message([A])
        await store.add_message(new)
        await wait_for_status(store, new.id, {A: Status.FAILED})
        found = await store.suppressions.lookup(["alice@EXAMPLE.com"], time.time())
    if not listed:
        assert found == {}
        return
    [entry] = found.values()
    assert entry.address == A and entry.expires_at is None
    assert entry.reason == reply and entry.enhanced == reply.split()[1]


async def test_mail_to_a_listed_address_fails_at_once_without_the_upstream(
    db_url: str, upstream: Upstream
) -> None:
    """After a 5.1.1, the next message to the address fails with "suppressed since …
    because …", its other recipient is delivered, and the upstream never sees the first."""
    upstream.script(A, up.RCPT_550)
    receiver = Receiver().start()
    hooks = (WebhookConfig(url=receiver.url, events=("failed",), timeout=2.0),)
    config = dataclasses.replace(suppressing(db_url, upstream.port), webhook=hooks)
    try:
        async with worker_on(config) as store:
            sender = EventSender(hooks, store)
            await sender.start()
            first = new_message([A])
            await store.add_message(first)
            await wait_for_status(store, first.id, {A: Status.FAILED})
            second = new_message([A, B])
            await store.add_message(second)
            rows = await wait_for_status(store, second.id, {A: Status.FAILED, B: Status.DELIVERED})
            await receiver.until(lambda r: len(r.events("failed")) == 2)
            await sender.stop()
    finally:
        receiver.stop()
    assert rows[A].last_text is not None and rows[A].last_text.startswith("suppressed since ")
    assert "because 550 5.1.1 No such user here" in rows[A].last_text
    assert rows[A].last_code is None
    # The upstream's one answer for A was the 550: another RCPT would have been accepted.
    assert upstream.delivered_to(A) == 0 and upstream.delivered_to(B) == 1
    failed = receiver.events("failed")[1]
    assert failed["message"]["id"] == second.id
    assert failed["attempt"]["text"].startswith("suppressed since ")


async def test_with_action_hold_mail_to_a_listed_address_is_held(
    sqlite_url: str, upstream: Upstream
) -> None:
    """`action = "hold"`: the recipient is held with the reason, nothing sent, raising
    `held`; taken off the list and released, it is delivered."""
    hooks = (WebhookConfig(url="http://127.0.0.1:9/hook", events=("held", "released")),)
    config = suppressing(sqlite_url, upstream.port, action="hold")
    config = dataclasses.replace(config, webhook=hooks)
    async with worker_on(config) as store:
        await store.suppressions.add(A, "the customer asked", time.time())
        new = new_message([A])
        await store.add_message(new)
        rows = await wait_for_status(store, new.id, {A: Status.HELD})
        assert await store.suppressions.remove(A)
        await store.actions.act("release", new.id, time.time())
        await wait_for_status(store, new.id, {A: Status.DELIVERED})
        raised = [e.event for e in reversed(await store.webhooks.recent(message_id=new.id))]
    assert raised == ["held", "released"]
    assert rows[A].last_text is not None
    assert rows[A].last_text.startswith("suppressed since ")
    assert rows[A].last_text.endswith("because the customer asked")
    assert upstream.delivered_to(A) == 1


async def test_entries_expire_after_the_ttl(db_url: str) -> None:
    """With a ttl an entry stops counting once it is that old, and pruning deletes it;
    without one it stays."""
    async with open_store(db_url) as store:
        store.configure((), SuppressionConfig(ttl="1h"))
        now = 1_000_000.0
        await store.suppressions.add(A, "bounced", now)
        store.configure((), SuppressionConfig())
        await store.suppressions.add(B, "for good", now)
        assert set(await store.suppressions.lookup([A, B], now + 3599)) == {A, B}
        assert set(await store.suppressions.lookup([A, B], now + 3601)) == {B}
        assert [e.address for e in await store.suppressions.entries(now + 3601)] == [B]
        assert await store.suppressions.prune(now + 3601) == 1
        assert [e.address for e in await store.suppressions.entries(now)] == [B]


async def test_an_injected_failure_never_lists_an_address(db_url: str) -> None:
    """A chaos drill's 5.1.1 (nothing was sent) does not put the address on the list."""
    async with open_store(db_url) as store:
        new = new_message([A])
        await store.add_message(new)
        [claim] = await store.queue.claim("w", time.time(), 60, 10)
        result = _failure(claim.id, new.id, injected=True)
        await store.queue.finish("w", [result], time.time())
        rows = await recipients(store, new.id)
        assert rows[A].status == Status.FAILED
        assert await store.suppressions.lookup([A], time.time()) == {}


def _failure(recipient_id: int, message_id: str, injected: bool) -> Result:
    """A 550 5.1.1 result for the recipient."""
    return Result(
        recipient_id=recipient_id, message_id=message_id, status=Status.FAILED,
        next_attempt_at=None, code=550, enhanced="5.1.1", text="No such user", host="",
        started_at=time.time(), duration=0.0, injected=injected, address=A,
    )  # fmt: skip


def relay_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m relay ARGS` in `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
    )  # fmt: skip


def test_the_cli_lists_adds_and_removes_addresses(tmp_path: Path) -> None:
    """`relay suppression add` lists an address (with the config's ttl), `list` shows it
    (table and JSON), `remove` takes it off; removing it again exits 1, a bad address 2."""
    (tmp_path / "relay.toml").write_text('[storage]\nurl = "relay.db"\n[suppression]\nttl = "2h"\n')
    assert relay_cli("db", "upgrade", cwd=tmp_path).returncode == 0
    added = relay_cli("suppression", "add", A, "--reason", "asked us to stop", cwd=tmp_path)
    assert added.returncode == 0 and added.stdout.startswith(f"suppressed {A} until 20")
    listed = relay_cli("suppression", "list", cwd=tmp_path)
    assert A in listed.stdout and "asked us to stop" in listed.stdout
    [entry] = json.loads(relay_cli("suppression", "list", "--json", cwd=tmp_path).stdout)
    assert entry["address"] == A and entry["reason"] == "asked us to stop"
    assert entry["expires"] is not None
    assert relay_cli("suppression", "remove", A, cwd=tmp_path).returncode == 0
    again = relay_cli("suppression", "remove", A, cwd=tmp_path)
    assert again.returncode == 1 and "not suppressed" in again.stderr
    assert (
        relay_cli("suppression", "list", cwd=tmp_path).stdout.strip() == "no suppressed addresses"
    )
    assert relay_cli("suppression", "add", "nobody", cwd=tmp_path).returncode == 2


def test_a_running_relay_deletes_expired_entries(sqlite_url: str) -> None:
    """With a ttl and no retention configured, the relay's housekeeping still deletes the
    entries that expired, and keeps those that have not."""
    config = make_config(
        sqlite_url,
        storage=StorageConfig(url=sqlite_url, prune_interval=0.05),
        suppression=SuppressionConfig(ttl="60"),
    )
    running = RunningRelay(config).start()
    try:
        store = running.relay.store
        listed = time.time()
        running.call(store.suppressions.add(A, "550 5.1.1 gone", listed - 120))
        running.call(store.suppressions.add(B, "550 5.1.1 gone", listed))

        async def kept() -> set[str]:
            """Every entry still in the table, expired or not (as seen before any expired)."""
            return {e.address for e in await store.suppressions.entries(listed - 121)}

        deadline = time.monotonic() + 10
        while A in running.call(kept()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.call(kept()) == {B}
    finally:
        running.stop()
