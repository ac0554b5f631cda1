"""Mail just accepted for delivery is sent from memory; the delivery queue's own writer."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from relay.status import Status
from relay.store import Store
from relay.store.fresh import FreshRaw
from tests.queueing import new_message, raw_message


def test_fresh_raw_keeps_the_newest_within_its_bounds() -> None:
    """Beyond the total the oldest entries go first; a message over the per-message bound
    is never kept; a dropped message is gone; the size counts what is kept."""
    fresh = FreshRaw(max_total=10, max_one=6)
    fresh.put("a", b"aaaa")
    fresh.put("b", b"bbbb")
    fresh.put("big", b"x" * 7)
    assert fresh.get("big") is None
    fresh.put("c", b"cccc")
    assert (fresh.get("a"), fresh.get("b"), fresh.get("c")) == (None, b"bbbb", b"cccc")
    fresh.put("b", b"bb")  # kept again: replaced, not counted twice
    assert fresh.size == 6
    fresh.drop(["b", "unknown"])
    assert (len(fresh), fresh.size, fresh.get("b")) == (1, 4, None)
    assert (fresh.take("c"), fresh.take("c"), len(fresh), fresh.size) == (b"cccc", None, 0, 0)


async def test_a_message_to_relay_is_sent_from_memory_until_deleted(store: Store) -> None:
    """The bytes of a message with recipients to relay are handed to its first delivery
    without a database read, exactly as stored, and then forgotten (a retry reads the
    database); captured mail is not kept; once the message is deleted there is nothing to
    send, from memory or from the database."""
    relayed = new_message(["a@example.net"], raw=raw_message("relayed"))
    captured = new_message(["b@example.net"], status=Status.CAPTURED)
    await store.add_message(relayed)
    await store.add_message(captured)
    assert store.fresh.get(relayed.id) == relayed.raw
    assert store.fresh.get(captured.id) is None
    assert await store.raw_to_send(relayed.id) == await store.messages.raw(relayed.id)
    assert store.fresh.get(relayed.id) is None  # taken by that first delivery
    assert await store.raw_to_send(relayed.id) == relayed.raw  # a retry: from the database
    assert await store.raw_to_send(captured.id) == captured.raw  # read from the database

    await store.delete_messages([relayed.id])
    assert store.fresh.get(relayed.id) is None
    assert await store.raw_to_send(relayed.id) is None


async def test_prefetch_reads_what_memory_lacks_in_one_go(store: Store) -> None:
    """Claimed mail whose bytes are not in memory (another process took it, or memory let
    it go) is read in one query and then sent from memory, exactly as stored; what is in
    memory already, what is gone and what is too large for memory are left alone."""
    kept = new_message(["a@example.net"], raw=raw_message("kept"))
    away = [new_message([f"r{i}@example.net"], raw=raw_message(f"away {i}")) for i in range(3)]
    large = new_message(["big@example.net"], raw=raw_message("large") + b"x" * 2000)
    for new in (kept, *away, large):
        await store.add_message(new)
    store.fresh.drop([m.id for m in (*away, large)])
    store.fresh.max_one = 1000
    read = await store.prefetch_raw([kept.id, *(m.id for m in away), large.id, "01GONE"])
    assert read == len(away)
    assert [store.fresh.get(m.id) for m in away] == [m.raw for m in away]
    assert store.fresh.get(large.id) is None
    assert await store.raw_to_send(away[0].id) == away[0].raw


async def test_claims_and_results_commit_without_a_sync_of_their_own(
    sqlite_store: Store,
) -> None:
    """SQLite: the delivery queue's connection runs synchronous = NORMAL (no fsync at a
    claim or a result: at-least-once delivery needs none), while the writer the UI uses
    keeps FULL, the default that a 250 relies on."""
    new = new_message(["a@example.net"])
    await sqlite_store.add_message(new)

    def pragma(conn: Connection) -> int:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())

    assert await sqlite_store.db.queue_write(pragma) == 1  # NORMAL
    async with sqlite_store.db.writer.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one() == 2  # FULL
    claims = await sqlite_store.queue.claim("me", new.received_at + 1, 300, 10)
    assert [c.message_id for c in claims] == [new.id]
