"""Retention: delete old mail that is done with, never mail the queue still owns.

A message may be pruned when none of its recipients is queued, deferred, held or being
sent: captured, delivered, failed and cancelled mail (and a message without recipients)
is done with. Deletes run in batches, each one statement that re-checks the condition,
so a message released or retried meanwhile is left alone and the writer is never held long.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, exists, func, or_, select

from relay.status import DONE, Status
from relay.store.database import Database
from relay.store.returning import delete_returning
from relay.store.schema import message, recipient
from relay.store.search import status_condition

BATCH = 500
"""Messages deleted per transaction."""

KEPT = (Status.QUEUED, Status.DEFERRED, Status.HELD, Status.SENDING)
"""Recipient statuses that keep their message from being pruned."""


def prunable() -> ColumnElement[bool]:
    """Messages none of whose recipients the queue still owns."""
    return ~exists().where(
        recipient.c.message_id == message.c.id,
        recipient.c.status.in_([s.value for s in KEPT]),
    )


async def _delete_oldest(db: Database, count: int, *conditions: ColumnElement[bool]) -> list[str]:
    """Delete up to `count` of the oldest prunable messages meeting `conditions`."""
    oldest = select(message.c.id).where(prunable(), *conditions).order_by(message.c.id).limit(count)
    async with db.writer.begin() as conn:
        # The ids first (MySQL takes no LIMIT in an IN subquery), checked again as they go.
        ids = list((await conn.execute(oldest)).scalars())
        where = [message.c.id.in_(ids), prunable()]
        gone = [str(r) for r in await delete_returning(conn, message, where, message.c.id)]
        await db.notify(conn, "deleted", gone)
    return gone


def _older(cutoff: float, statuses: Collection[str] | None) -> list[ColumnElement[bool]]:
    """Received before `cutoff`, and showing one of `statuses` (None: any)."""
    conditions = [message.c.received_at < cutoff]
    if statuses is not None:
        conditions.append(or_(*(status_condition(s) for s in sorted(statuses))))
    return conditions


async def prune_older_than(
    db: Database, cutoff: float, batch: int = BATCH, statuses: Collection[str] | None = None
) -> list[str]:
    """Delete prunable messages received before `cutoff` (epoch seconds), only those whose
    derived status is one of `statuses` when given (a subset of DONE); return their ids."""
    if statuses is not None and not set(statuses) <= set(DONE):
        raise ValueError(f"only {', '.join(DONE)} mail can be pruned")
    gone: list[str] = []
    while True:
        done = await _delete_oldest(db, batch, *_older(cutoff, statuses))
        gone.extend(done)
        if len(done) < batch:
            return gone


async def count_older_than(
    db: Database, cutoff: float, statuses: Collection[str] | None = None
) -> int:
    """How many messages `prune_older_than` would delete now."""
    async with db.reader.connect() as conn:
        query = select(func.count()).select_from(message)
        result = await conn.execute(query.where(prunable(), *_older(cutoff, statuses)))
        return int(result.scalar_one())


async def prune_beyond(db: Database, max_messages: int, batch: int = BATCH) -> list[str]:
    """Delete the oldest prunable messages while more than `max_messages` are stored."""
    gone: list[str] = []
    while True:
        async with db.reader.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(message))).scalar_one()
        excess = int(total) - max_messages
        if excess <= 0:
            return gone
        done = await _delete_oldest(db, min(excess, batch))
        gone.extend(done)
        if not done:
            return gone  # what is left beyond the limit is still in the queue
