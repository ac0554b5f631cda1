"""The delivery queue's SQL: claims with a lease, results with their attempts, lease upkeep.

A claim commits its lease before any SMTP is spoken, and nothing here keeps a transaction
open while a worker talks to an upstream. On PostgreSQL claims take `FOR UPDATE SKIP LOCKED`
so that many processes split the due recipients without waiting on each other; on SQLite
the write lock serialises them (the clause is left out there). The worker's claims, lease
upkeep and results run through `Database.queue_write`: on SQLite one hop to the queue's own
thread per transaction, committed without a sync of its own (at-least-once delivery needs
none). Changes that make work due, or that the web UI shows, are announced to this process
after the commit and to the others by NOTIFY at the commit.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import BindParameter

from relay.routing import MX_ROUTE, Destination
from relay.status import Status
from relay.store.database import Database
from relay.store.error_key import normalize
from relay.store.events import Events
from relay.store.schema import attempt, message, recipient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A recipient leased to one worker, with what is needed to send it."""

    id: int
    message_id: str
    address: str
    destination: Destination
    attempts: int
    mail_from: str
    received_at: float


@dataclass(frozen=True)
class Result:
    """The outcome of one attempt for one claimed recipient."""

    recipient_id: int
    message_id: str
    status: Status
    next_attempt_at: float | None
    code: int | None
    enhanced: str
    text: str
    host: str
    started_at: float
    duration: float
    injected: bool = False  # made by a chaos rule, nothing sent (relay/delivery/drills.py)


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


_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)


@functools.cache
def _claim_statements(
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
    picked_messages = select(recipient.c.message_id).where(recipient.c.id.in_(_IDS))
    siblings = (
        select(recipient.c.id)
        .where(
            *conditions,
            recipient.c.message_id.in_(picked_messages),
            recipient.c.id.not_in(_IDS),
        )
        .with_for_update(skip_locked=True)
    )
    return pick, siblings


_LEASE = (
    update(recipient)
    .where(recipient.c.id.in_(_IDS))
    .values(
        status=Status.SENDING.value,
        lease_owner=bindparam("owner"),
        lease_until=bindparam("until"),
        updated_at=bindparam("updated"),
    )
)
"""Lease the recipients `ids` to `owner` until `until` (built once)."""

_CLAIMED = (
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
    .where(recipient.c.id.in_(_IDS))
    .order_by(recipient.c.id)
)
"""What the worker needs of the recipients `ids` (built once)."""


def _claim(row: Any) -> Claim:
    """A claimed recipient from a row of `_CLAIMED`."""
    destination = Destination.stored(row.route, row.domain)
    return Claim(
        row.id, row.message_id, row.address, destination, row.attempts, row.mail_from,
        row.received_at,
    )  # fmt: skip


_RECORD_RESULT = (
    update(recipient)
    .where(
        recipient.c.id == bindparam("recipient"),
        recipient.c.lease_owner == bindparam("owner"),
        recipient.c.status == Status.SENDING.value,
    )
    .values(
        status=bindparam("new_status"),
        attempts=recipient.c.attempts + 1,
        next_attempt_at=bindparam("next_attempt"),
        lease_owner=None,
        lease_until=None,
        last_code=bindparam("code"),
        last_enhanced=bindparam("enhanced"),
        last_text=bindparam("text"),
        last_error_key=bindparam("error_key"),
        updated_at=bindparam("updated"),
    )
)
"""A result for one recipient, if its lease is still `owner`'s (built once)."""

# A recipient that goes back to waiting is "queued" before its first attempt, else "deferred".
_WAITING_AGAIN = case((recipient.c.attempts == 0, Status.QUEUED.value), else_=Status.DEFERRED.value)


class Queue:
    """Recipients waiting for delivery, and the leases of those being sent."""

    def __init__(self, db: Database, events: Events) -> None:
        self.db = db
        self.events = events

    async def claim(
        self,
        owner: str,
        now: float,
        lease: float,
        limit: int,
        busy: Collection[Destination] = (),
    ) -> list[Claim]:
        """Lease about `limit` due recipients (waiting, or with a lapsed lease) to `owner`.

        The batch is rounded up to whole messages, so that the due recipients of one message
        travel together (one transaction per destination). Recipients of `busy`
        destinations are left for later. The lease is committed when this returns.
        """
        busy_routes = sorted({d.route for d in busy if not d.is_mx})
        busy_domains = sorted({d.domain for d in busy if d.is_mx and d.domain is not None})
        pick, siblings = _claim_statements(bool(busy_routes), bool(busy_domains))
        params: dict[str, object] = {"now": now, "limit": limit}
        if busy_routes:
            params["busy_routes"] = busy_routes
        if busy_domains:
            params["busy_domains"] = busy_domains

        def work(conn: Connection) -> list[Claim]:
            ids = list(conn.execute(pick, params).scalars())
            if not ids:
                return []
            ids += list(conn.execute(siblings, {**params, "ids": ids}).scalars())
            conn.execute(_LEASE, {"ids": ids, "owner": owner, "until": now + lease, "updated": now})
            return [_claim(row) for row in conn.execute(_CLAIMED, {"ids": ids})]

        return await self.db.queue_write(work)

    async def finish(self, owner: str, results: Sequence[Result], now: float) -> int:
        """Record each result as an attempt and set its recipient's new status; commit.

        A recipient whose lease `owner` no longer holds keeps its state (another worker has
        it); its attempt is recorded all the same. A recipient deleted meanwhile (with its
        message, by an operator) has nothing left to record. Returns how many recipients
        were updated.
        """
        if not results:
            return 0
        lost: list[int] = []  # recipients whose lease went elsewhere before their result

        def work(conn: Connection) -> list[Result]:
            """Record what is left of `results`; return the results recorded."""
            present = select(recipient.c.id).where(
                recipient.c.id.in_([r.recipient_id for r in results])
            )
            # Locked, so that a delete cannot slip in before the attempts are written.
            alive = set(conn.execute(present.with_for_update()).scalars())
            recorded = [r for r in results if r.recipient_id in alive]
            if recorded:
                lost.extend(_record(conn, owner, recorded, now))
                self.db.notify_changes_sync(conn, [r.message_id for r in recorded])
            return recorded

        recorded = await self.db.queue_write(work)
        for recipient_id in lost:
            log.warning("recipient %d: lease lost before its result was recorded", recipient_id)
        self.events.announce([r.message_id for r in recorded])
        return len(recorded) - len(lost)

    async def give_back(self, owner: str, ids: Collection[int], now: float) -> int:
        """Return leased recipients to the queue as they were: no attempt counted, still due."""
        if not ids:
            return 0

        def work(conn: Connection) -> tuple[list[str], int]:
            message_ids = self._message_ids(conn, ids)
            result = conn.execute(
                update(recipient)
                .where(
                    recipient.c.id.in_(list(ids)),
                    recipient.c.lease_owner == owner,
                    recipient.c.status == Status.SENDING.value,
                )
                .values(status=_WAITING_AGAIN, lease_owner=None, lease_until=None, updated_at=now)
            )
            self.db.notify_changes_sync(conn, message_ids, due=True)
            return message_ids, result.rowcount or 0

        message_ids, given = await self.db.queue_write(work)
        self.events.announce(message_ids, due=True)
        return given

    async def renew(self, owner: str, ids: Collection[int], until: float) -> int:
        """Extend `owner`'s leases on `ids` to `until`; returns how many it still holds."""
        if not ids:
            return 0

        def work(conn: Connection) -> int:
            result = conn.execute(
                update(recipient)
                .where(
                    recipient.c.id.in_(list(ids)),
                    recipient.c.lease_owner == owner,
                    recipient.c.status == Status.SENDING.value,
                )
                .values(lease_until=until)
            )
            return result.rowcount or 0

        return await self.db.queue_write(work)

    async def release_all_leases(self, now: float) -> int:
        """Put every leased recipient back in the queue, still due (no attempt counted).

        Only for a database that one process owns (SQLite): at start-up, the leases left
        by a process that was killed belong to nobody.
        """

        def work(conn: Connection) -> tuple[list[str], int]:
            ids = list(
                conn.execute(
                    select(recipient.c.id).where(recipient.c.status == Status.SENDING.value)
                ).scalars()
            )
            if not ids:
                return [], 0
            message_ids = self._message_ids(conn, ids)
            conn.execute(
                update(recipient)
                .where(recipient.c.id.in_(ids))
                .values(status=_WAITING_AGAIN, lease_owner=None, lease_until=None, updated_at=now)
            )
            self.db.notify_changes_sync(conn, message_ids, due=True)
            return message_ids, len(ids)

        message_ids, released = await self.db.queue_write(work)
        if released:
            self.events.announce(message_ids, due=True)
        return released

    async def next_due(self, now: float, owner: str) -> float | None:
        """When the next waiting recipient falls due, or another owner's lease lapses."""
        async with self.db.reader.connect() as conn:
            waiting = (
                await conn.execute(
                    select(func.min(recipient.c.next_attempt_at)).where(
                        recipient.c.status.in_([Status.QUEUED.value, Status.DEFERRED.value]),
                        recipient.c.next_attempt_at > now,
                    )
                )
            ).scalar()
            lapsing = (
                await conn.execute(
                    select(func.min(recipient.c.lease_until)).where(
                        recipient.c.status == Status.SENDING.value,
                        recipient.c.lease_owner != owner,
                        recipient.c.lease_until > now,
                    )
                )
            ).scalar()
        times = [float(t) for t in (waiting, lapsing) if t is not None]
        return min(times) if times else None

    @staticmethod
    def _message_ids(conn: Connection, ids: Collection[int]) -> list[str]:
        rows = conn.execute(
            select(recipient.c.message_id).where(recipient.c.id.in_(list(ids))).distinct()
        )
        return list(rows.scalars())


def _record(conn: Connection, owner: str, results: Sequence[Result], now: float) -> list[int]:
    """Write each result's attempt and its recipient's new state, if `owner` still holds
    its lease; return the recipients whose lease went elsewhere."""
    conn.execute(
        insert(attempt),
        [
            {
                "recipient_id": r.recipient_id,
                "started_at": r.started_at,
                "duration": r.duration,
                "host": r.host,
                "code": r.code,
                "enhanced": r.enhanced or None,
                "text": r.text,
                "injected": r.injected,
            }
            for r in results
        ],
    )
    lost = []
    for r in results:
        done = conn.execute(
            _RECORD_RESULT,
            {
                "recipient": r.recipient_id,
                "owner": owner,
                "new_status": r.status.value,
                "next_attempt": r.next_attempt_at,
                "code": r.code,
                "enhanced": r.enhanced or None,
                "text": r.text,
                "error_key": normalize(r.text),
                "updated": now,
            },
        )
        if not done.rowcount:
            lost.append(r.recipient_id)
    return lost
