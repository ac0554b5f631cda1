"""The suppression list: addresses relay no longer sends to, each with the reply (or the
operator's words) that put it there, and when it expires ([suppression] ttl).

An upstream's permanent failure that says the mailbox does not exist (5.1.1, 5.1.10), or
with `on_policy` that it will not take our mail (5.7.1), adds the address in the
transaction that records the failure (relay.store.queue). The claim that leases
recipients to the worker looks them up here in its own transaction, before anything is
sent; a suppressed recipient fails at once, or is held
(`[suppression] action`), without the upstream hearing of it. The CLI, the API and the UI
list, add and remove entries through this class.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.engine import Connection

from relay import address
from relay.config import SuppressionConfig
from relay.status import Status
from relay.store.database import Database
from relay.store.events import Events
from relay.store.outbox import Change, Outbox, iso
from relay.store.returning import update_returning_sync
from relay.store.schema import recipient, suppression

NO_MAILBOX = ("5.1.1", "5.1.10")
"""Enhanced codes that say the mailbox does not exist (bad address, null MX)."""
POLICY = "5.7.1"
"""The enhanced code of "delivery not authorized, message refused" (with `on_policy`)."""


def suppresses(code: int | None, enhanced: str, settings: SuppressionConfig) -> bool:
    """Whether an upstream's reply (`code`, `enhanced`) puts its address on the list."""
    if code is None or not 500 <= code < 600:
        return False
    return enhanced in NO_MAILBOX or (settings.on_policy and enhanced == POLICY)


@dataclass(frozen=True)
class Suppressed:
    """One entry of the list."""

    address: str
    created_at: float
    expires_at: float | None
    reason: str
    enhanced: str | None

    @property
    def why(self) -> str:
        """Why mail to it is not sent, as its recipient's last reply says it."""
        return f"suppressed since {iso(self.created_at)} because {self.reason or 'listed'}"


def _entry(row: Any) -> Suppressed:
    return Suppressed(row.address, row.created_at, row.expires_at, row.reason, row.enhanced)


def _alive(now: float) -> Any:
    """Entries not expired at `now`."""
    return or_(suppression.c.expires_at.is_(None), suppression.c.expires_at > now)


def lookup_sync(conn: Connection, addresses: Collection[str], now: float) -> dict[str, Suppressed]:
    """`Suppressions.lookup` in `conn`'s transaction (the delivery claim's: no read of its
    own)."""
    keys = sorted({address.dedup_key(a) for a in addresses})
    if not keys:
        return {}
    query = select(suppression).where(suppression.c.address_key.in_(keys), _alive(now))
    return {row.address_key: _entry(row) for row in conn.execute(query)}


class Suppressions:
    """The list, and what the worker does to claims for listed addresses."""

    def __init__(self, db: Database, events: Events, outbox: Outbox) -> None:
        self.db = db
        self.events = events
        self.outbox = outbox
        self.settings = SuppressionConfig()

    def add_sync(
        self, conn: Connection, rcpt: str, reason: str, enhanced: str | None, now: float
    ) -> Suppressed:
        """Put `rcpt` on the list in `conn`'s transaction (replacing its entry)."""
        key = address.dedup_key(rcpt)
        ttl = self.settings.ttl_seconds
        entry = Suppressed(rcpt, now, now + ttl if ttl else None, reason, enhanced or None)
        conn.execute(delete(suppression).where(suppression.c.address_key == key))
        conn.execute(
            insert(suppression).values(
                address_key=key,
                address=rcpt,
                created_at=now,
                expires_at=entry.expires_at,
                reason=reason,
                enhanced=entry.enhanced,
            )
        )
        return entry

    async def add(self, rcpt: str, reason: str, now: float) -> Suppressed:
        """An operator puts `rcpt` on the list."""
        async with self.db.writer.begin() as conn:
            return await conn.run_sync(self.add_sync, rcpt, reason, None, now)

    async def remove(self, rcpt: str) -> bool:
        """Take `rcpt` off the list; False when it was not on it."""
        key = address.dedup_key(rcpt)
        async with self.db.writer.begin() as conn:
            gone = await conn.execute(delete(suppression).where(suppression.c.address_key == key))
            return bool(gone.rowcount)

    async def entries(self, now: float, limit: int = 1000) -> list[Suppressed]:
        """The entries not expired at `now`, newest first."""
        query = (
            select(suppression)
            .where(_alive(now))
            .order_by(suppression.c.created_at.desc(), suppression.c.address_key)
            .limit(limit)
        )
        async with self.db.reader.connect() as conn:
            return [_entry(row) for row in await conn.execute(query)]

    async def lookup(self, addresses: Collection[str], now: float) -> dict[str, Suppressed]:
        """The entries (not expired at `now`) of those of `addresses` on the list, by
        dedup key."""
        if not addresses:
            return {}
        async with self.db.reader.connect() as conn:
            return await conn.run_sync(lookup_sync, addresses, now)

    async def prune(self, now: float) -> int:
        """Delete the entries expired at `now`; return how many."""
        gone = delete(suppression).where(suppression.c.expires_at <= now)
        async with self.db.writer.begin() as conn:
            return (await conn.execute(gone)).rowcount or 0

    async def hold(self, owner: str, held: Sequence[tuple[int, str]], now: float) -> int:
        """Hold the claimed recipients of `held` (id, why), still leased to `owner`, with
        `why` as their last reply; raise their `held` events. Returns how many."""
        if not held:
            return 0

        def work(conn: Connection) -> tuple[list[str], int]:
            done: list[int] = []
            message_ids: set[str] = set()
            for recipient_id, why in held:
                where = [
                    recipient.c.id == recipient_id,
                    recipient.c.lease_owner == owner,
                    recipient.c.status == Status.SENDING.value,
                ]
                values = {
                    "status": Status.HELD.value,
                    "lease_owner": None,
                    "lease_until": None,
                    "last_code": None,
                    "last_enhanced": None,
                    "last_text": why,
                    "updated_at": now,
                }
                rows = update_returning_sync(
                    conn, recipient, where, values, [recipient.c.message_id]
                )
                found = [row[0] for row in rows]
                if found:
                    message_ids.update(found)
                    done.append(recipient_id)
            self.outbox.record_sync(conn, [Change("held", i) for i in done], now)
            self.db.notify_changes_sync(conn, message_ids)
            return sorted(message_ids), len(done)

        message_ids, count = await self.db.queue_write(work)
        self.events.announce(message_ids)
        return count
