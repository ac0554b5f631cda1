"""Counts for the navigation: messages in all, unread, and per derived status.

Statuses other than "captured" are rare on a capture box and counted from the recipient
status index; "captured" is what is left. On a relay that delivers most of its mail the
delivered count walks that index too, which stays a cheap index-only scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, distinct, exists, false, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from relay.status import PRECEDENCE, Status
from relay.store.schema import message, recipient
from relay.store.search import outranking, shown_as

SHOWN = tuple(s for s in PRECEDENCE if s is not Status.SENDING)
"""Statuses a message can show."""


@dataclass(frozen=True)
class Counts:
    """How many messages there are: in all, unread, and per derived status."""

    total: int
    unread: int
    by_status: dict[str, int]


QUEUE = frozenset(s.value for s in (Status.SENDING, Status.QUEUED, Status.DEFERRED,
                                     Status.HELD, Status.FAILED))  # fmt: skip
"""Recipient statuses the queue still owns or reports: few, beside the done-with mail."""


async def _count_showing(conn: AsyncConnection, status: Status, mailbox: str | None) -> int:
    """Messages showing `status`: those with a recipient in it and none in a status that
    outranks it (relay.status.PRECEDENCE).

    A status of the queue is counted message by message (are any of its outranking
    recipients there?), as are the few cancelled ones. On SQLite, "delivered", which only queue
    statuses outrank and which is most of a relay's mail, is counted as the messages with
    a delivered recipient less those of them that also have a queue recipient, found from
    the queue's recipients (few) with one look at the (message, status) index each: at a
    million messages on SQLite, 80,000 delivered recipients took 240 ms of CPU asked one
    by one, 158 ms so (queue statuses were slower so: 28 and 40 ms became 49 and 57). On
    SQLite only: PostgreSQL's anti-join already does it well, and its plan for the
    subtraction (a hash semi-join over every delivered recipient) was slower (EXPLAIN
    ANALYZE at 100,000: 13-20 ms before, 22-27 ms so). One statement: one snapshot.
    """
    statuses = sorted(shown_as(status))
    before = outranking(status)

    def within(column: Any) -> list[Any]:
        if mailbox is None:
            return []
        return [column.in_(select(message.c.id).where(message.c.mailbox == mailbox))]

    other = recipient.alias("other")
    subtract = conn.dialect.name == "sqlite" and before and before <= QUEUE
    if not subtract or QUEUE & set(statuses):
        query = select(func.count(distinct(recipient.c.message_id))).where(
            recipient.c.status.in_(statuses), *within(recipient.c.message_id)
        )
        if before:
            query = query.where(
                ~exists().where(
                    other.c.message_id == recipient.c.message_id,
                    other.c.status.in_(sorted(before)),
                )
            )
        return int((await conn.execute(query)).scalar_one())
    having = (
        select(func.count(distinct(recipient.c.message_id)))
        .where(recipient.c.status.in_(statuses), *within(recipient.c.message_id))
        .scalar_subquery()
    )
    outranked = (
        select(func.count(distinct(other.c.message_id)))
        .where(
            other.c.status.in_(sorted(before)),
            exists().where(
                recipient.c.message_id == other.c.message_id, recipient.c.status.in_(statuses)
            ),
            *within(other.c.message_id),
        )
        .scalar_subquery()
    )
    return int((await conn.execute(select(having - outranked))).scalar_one())


def unread_count() -> ColumnElement[int]:
    """An aggregate: how many of the rows counted are unread messages (every database:
    MySQL has no FILTER clause)."""
    return func.count(case((message.c.read == false(), 1)))


async def count_totals(conn: AsyncConnection, mailbox: str | None = None) -> tuple[int, int]:
    """Messages in all and unread (of one mailbox, or of all), in one pass: at a million
    messages on PostgreSQL, 222 ms where the two counts apart took 349 (measured with FILTER;
    `unread_count`'s count of a CASE took the same over a million rows)."""
    within = [message.c.mailbox == mailbox] if mailbox is not None else []
    query = select(func.count(), unread_count()).select_from(message).where(*within)
    total, unread_total = (await conn.execute(query)).one()
    return int(total), int(unread_total)


COUNTED = tuple(s for s in SHOWN if s is not Status.CAPTURED)
"""Statuses counted one by one: "captured" is what the total leaves (`counts_of`)."""


async def count_statuses(conn: AsyncConnection, mailbox: str | None = None) -> dict[str, int]:
    """Messages per derived status of `COUNTED`, one after another on `conn`."""
    return {status.value: await _count_showing(conn, status, mailbox) for status in COUNTED}


def counts_of(total: int, unread: int, statuses: dict[str, int]) -> Counts:
    """The counts from `count_totals` and `count_statuses`: what is left of the total
    shows as captured (messages without recipients too)."""
    by_status = {s.value: statuses.get(s.value, 0) for s in SHOWN}
    by_status[Status.CAPTURED.value] = max(0, total - sum(statuses.values()))
    return Counts(total=total, unread=unread, by_status=by_status)


async def count_messages(conn: AsyncConnection, mailbox: str | None = None) -> Counts:
    """Messages in all, unread, and per derived status (of one mailbox, or of all)."""
    total, unread = await count_totals(conn, mailbox)
    return counts_of(total, unread, await count_statuses(conn, mailbox))


@dataclass(frozen=True)
class RecipientStats:
    """Recipients per status, and when the oldest deferred one's message arrived."""

    by_status: dict[str, int]
    oldest_deferred_at: float | None

    @property
    def queue_depth(self) -> int:
        """Recipients waiting for delivery: queued, deferred or being sent."""
        waiting = (Status.QUEUED, Status.DEFERRED, Status.SENDING)
        return sum(self.by_status.get(s.value, 0) for s in waiting)


async def count_recipients(conn: AsyncConnection) -> RecipientStats:
    """Recipients per status (every status present, 0 when none) and the oldest deferred."""
    by_status = {s.value: 0 for s in Status}
    rows = await conn.execute(select(recipient.c.status, func.count()).group_by(recipient.c.status))
    for status, count in rows:
        by_status[str(status)] = int(count)
    oldest = None
    if by_status[Status.DEFERRED.value]:
        oldest = (
            await conn.execute(
                select(func.min(message.c.received_at))
                .select_from(recipient.join(message, recipient.c.message_id == message.c.id))
                .where(recipient.c.status == Status.DEFERRED.value)
            )
        ).scalar()
    return RecipientStats(by_status, None if oldest is None else float(oldest))
