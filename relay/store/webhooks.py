"""The webhooks' outbox as its sender (relay/events/) and operators see it: the events due
now, in order per message; each POST's outcome; recent events, their attempts, a webhook's
last error; "send again".

Order per message: an event is handed out only when no older pending event of the same
webhook and message exists, so a message's events reach a receiver in the order they were
raised, whatever the retries. A handed-out event is leased (`lease_until`): another
process sharing a PostgreSQL database skips it until its result is written or the lease
lapses (a crash): delivery is at least once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from relay.store.database import Database
from relay.store.events import Event, Events
from relay.store.outbox import EXPIRED, PENDING, SENT
from relay.store.returning import update_returning, update_returning_sync
from relay.store.schema import webhook_attempt, webhook_event

WINDOW = 500
"""Pending events read per webhook per look: the first of each message among them is sent."""


@dataclass(frozen=True)
class Outgoing:
    """An event handed to the sender: what to POST where, and how old it may get."""

    id: int
    event_id: str
    webhook: str
    event: str
    message_id: str
    body: str
    attempts: int
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class EventRow:
    """An event as operators see it."""

    id: int
    event_id: str
    webhook: str
    event: str
    message_id: str
    created_at: float
    state: str
    attempts: int
    next_attempt_at: float
    expires_at: float
    last_error: str
    done_at: float | None
    body: str


@dataclass(frozen=True)
class HookAttempt:
    """One POST of an event: when, how long, the receiver's HTTP status (None: no
    answer) and what went wrong ("" when it was accepted)."""

    started_at: float
    duration: float
    status: int | None
    error: str


@dataclass(frozen=True)
class HookStats:
    """One webhook's events by state, and its last error with the time of that attempt."""

    webhook: str
    pending: int = 0
    sent: int = 0
    expired: int = 0
    last_error: str = ""
    last_error_at: float | None = None


def _event_row(row: Any) -> EventRow:
    return EventRow(
        row.id, row.event_id, row.webhook, row.event, row.message_id, row.created_at,
        row.state, row.attempts, row.next_attempt_at, row.expires_at, row.last_error,
        row.done_at, row.body,
    )  # fmt: skip


Outcome = tuple[Outgoing, HookAttempt, float | None]
"""A POST's result: the event, the attempt, when to try again (None: sent or given up)."""

_FINISH = (
    update(webhook_event)
    .where(webhook_event.c.id == bindparam("pk"))
    .values(
        state=bindparam("new_state"),
        attempts=webhook_event.c.attempts + 1,
        next_attempt_at=bindparam("next"),
        lease_until=None,
        last_error=bindparam("error"),
        done_at=bindparam("done"),
    )
)
"""One event's result (built once; executed for many)."""


def _outgoing(r: Any) -> Outgoing:
    return Outgoing(
        r.id, r.event_id, r.webhook, r.event, r.message_id, r.body, r.attempts, r.created_at,
        r.expires_at,
    )  # fmt: skip


class Webhooks:
    """The outbox's rows after they are written."""

    def __init__(self, db: Database, events: Events) -> None:
        self.db = db
        self.events = events

    async def take(
        self, urls: Sequence[str], now: float, lease: float, limit: int = 100
    ) -> list[Outgoing]:
        """Lease and return up to `limit` events due at `now` for the webhooks `urls`,
        each the oldest pending one of its webhook and message."""

        def work(conn: Connection) -> list[Outgoing]:
            chosen: list[int] = []
            for url in urls:
                pending = conn.execute(
                    select(
                        webhook_event.c.id,
                        webhook_event.c.message_id,
                        webhook_event.c.next_attempt_at,
                        webhook_event.c.lease_until,
                    )
                    .where(webhook_event.c.state == PENDING, webhook_event.c.webhook == url)
                    .order_by(webhook_event.c.id)
                    .limit(WINDOW)
                )
                seen: set[str] = set()
                for row in pending:
                    if row.message_id in seen:
                        continue
                    seen.add(row.message_id)
                    free = row.lease_until is None or row.lease_until <= now
                    if row.next_attempt_at <= now and free:
                        chosen.append(row.id)
            chosen = sorted(chosen)[:limit]
            if not chosen:
                return []
            where = [
                webhook_event.c.id.in_(chosen),
                webhook_event.c.state == PENDING,
                or_(webhook_event.c.lease_until.is_(None), webhook_event.c.lease_until <= now),
            ]
            columns = list(webhook_event.c)
            rows = update_returning_sync(
                conn, webhook_event, where, {"lease_until": now + lease}, columns
            )
            leased = [
                SimpleNamespace(**dict(zip(webhook_event.c.keys(), r, strict=True))) for r in rows
            ]
            return sorted((_outgoing(r) for r in leased), key=lambda o: o.id)

        async with self.db.writer.begin() as conn:
            return await conn.run_sync(work)

    async def finish(self, done: Sequence[Outcome], now: float) -> None:
        """Record POSTs in one transaction: each event accepted (its attempt has no
        error), to try again at its time, or given up (None)."""
        if not done:
            return
        attempts = [
            {"event_id": event.id, "started_at": a.started_at, "duration": a.duration,
             "status": a.status, "error": a.error}
            for event, a, _next in done
        ]  # fmt: skip
        updates = []
        for event, attempt, next_at in done:
            state = SENT if not attempt.error else PENDING if next_at is not None else EXPIRED
            updates.append({
                "pk": event.id, "new_state": state, "error": attempt.error,
                "next": next_at if next_at is not None else now,
                "done": None if state == PENDING else now,
            })  # fmt: skip
        async with self.db.writer.begin() as conn:
            await conn.execute(webhook_attempt.insert(), attempts)
            await conn.execute(_FINISH, updates)

    async def next_due(self, urls: Sequence[str]) -> float | None:
        """When the next pending event of these webhooks falls due (or its lease lapses)."""
        if not urls:
            return None
        due = func.min(func.coalesce(webhook_event.c.lease_until, webhook_event.c.next_attempt_at))
        query = select(due).where(
            webhook_event.c.state == PENDING, webhook_event.c.webhook.in_(list(urls))
        )
        async with self.db.reader.connect() as conn:
            found = (await conn.execute(query)).scalar()
        return None if found is None else float(found)

    async def recent(
        self, webhook: str | None = None, limit: int = 50, message_id: str | None = None
    ) -> list[EventRow]:
        """The newest events (of one webhook, of one message), newest first."""
        query = select(webhook_event).order_by(webhook_event.c.id.desc()).limit(limit)
        if webhook is not None:
            query = query.where(webhook_event.c.webhook == webhook)
        if message_id is not None:
            query = query.where(webhook_event.c.message_id == message_id)
        async with self.db.reader.connect() as conn:
            return [_event_row(row) for row in await conn.execute(query)]

    async def event(self, event_id: str) -> tuple[EventRow, list[HookAttempt]] | None:
        """One event (by its event ID) with its attempts, oldest first; None if unknown."""
        async with self.db.reader.connect() as conn:
            row = (
                await conn.execute(
                    select(webhook_event).where(webhook_event.c.event_id == event_id)
                )
            ).first()
            if row is None:
                return None
            tries = await conn.execute(
                select(webhook_attempt)
                .where(webhook_attempt.c.event_id == row.id)
                .order_by(webhook_attempt.c.id)
            )
            attempts = [HookAttempt(t.started_at, t.duration, t.status, t.error) for t in tries]
        return _event_row(row), attempts

    async def stats(self) -> dict[str, HookStats]:
        """Each webhook with events: how many in each state, and its last error."""
        counts = select(webhook_event.c.webhook, webhook_event.c.state, func.count()).group_by(
            webhook_event.c.webhook, webhook_event.c.state
        )
        last = (
            select(webhook_event.c.webhook, webhook_attempt.c.error, webhook_attempt.c.started_at)
            .join(webhook_attempt, webhook_attempt.c.event_id == webhook_event.c.id)
            .where(webhook_attempt.c.error != "")
            .order_by(webhook_attempt.c.id.desc())
        )
        found: dict[str, dict[str, Any]] = {}
        async with self.db.reader.connect() as conn:
            for url, state, count in await conn.execute(counts):
                found.setdefault(url, {})[state] = int(count)
            urls = list(found)
            errors: dict[str, tuple[str, float]] = {}
            for url in urls:
                row = (
                    await conn.execute(last.where(webhook_event.c.webhook == url).limit(1))
                ).first()
                if row is not None:
                    errors[url] = (row.error, row.started_at)
        return {
            url: HookStats(
                url,
                states.get(PENDING, 0),
                states.get(SENT, 0),
                states.get(EXPIRED, 0),
                *errors.get(url, ("", None)),
            )
            for url, states in found.items()
        }

    async def backlog(self) -> dict[str, int]:
        """How many events wait to be sent (pending), by webhook URL."""
        query = (
            select(webhook_event.c.webhook, func.count())
            .where(webhook_event.c.state == PENDING)
            .group_by(webhook_event.c.webhook)
        )
        async with self.db.reader.connect() as conn:
            return {str(url): int(count) for url, count in await conn.execute(query)}

    async def resend(self, event_id: str, now: float, max_age: float) -> bool:
        """Send an event again ("send again"): pending from `now`, for another `max_age`
        seconds, whatever its state. False when there is no such event."""
        async with self.db.writer.begin() as conn:
            values = {
                "state": PENDING,
                "next_attempt_at": now,
                "expires_at": now + max_age,
                "lease_until": None,
                "done_at": None,
            }
            where = [webhook_event.c.event_id == event_id]
            key = webhook_event.c.message_id
            found = await update_returning(conn, webhook_event, where, values, key)
        for message_id in found:  # wakes this process's sender
            self.events.publish(Event("status", message_id, due=False))
        return bool(found)

    async def release_leases(self) -> int:
        """Forget every lease (SQLite, at start: the process that held them is gone)."""
        free = update(webhook_event).where(webhook_event.c.lease_until.is_not(None))
        async with self.db.writer.begin() as conn:
            return (await conn.execute(free.values(lease_until=None))).rowcount or 0

    async def prune(self, before: float) -> int:
        """Delete events sent or given up before `before` (with their attempts)."""
        gone = webhook_event.delete().where(
            and_(webhook_event.c.state != PENDING, webhook_event.c.done_at < before)
        )
        async with self.db.writer.begin() as conn:
            return (await conn.execute(gone)).rowcount or 0
