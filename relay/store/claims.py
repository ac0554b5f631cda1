"""Which recipients a claim picks, as SQL built once per kind of claim: the due ones
(waiting, or with a lapsed lease), oldest due first, but those of busy destinations; then
the other due recipients of the same messages, so that a message's recipients travel
together. Rows are taken `FOR UPDATE SKIP LOCKED`, so that processes sharing a
PostgreSQL database split them without waiting on each other (SQLite leaves the clause
out: its write lock serialises claims). relay.store.queue runs them, with the statements
that lease what was picked, read what the worker needs of it, pick a hand-off's
recipients, and tell when the queue next needs a look.
"""

from __future__ import annotations

import functools

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, not_, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from relay.routing import MX_ROUTE
from relay.status import Status
from relay.store.schema import message, recipient


def _claimable(busy_routes: bool, busy_domains: bool) -> list[ColumnElement[bool]]:
    """Due recipients (waiting, or with a lapsed lease), but those of busy destinations
    (bound parameters: now, and busy_routes and busy_domains when there are any)."""
    now: BindParameter[float] = bindparam("now")
    conditions = [
        or_(
            and_(
                recipient.c.status.in_([Status.QUEUED.value, Status.DEFERRED.value]),
                recipient.c.next_attempt_at <= now,
            ),
            and_(recipient.c.status == Status.SENDING.value, recipient.c.lease_until < now),
        )
    ]
    if busy_routes:
        conditions.append(recipient.c.route.not_in(bindparam("busy_routes", expanding=True)))
    if busy_domains:
        conditions.append(
            not_(
                and_(
                    recipient.c.route == MX_ROUTE,
                    recipient.c.domain.in_(bindparam("busy_domains", expanding=True)),
                )
            )
        )
    return conditions


IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
"""The recipients a statement is about (an expanding bound parameter)."""


@functools.cache
def claim_statements(
    busy_routes: bool, busy_domains: bool
) -> tuple[Select[tuple[int]], Select[tuple[int]]]:
    """How a claim picks, built once (with bound parameters: now, limit, ids, and those of
    `_claimable`): due recipients, then their messages' other due recipients."""
    conditions = _claimable(busy_routes, busy_domains)
    pick = (
        select(recipient.c.id)
        .where(*conditions)
        .order_by(recipient.c.next_attempt_at, recipient.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    picked_messages = select(recipient.c.message_id).where(recipient.c.id.in_(IDS))
    siblings = (
        select(recipient.c.id)
        .where(
            *conditions,
            recipient.c.message_id.in_(picked_messages),
            recipient.c.id.not_in(IDS),
        )
        .with_for_update(skip_locked=True)
    )
    return pick, siblings


LEASE = (
    update(recipient)
    .where(recipient.c.id.in_(IDS))
    .values(
        status=Status.SENDING.value,
        lease_owner=bindparam("owner"),
        lease_until=bindparam("until"),
        updated_at=bindparam("updated"),
    )
)
"""Lease the recipients `ids` to `owner` until `until` (built once)."""

CLAIMED = (
    select(
        recipient.c.id,
        recipient.c.message_id,
        recipient.c.address,
        recipient.c.route,
        recipient.c.domain,
        recipient.c.attempts,
        message.c.mail_from,
        message.c.received_at,
    )
    .join(message, message.c.id == recipient.c.message_id)
    .where(recipient.c.id.in_(IDS))
    .order_by(recipient.c.id)
)
"""What the worker needs of the recipients `ids` (built once)."""


DUE_OF = select(recipient.c.id).where(
    recipient.c.message_id.in_(bindparam("messages", expanding=True)),
    recipient.c.status == Status.QUEUED.value,
    recipient.c.next_attempt_at <= bindparam("now"),
)
"""The recipients of the messages `messages` waiting for their first attempt and due at
`now` (a hand-off, built once)."""

_NEXT_WAITING = select(func.min(recipient.c.next_attempt_at)).where(
    recipient.c.status.in_([Status.QUEUED.value, Status.DEFERRED.value]),
    recipient.c.next_attempt_at > bindparam("now"),
)
_NEXT_LAPSING = select(func.min(recipient.c.lease_until)).where(
    recipient.c.status == Status.SENDING.value,
    recipient.c.lease_owner != bindparam("owner"),
    recipient.c.lease_until > bindparam("now"),
)


def next_due_sync(conn: Connection, now: float, owner: str) -> float | None:
    """When the next waiting recipient falls due, or another owner's lease lapses, as of
    `now` (relay.store.queue.Queue.next_due), in `conn`'s transaction."""
    waiting = conn.execute(_NEXT_WAITING, {"now": now}).scalar()
    lapsing = conn.execute(_NEXT_LAPSING, {"now": now, "owner": owner}).scalar()
    times = [float(t) for t in (waiting, lapsing) if t is not None]
    return min(times) if times else None
