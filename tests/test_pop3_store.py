"""The store's side of POP3 (relay/store/mailboxes.py) on SQLite and PostgreSQL: listing
a mailbox, the deletions of a session with their announcements, and the lock that keeps
a second session out, across processes on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from relay.config import StorageConfig
from relay.status import Status
from relay.store import InUse, Store
from relay.store.mailboxes import lock_key
from tests import mysql, pg
from tests.queueing import new_message


async def test_entries_list_one_mailbox_oldest_first(store: Store) -> None:
    """entries(name) holds that mailbox's messages in id order; None holds every message
    in some mailbox."""
    mine = [
        dataclasses.replace(
            new_message(["a@x.test"], status=Status.CAPTURED, received_at=t), mailbox="alice"
        )
        for t in (1.0, 2.0)
    ]
    other = dataclasses.replace(new_message(["b@x.test"], status=Status.CAPTURED), mailbox="bob")
    for new in [*mine, other]:
        await store.add_message(new)
    assert [e.id for e in await store.mailboxes.entries("alice")] == sorted(m.id for m in mine)
    assert len(await store.mailboxes.entries(None)) == 3
    assert (await store.mailboxes.entries("alice"))[0].size == len(mine[0].raw)


async def test_removal_deletes_captured_unlists_queued_and_announces_both(store: Store) -> None:
    """remove_from_mailbox deletes captured mail and announces "deleted" (the UI drops the
    row live); queued mail stays with mailbox NULL and a "status" event; both name the
    mailbox the message left."""
    captured = new_message(["a@x.test"], status=Status.CAPTURED)
    queued = new_message(["b@x.test"])
    for new in (captured, queued):
        await store.add_message(new)
    async with store.events.subscribe() as events:
        removed = await store.remove_from_mailbox("default", [captured.id, queued.id])
        seen = {(e.kind, e.message_id, e.mailbox) for e in [events.get_nowait() for _ in range(2)]}
    assert (list(removed.deleted), removed.unlisted) == ([captured.id], [queued.id])
    # Each with the mailbox it left, for the web to tell that mailbox's users alone.
    assert seen == {("deleted", captured.id, "default"), ("status", queued.id, "default")}
    assert await store.messages.get(captured.id) is None
    row = await store.messages.get(queued.id)
    assert row is not None and row.mailbox is None
    assert [r.status for r in row.recipients] == ["queued"]


async def test_removal_never_reaches_another_mailbox(store: Store) -> None:
    """Ids of another mailbox's messages are left alone."""
    other = dataclasses.replace(new_message(["b@x.test"], status=Status.CAPTURED), mailbox="bob")
    await store.add_message(other)
    removed = await store.remove_from_mailbox("alice", [other.id])
    assert (list(removed.deleted), removed.unlisted) == ([], [])
    assert await store.messages.get(other.id) is not None


async def test_lock_keeps_a_second_session_out_until_released(store: Store) -> None:
    """A mailbox locked once cannot be locked again until the first lock is released."""
    async with store.mailboxes.lock("alice"):
        with pytest.raises(InUse):
            async with store.mailboxes.lock("alice"):
                pass
        async with store.mailboxes.lock("bob"):
            pass
    async with store.mailboxes.lock("alice"):
        pass


async def test_advisory_lock_holds_across_processes(shared_url: str) -> None:
    """On PostgreSQL and MySQL a second Store (as another relay process would have) gets
    InUse."""
    first, second = Store(StorageConfig(url=shared_url)), Store(StorageConfig(url=shared_url))
    await first.open()
    try:
        async with first.mailboxes.lock("alice"):
            with pytest.raises(InUse):
                async with second.mailboxes.lock("alice"):
                    pass
        async with second.mailboxes.lock("alice"):
            pass
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_the_same_mailbox_in_two_databases_of_one_server_locks_apart(kind: str) -> None:
    """Locks belong to the database server (MySQL's named locks are server-wide): a session
    on mailbox "alice" of one relay's database never keeps out one on another's."""
    fresh = pg.fresh_database if kind == "postgres" else mysql.fresh_database

    async def both(one_url: str, other_url: str) -> None:
        one, other = Store(StorageConfig(url=one_url)), Store(StorageConfig(url=other_url))
        await one.open()
        await other.open()
        try:
            async with one.mailboxes.lock("alice"), other.mailboxes.lock("alice"):
                pass
        finally:
            await one.close()
            await other.close()

    with fresh() as one_url, fresh() as other_url:
        asyncio.run(both(one_url, other_url))


def test_lock_keys_fit_a_bigint_and_differ() -> None:
    """Advisory lock numbers are signed 64-bit and differ between mailboxes."""
    keys = {lock_key(name) for name in ("alice", "bob", "*", "default")}
    assert len(keys) == 4
    assert all(-(2**63) <= k < 2**63 for k in keys)
