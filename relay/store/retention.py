"""Retention: delete old mail that is done with, never mail the queue still owns.

A message may be pruned when none of its recipients is queued, deferred, held or being
sent: captured, delivered, failed and cancelled mail (and a message without recipients)
is done with. Deletes run in batches, each one statement that re-checks the condition,
so a message released or retried meanwhile is left alone and the writer is never held long:
each transaction deletes as many messages as fit in `BUDGET` seconds on SQLite
(`BUDGET_ROWS` where deletes lock only rows; at most `batch` messages), and the next one
waits `PAUSE` seconds, so that ingest's group commit gets the write lock in between
(SQLite's busy wait polls with growing sleeps: a long delete showed as late 250s, p99
136 ms while pruning 18,000 messages, before the transactions were kept short).

A pass goes through the messages in id order once: each transaction looks only past the
last id the one before it looked at, so the messages the queue still owns, left behind at
the front, are not scanned again by every transaction (at a million messages, a pass that
started at 1,100 deletions a second fell to 380 as they piled up). One the queue lets go of
meanwhile waits for the next pass.

Before each transaction the prune gives way to ingest: while messages wait for the group
commit (`ingest_waiting`), it waits too (at most `GIVE_WAY` seconds), so that the 250s do
not queue behind a delete. The pause alone was not enough: SQLite's busy wait sleeps in
growing steps (10, 15, 20, 25 ms...), so a writer that missed the lock could sleep through
several short pauses while the prune took the lock again (at a million messages, p99 62 ms
from MAIL to 250 during the prune, 6 ms without it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection

from sqlalchemy import ColumnElement, exists, func, or_, select

from relay.status import DONE, Status
from relay.store.database import Database
from relay.store.messages import Gone, delete_where
from relay.store.schema import message, recipient
from relay.store.search import status_condition

BATCH = 500
"""Most messages deleted per transaction."""
BUDGET = 0.015
"""SQLite: seconds one delete transaction should take at most, holding the database's only
write lock (its size adapts to keep under)."""
BUDGET_ROWS = 0.25
"""PostgreSQL and MySQL: the same, where a delete locks only its own rows and ingest's
inserts go on beside it. There each transaction costs about 10 ms whatever its size
(finding the ids, the round trips, the commit's fsync): more than half of SQLite's budget,
so with it the size never grew and any slow transaction halved it, down to one message a
transaction (168 deletions a second at a million on PostgreSQL, fewer than arrived)."""
PAUSE = 0.005
"""Seconds between two delete transactions, the write lock free for others."""
GIVE_WAY = 0.25
"""Most seconds a delete transaction waits for ingest's waiting messages to be committed."""


class Pace:
    """How many messages the next delete transaction takes: halved after one that took
    longer than `budget`, doubled after one that took less than half of it."""

    def __init__(self, most: int, budget: float = BUDGET) -> None:
        self.most = most
        self.budget = budget
        self.size = min(most, 50)

    def took(self, seconds: float) -> None:
        """Adapt to how long the last transaction of `size` messages took."""
        if seconds > self.budget:
            self.size = max(1, self.size // 2)
        elif seconds < self.budget / 2:
            self.size = min(self.most, self.size * 2)


def pace_for(db: Database, most: int) -> Pace:
    """The pace of a prune on `db`: SQLite's short budget, or the one of row locks."""
    return Pace(most, BUDGET if db.is_sqlite else BUDGET_ROWS)


KEPT = (Status.QUEUED, Status.DEFERRED, Status.HELD, Status.SENDING)
"""Recipient statuses that keep their message from being pruned."""


def prunable() -> ColumnElement[bool]:
    """Messages none of whose recipients the queue still owns."""
    return ~exists().where(
        recipient.c.message_id == message.c.id,
        recipient.c.status.in_([s.value for s in KEPT]),
    )


class Cursor:
    """Where a pass has got to: the last message id a delete transaction looked at."""

    def __init__(self) -> None:
        self.after: str | None = None

    def past(self) -> list[ColumnElement[bool]]:
        """The condition that keeps the next transaction past what was looked at."""
        return [] if self.after is None else [message.c.id > self.after]


async def _delete_oldest(
    db: Database, count: int, cursor: Cursor, *conditions: ColumnElement[bool]
) -> Gone:
    """Delete up to `count` of the oldest prunable messages meeting `conditions` past
    `cursor`, and move it past them."""
    oldest = (
        select(message.c.id)
        .where(prunable(), *cursor.past(), *conditions)
        .order_by(message.c.id)
        .limit(count)
    )
    async with db.writer.begin() as conn:
        # The ids first (MySQL takes no LIMIT in an IN subquery), checked again as they go.
        ids = list((await conn.execute(oldest)).scalars())
        if ids:
            cursor.after = str(ids[-1])
        where = [message.c.id.in_(ids), prunable()]
        return await delete_where(db, conn, where)


def _never() -> bool:
    return False


async def give_way(ingest_waiting: Callable[[], bool], most: float = GIVE_WAY) -> None:
    """Wait while `ingest_waiting()` says messages wait for their commit, `most` seconds
    at most (a steady stream of mail must not stop the prune for good)."""
    deadline = time.monotonic() + most
    # A look each millisecond: the group commit keeps no event of its own for this.
    while ingest_waiting() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.001)


async def _delete_paced(
    db: Database,
    pace: Pace,
    cursor: Cursor,
    most: int,
    *conditions: ColumnElement[bool],
    ingest_waiting: Callable[[], bool] = _never,
) -> tuple[Gone, bool]:
    """One short delete transaction of at most `most` (and the pace's size) messages, once
    ingest's waiting messages are committed; (those deleted, whether it found fewer than
    it asked for: nothing more to do)."""
    wanted = min(most, pace.size)
    await give_way(ingest_waiting)
    started = time.monotonic()
    gone = await _delete_oldest(db, wanted, cursor, *conditions)
    pace.took(time.monotonic() - started)
    if len(gone) == wanted:
        await asyncio.sleep(PAUSE)
    return gone, len(gone) < wanted


def _older(cutoff: float, statuses: Collection[str] | None) -> list[ColumnElement[bool]]:
    """Received before `cutoff`, and showing one of `statuses` (None: any)."""
    conditions = [message.c.received_at < cutoff]
    if statuses is not None:
        conditions.append(or_(*(status_condition(s) for s in sorted(statuses))))
    return conditions


async def prune_older_than(
    db: Database,
    cutoff: float,
    batch: int = BATCH,
    statuses: Collection[str] | None = None,
    stopping: Callable[[], bool] = _never,
    ingest_waiting: Callable[[], bool] = _never,
) -> Gone:
    """Delete prunable messages received before `cutoff` (epoch seconds), only those whose
    derived status is one of `statuses` when given (a subset of DONE); return their ids.
    Stops between two transactions once `stopping()` says so (the server is stopping);
    gives way to ingest while `ingest_waiting()` says so."""
    if statuses is not None and not set(statuses) <= set(DONE):
        raise ValueError(f"only {', '.join(DONE)} mail can be pruned")
    gone: Gone = {}
    pace, cursor, older = pace_for(db, batch), Cursor(), _older(cutoff, statuses)
    while True:
        done, finished = await _delete_paced(
            db, pace, cursor, batch, *older, ingest_waiting=ingest_waiting
        )
        gone.update(done)
        if finished or stopping():
            return gone


async def count_older_than(
    db: Database, cutoff: float, statuses: Collection[str] | None = None
) -> int:
    """How many messages `prune_older_than` would delete now."""
    async with db.reader.connect() as conn:
        query = select(func.count()).select_from(message)
        result = await conn.execute(query.where(prunable(), *_older(cutoff, statuses)))
        return int(result.scalar_one())


async def prune_beyond(
    db: Database,
    max_messages: int,
    batch: int = BATCH,
    stopping: Callable[[], bool] = _never,
    ingest_waiting: Callable[[], bool] = _never,
) -> Gone:
    """Delete the oldest prunable messages while more than `max_messages` are stored
    (counted once per pass, not per transaction: a count of a million rows is not free);
    stop between two transactions once `stopping()` says so; give way to ingest while
    `ingest_waiting()` says so."""
    gone: Gone = {}
    pace = pace_for(db, batch)
    while True:
        cursor = Cursor()  # each pass from the oldest: what was owned may have been let go
        async with db.reader.connect() as conn:
            total = (await conn.execute(select(func.count()).select_from(message))).scalar_one()
        excess = int(total) - max_messages
        if excess <= 0:
            return gone
        while excess > 0:
            done, finished = await _delete_paced(
                db, pace, cursor, excess, ingest_waiting=ingest_waiting
            )
            gone.update(done)
            excess -= len(done)
            if finished and excess > 0:
                return gone  # what is left beyond the limit is still in the queue
            if stopping():
                return gone
