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
    Select,
    Update,
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
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from relay import address, routing
from relay.config import RouteConfig
from relay.status import ACTIONS, Status
from relay.store.database import Database
from relay.store.error_key import normalize
from relay.store.events import Event, Events
from relay.store.schema import attempt, message, recipient

log = logging.getLogger(__name__)

NOT_AN_ADDRESS = "not a valid address"
"""The reason `release_captured` gives for an address it refuses to queue."""

MX_ROUTE = "relay:mx"
"""The route label of recipients delivered to their domain's MX hosts."""

MAX_ID = 2**31 - 1
"""The largest recipient id the schema's integer column holds, on both backends."""


def possible_ids(ids: Collection[int]) -> list[int]:
    """The ids that can name a recipient (1 to MAX_ID); any other matches nothing, and
    would be refused by the database driver."""
    return [i for i in ids if 0 < i <= MAX_ID]


@dataclass(frozen=True)
class Claim:
    """A recipient leased to one worker, with what is needed to send it."""

    id: int
    message_id: str
    address: str
    route: str
    domain: str
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


@dataclass(frozen=True)
class Released:
    """What releasing a captured message did: addresses queued (with their route) and
    addresses left alone, each with the reason (its route, or its status)."""

    queued: dict[str, str]
    skipped: dict[str, str]


@dataclass(frozen=True)
class AttemptRow:
    """One recorded delivery attempt of one recipient."""

    recipient_id: int
    address: str
    started_at: float
    duration: float
    host: str
    code: int | None
    enhanced: str | None
    text: str


def action_update(action: str, now: float) -> tuple[list[str], dict[str, object]]:
    """For an operator action: the statuses it applies to, and the values it sets."""
    sources, target, due_now = ACTIONS[action]
    values: dict[str, object] = {"status": target.value, "updated_at": now}
    if due_now:
        values["next_attempt_at"] = now
    if target is Status.CANCELLED:
        values["next_attempt_at"] = None
    return sorted(s.value for s in sources), values


def makes_due(action: str) -> bool:
    """Whether an operator action makes its recipients due now (retry, release)."""
    return ACTIONS[action][2]


@functools.cache
def _claim_statements(
    busy_routes: bool, busy_domains: bool
) -> tuple[Select[tuple[int]], Select[tuple[int]], Update, Select[Any]]:
    """The statements of a claim, built once (with bound parameters: now, limit, ids,
    busy_routes and busy_domains when there are busy destinations, and the lease's owner,
    until and updated): pick due recipients, add their messages' other due recipients,
    lease them all, read what the worker needs."""
    now: BindParameter[float] = bindparam("now")
    ids: BindParameter[list[int]] = bindparam("ids", expanding=True)
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
    pick = (
        select(recipient.c.id)
        .where(*conditions)
        .order_by(recipient.c.next_attempt_at, recipient.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    picked_messages = select(recipient.c.message_id).where(recipient.c.id.in_(ids))
    siblings = (
        select(recipient.c.id)
        .where(
            *conditions,
            recipient.c.message_id.in_(picked_messages),
            recipient.c.id.not_in(ids),
        )
        .with_for_update(skip_locked=True)
    )
    lease_them = (
        update(recipient)
        .where(recipient.c.id.in_(ids))
        .values(
            status=Status.SENDING.value,
            lease_owner=bindparam("owner"),
            lease_until=bindparam("until"),
            updated_at=bindparam("updated"),
        )
    )
    claimed = (
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
        .where(recipient.c.id.in_(ids))
        .order_by(recipient.c.id)
    )
    return pick, siblings, lease_them, claimed


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

    def _announce(self, message_ids: Collection[str], due: bool = False) -> None:
        """After the commit: tell this process's subscribers that these messages changed,
        and with `due` that they have recipients to send now (which wakes workers)."""
        for message_id in sorted(set(message_ids)):
            self.events.publish(Event("status", message_id))
            if due:
                self.events.publish(Event("due", message_id))

    async def _notify(
        self, conn: AsyncConnection, message_ids: Collection[str], due: bool = False
    ) -> None:
        """Inside the transaction: tell the other processes the same, at commit (PostgreSQL)."""
        if not self.db.is_sqlite:
            await conn.run_sync(self._notify_sync, message_ids, due)

    def _notify_sync(
        self, conn: Connection, message_ids: Collection[str], due: bool = False
    ) -> None:
        """`_notify` inside a blocking transaction (`queue_write`'s)."""
        ids = sorted(set(message_ids))
        self.db.notify_sync(conn, "status", ids)
        if due:
            self.db.notify_sync(conn, "due", ids)

    async def claim(
        self,
        owner: str,
        now: float,
        lease: float,
        limit: int,
        busy_routes: Collection[str] = (),
        busy_mx_domains: Collection[str] = (),
    ) -> list[Claim]:
        """Lease about `limit` due recipients (waiting, or with a lapsed lease) to `owner`.

        The batch is rounded up to whole messages, so that the due recipients of one message
        travel together (one transaction per destination). Recipients of busy destinations
        (a named route, or an MX domain) are left for later. The lease is committed when
        this returns.
        """
        pick, siblings, lease_them, claimed = _claim_statements(
            bool(busy_routes), bool(busy_mx_domains)
        )
        params: dict[str, object] = {"now": now, "limit": limit}
        if busy_routes:
            params["busy_routes"] = list(busy_routes)
        if busy_mx_domains:
            params["busy_domains"] = list(busy_mx_domains)

        def work(conn: Connection) -> list[Claim]:
            ids = list(conn.execute(pick, params).scalars())
            if not ids:
                return []
            ids += list(conn.execute(siblings, {**params, "ids": ids}).scalars())
            conn.execute(
                lease_them,
                {"ids": ids, "owner": owner, "until": now + lease, "updated": now},
            )
            return [Claim(*row) for row in conn.execute(claimed, {"ids": ids})]

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
            if not recorded:
                return []
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
                    }
                    for r in recorded
                ],
            )
            for r in recorded:
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
            self._notify_sync(conn, [r.message_id for r in recorded])
            return recorded

        recorded = await self.db.queue_write(work)
        for recipient_id in lost:
            log.warning("recipient %d: lease lost before its result was recorded", recipient_id)
        if recorded:
            self._announce([r.message_id for r in recorded])
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
            self._notify_sync(conn, message_ids, due=True)
            return message_ids, result.rowcount or 0

        message_ids, given = await self.db.queue_write(work)
        self._announce(message_ids, due=True)
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
            self._notify_sync(conn, message_ids, due=True)
            return message_ids, len(ids)

        message_ids, released = await self.db.queue_write(work)
        if released:
            self._announce(message_ids, due=True)
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

    # Operator actions, for the web and the CLI. A recipient being sent is left alone.

    async def _act(
        self, action: str, message_id: str, now: float, recipient_ids: Collection[int] | None
    ) -> int:
        sources, values = action_update(action, now)
        due_now = makes_due(action)
        conditions = [recipient.c.message_id == message_id, recipient.c.status.in_(sources)]
        if recipient_ids is not None:
            conditions.append(recipient.c.id.in_(possible_ids(recipient_ids)))
        async with self.db.writer.begin() as conn:
            result = await conn.execute(update(recipient).where(*conditions).values(**values))
            if result.rowcount:
                await self._notify(conn, [message_id], due=due_now)
        changed = result.rowcount or 0
        if changed:
            self._announce([message_id], due=due_now)
        return changed

    async def act(
        self,
        action: str,
        message_id: str,
        now: float,
        recipient_ids: Collection[int] | None = None,
    ) -> int:
        """An operator action (a key of ACTIONS) on a message's recipients (those in
        `recipient_ids`, else all) in states it applies to. Returns how many changed."""
        return await self._act(action, message_id, now, recipient_ids)

    async def retry(
        self, message_id: str, now: float, recipient_ids: Collection[int] | None = None
    ) -> int:
        """Deferred or failed recipients: queued again, due now. Returns how many changed."""
        return await self._act("retry", message_id, now, recipient_ids)

    async def hold(
        self, message_id: str, now: float, recipient_ids: Collection[int] | None = None
    ) -> int:
        """Queued or deferred recipients: held until released. Returns how many changed."""
        return await self._act("hold", message_id, now, recipient_ids)

    async def release(
        self, message_id: str, now: float, recipient_ids: Collection[int] | None = None
    ) -> int:
        """Held recipients: queued again, due now. Returns how many changed."""
        return await self._act("release", message_id, now, recipient_ids)

    async def cancel(
        self, message_id: str, now: float, recipient_ids: Collection[int] | None = None
    ) -> int:
        """Queued, deferred or held recipients: cancelled, never sent. Returns how many."""
        return await self._act("cancel", message_id, now, recipient_ids)

    async def release_captured(
        self, message_id: str, addresses: Sequence[str], rules: Sequence[RouteConfig], now: float
    ) -> Released | None:
        """Queue a stored message for `addresses`, each through the route `rules` give it.

        An address already a captured recipient of the message is queued in place; a new
        one is added. Addresses that route to capture or reject, whose recipient is in
        another state, or that hold characters no address may (CR, LF, NUL...: they could
        smuggle commands or headers) are left alone and reported. None when there is no
        such message.
        """
        queued: dict[str, str] = {}
        skipped: dict[str, str] = {}
        async with self.db.writer.begin() as conn:
            found = await conn.execute(select(message.c.id).where(message.c.id == message_id))
            if found.first() is None:
                return None
            existing = {
                row.address_key: row
                for row in await conn.execute(
                    select(recipient.c.id, recipient.c.address_key, recipient.c.status).where(
                        recipient.c.message_id == message_id
                    )
                )
            }
            for rcpt in address.dedupe(list(addresses)):
                if not address.sendable(rcpt):
                    skipped[rcpt] = NOT_AN_ADDRESS
                    continue
                decision = routing.route(rcpt, rules)
                if decision.action != "relay":
                    skipped[rcpt] = decision.label
                    continue
                key = address.dedup_key(rcpt)
                row = existing.get(key)
                values = {
                    "route": decision.label,
                    "status": Status.QUEUED.value,
                    "next_attempt_at": now,
                    "updated_at": now,
                }
                if row is None:
                    await conn.execute(
                        insert(recipient).values(
                            message_id=message_id,
                            address=rcpt,
                            address_key=key,
                            domain=address.domain_of(rcpt),
                            **values,
                        )
                    )
                elif row.status == Status.CAPTURED.value:
                    await conn.execute(
                        update(recipient).where(recipient.c.id == row.id).values(**values)
                    )
                else:
                    skipped[rcpt] = row.status
                    continue
                queued[rcpt] = decision.label
            if queued:
                await self._notify(conn, [message_id], due=True)
        if queued:
            self._announce([message_id], due=True)
        return Released(queued, skipped)

    async def attempts(self, message_id: str) -> list[AttemptRow]:
        """Every recorded attempt for a message's recipients, oldest first."""
        async with self.db.reader.connect() as conn:
            rows = await conn.execute(
                select(
                    attempt.c.recipient_id,
                    recipient.c.address,
                    attempt.c.started_at,
                    attempt.c.duration,
                    attempt.c.host,
                    attempt.c.code,
                    attempt.c.enhanced,
                    attempt.c.text,
                )
                .join(recipient, recipient.c.id == attempt.c.recipient_id)
                .where(recipient.c.message_id == message_id)
                .order_by(attempt.c.id)
            )
            return [AttemptRow(*row) for row in rows]
