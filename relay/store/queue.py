"""The delivery queue's SQL: claims with a lease, results with their attempts, lease upkeep.

A claim commits its lease before any SMTP is spoken, and nothing here keeps a transaction
open while a worker talks to an upstream. On PostgreSQL claims take `FOR UPDATE SKIP LOCKED`
so that many processes split the due recipients without waiting on each other; on SQLite
the write lock serialises them (the clause is left out there). The worker's claims, lease
upkeep and results run through `Database.queue_write`: on SQLite one hop to the queue's own
thread per transaction, committed without a sync of its own (at-least-once delivery needs
none). A claim also reads, in its own transaction, the suppression entries of what it
leased and, when it took all that was due, when the queue next needs a look: no reads of
their own stand between a claim and its sends. Changes that make work due, or that the
web UI shows, are announced to this process after the commit and to the others by NOTIFY
at the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from relay.routing import Destination
from relay.status import Status
from relay.store import destinations, handoff
from relay.store.claims import CLAIMED, DUE_OF, LEASE, claim_statements, next_due_sync
from relay.store.database import Database
from relay.store.destinations import WAITING_AGAIN, Changes, Outcome, Seen, State
from relay.store.error_key import normalize
from relay.store.events import Events
from relay.store.outbox import Change, Outbox
from relay.store.schema import attempt, recipient
from relay.store.suppressions import Suppressed, Suppressions, lookup_sync, suppresses

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
    address: str = ""  # the recipient's, for the suppression list
    bounced: bool = False  # failed, and a bounce to the sender was stored


def _claim(row: Any) -> Claim:
    """A claimed recipient from a row of `CLAIMED`."""
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


@dataclass(frozen=True)
class Batch:
    """A claim's leases, and how many recipients it picked (some may wait instead)."""

    claims: list[Claim]
    picked: int
    waiting: list[str] = field(default_factory=list)
    """The messages of those made to wait."""
    states: list[State] = field(default_factory=list)
    """The states of the destinations it read (those that have one)."""
    suppressed: dict[str, Suppressed] = field(default_factory=dict)
    """The suppression list's entries for the claims' addresses, by dedup key, read in
    the claim's transaction (no read of their own before the sends)."""
    last: bool = False
    """The claim took all it found (it picked fewer than its limit): `next_due` is known."""
    next_due: float | None = None
    """With `last`: when the next waiting recipient falls due or another owner's lease
    lapses, as of the claim (`Queue.next_due`, asked in the claim's transaction)."""


@dataclass(frozen=True)
class Lease:
    """A hand-off's terms (relay.store.batch.HandOff): the due recipients of `message_ids`
    go to `owner` at `now` for `seconds`, as a claim with `rate` would lease them."""

    message_ids: list[str]
    owner: str
    now: float
    seconds: float
    rate: Callable[[Destination], int] = lambda _: 0


class Queue:
    """Recipients waiting for delivery, and the leases of those being sent."""

    def __init__(
        self, db: Database, events: Events, suppressions: Suppressions | None = None
    ) -> None:
        self.db = db
        self.events = events
        self.suppressions = suppressions or Suppressions(db, events, Outbox())
        self.seen = Seen()
        """What this process saw of the destinations' breakers."""

    async def claim(
        self,
        owner: str,
        now: float,
        lease: float,
        limit: int,
        busy: Collection[Destination] = (),
        rate: Callable[[Destination], int] | None = None,
    ) -> list[Claim]:
        """Lease about `limit` due recipients (waiting, or with a lapsed lease) to `owner`.

        The batch is rounded up to whole messages, so that the due recipients of one message
        travel together (one transaction per destination). Recipients of `busy`
        destinations are left for later. With `rate` (messages per minute by destination)
        limits and pauses apply (destinations.admit). The lease is committed on return.
        """
        return (await self.claim_batch(owner, now, lease, limit, busy, rate)).claims

    async def claim_batch(
        self,
        owner: str,
        now: float,
        lease: float,
        limit: int,
        busy: Collection[Destination] = (),
        rate: Callable[[Destination], int] | None = None,
    ) -> Batch:
        """`claim`, saying also how many recipients it picked."""
        busy_routes = sorted({d.route for d in busy if not d.is_mx})
        busy_domains = sorted({d.domain for d in busy if d.is_mx and d.domain is not None})
        pick, siblings = claim_statements(bool(busy_routes), bool(busy_domains))
        params: dict[str, object] = {"now": now, "limit": limit}
        if busy_routes:
            params["busy_routes"] = busy_routes
        if busy_domains:
            params["busy_domains"] = busy_domains

        def work(conn: Connection) -> Batch:
            ids = list(conn.execute(pick, params).scalars())
            if not ids:  # the queue as of `now`: asked here, not in a read of its own after
                return Batch([], 0, last=True, next_due=next_due_sync(conn, now, owner))
            ids += list(conn.execute(siblings, {**params, "ids": ids}).scalars())
            batch = self._lease_sync(conn, ids, owner, now, lease, rate)
            if len(ids) < limit:  # all that was due: when to look again, as of now
                batch = replace(batch, last=True, next_due=next_due_sync(conn, now, owner))
            return batch

        batch = await self.db.queue_write(work)
        self.leased(batch)
        return batch

    def hand_off_sync(self, conn: Connection, lease: Lease) -> Batch:
        """In the transaction that stores `lease.message_ids` (relay.store.batch, SQLite):
        lease their due recipients to its owner as a claim would (limits, pauses,
        suppression entries), so that this process's worker sends them with no claim of
        its own. A crash before they are sent leaves leases that lapse, and are claimed
        again, like any other. Call `leased` with the batch once it has committed. On
        SQLite the common case goes as plain statements (relay.store.handoff)."""
        if conn.dialect.name != "sqlite":
            due = {"messages": lease.message_ids, "now": lease.now}
            ids = list(conn.execute(DUE_OF, due).scalars())
        else:
            picked = [_claim(row) for row in handoff.due(conn, lease.message_ids, lease.now)]
            ids = [c.id for c in picked]
            if picked and handoff.plain(conn, [c.destination for c in picked], lease.rate):
                handoff.lease(conn, ids, lease.owner, lease.now + lease.seconds, lease.now)
                found = handoff.suppressed(conn, [c.address for c in picked], lease.now)
                return Batch(picked, len(ids), suppressed=found)
        if not ids:
            return Batch([], 0)
        return self._lease_sync(conn, ids, lease.owner, lease.now, lease.seconds, lease.rate)

    def leased(self, batch: Batch) -> None:
        """After the commit of a claim or a hand-off: announce the messages made to wait
        (their next attempt moved), remember the destinations' states it read."""
        self.events.announce(batch.waiting)
        self.seen.note(batch.states)

    def _lease_sync(
        self,
        conn: Connection,
        ids: Sequence[object],
        owner: str,
        now: float,
        lease: float,
        rate: Callable[[Destination], int] | None,
    ) -> Batch:
        """Lease the recipients `ids` to `owner`, those their destination lets go now (with
        `rate`, destinations.admit), in `conn`'s transaction."""
        picked = [_claim(row) for row in conn.execute(CLAIMED, {"ids": ids})]
        claims, states = picked, list[State]()
        if rate is not None:
            claims, states = destinations.admit(conn, picked, now, lease, rate)
        leased = {c.id for c in claims}
        conn.execute(
            LEASE, {"ids": list(leased), "owner": owner, "until": now + lease, "updated": now}
        )
        waiting = sorted({c.message_id for c in picked if c.id not in leased})
        self.db.notify_changes_sync(conn, waiting)
        suppressed = lookup_sync(conn, [c.address for c in claims], now)
        return Batch(claims, len(ids), waiting, states, suppressed)

    async def finish(
        self, owner: str, results: Sequence[Result], now: float, outcomes: Sequence[Outcome] = ()
    ) -> int:
        """Record each result as an attempt and set its recipient's new status; count the
        `outcomes` in their destinations' breakers (destinations.record); commit.

        A recipient whose lease `owner` no longer holds keeps its state (another worker has
        it); its attempt is recorded all the same. A recipient deleted meanwhile (with its
        message, by an operator) has nothing left to record. Returns how many recipients
        were updated.
        """
        outcomes = self.seen.worth_recording(outcomes)
        if not results and not outcomes:
            return 0
        lost: list[int] = []  # recipients whose lease went elsewhere before their result

        def work(conn: Connection) -> tuple[list[Result], Changes]:
            """Record what is left of `results` and the outcomes; return the results
            recorded and what the outcomes changed."""
            lost.clear()  # run again when it was a deadlock's victim
            present = select(recipient.c.id).where(
                recipient.c.id.in_([r.recipient_id for r in results])
            )
            # Locked, so that a delete cannot slip in before the attempts are written.
            alive = set(conn.execute(present.with_for_update()).scalars())
            recorded = [r for r in results if r.recipient_id in alive]
            if recorded:
                lost.extend(_record(conn, owner, recorded, now))
                self._raise(conn, [r for r in recorded if r.recipient_id not in lost], now)
                self.db.notify_changes_sync(conn, [r.message_id for r in recorded])
            changes = destinations.record(conn, outcomes, now)
            self.db.notify_changes_sync(conn, changes.due, due=True)
            return recorded, changes

        recorded, changes = await self.db.queue_write(work)
        for recipient_id in lost:
            log.warning("recipient %d: lease lost before its result was recorded", recipient_id)
        self.events.announce([r.message_id for r in recorded])
        self.events.announce(changes.due, due=True)
        self.seen.note(changes.states)
        return len(recorded) - len(lost)

    async def give_back(
        self, owner: str, ids: Collection[int], now: float, until: float | None = None
    ) -> int:
        """Return leased recipients to the queue as they were: no attempt counted, still
        due (or due at `until`: their destination is paused)."""
        if not ids:
            return 0
        later = {} if until is None else {"next_attempt_at": until}

        def work(conn: Connection) -> tuple[list[str], int]:
            message_ids = self._message_ids(conn, ids)
            result = conn.execute(
                update(recipient)
                .where(
                    recipient.c.id.in_(list(ids)),
                    recipient.c.lease_owner == owner,
                    recipient.c.status == Status.SENDING.value,
                )
                .values(
                    status=WAITING_AGAIN,
                    lease_owner=None,
                    lease_until=None,
                    updated_at=now,
                    **later,
                )
            )
            self.db.notify_changes_sync(conn, message_ids, due=until is None)
            return message_ids, result.rowcount or 0

        message_ids, given = await self.db.queue_write(work)
        self.events.announce(message_ids, due=until is None)
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
                .values(status=WAITING_AGAIN, lease_owner=None, lease_until=None, updated_at=now)
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
            return await conn.run_sync(next_due_sync, now, owner)

    def _raise(self, conn: Connection, results: Sequence[Result], now: float) -> None:
        """What recorded results raise in the same transaction: their webhooks' events,
        and the addresses that go on the suppression list."""
        changes: list[Change] = []
        settings = self.suppressions.settings
        for r in results:
            attempt_ = {
                "host": r.host, "code": r.code, "enhanced": r.enhanced, "text": r.text,
                "duration": round(r.duration, 3), "injected": r.injected,
            }  # fmt: skip
            changes.append(Change(r.status.value, r.recipient_id, attempt_))
            if r.bounced:
                changes.append(Change("bounced", r.recipient_id, attempt_))
            listed = r.status is Status.FAILED and r.address and not r.injected
            if listed and suppresses(r.code, r.enhanced, settings):
                reason = " ".join(str(p) for p in (r.code, r.enhanced, r.text) if p)
                self.suppressions.add_sync(conn, r.address, reason, r.enhanced, now)
        self.suppressions.outbox.record_sync(conn, changes, now)

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
