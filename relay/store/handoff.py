"""A hand-off's SQL on SQLite (relay.store.queue.Queue.hand_off_sync), as plain statements
for the driver: they run inside the group commit's transaction, in front of a 250, where
SQLAlchemy's work per statement was most of their cost (1.7 ms p50 for the five Core
statements on a busy 2-core machine, bench/idle_trace.py). Only the common case is
here: destinations without a rate limit or a breaker state, which a claim's
`destinations.admit` would let through untouched; anything else takes the claim's path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from relay import address
from relay.routing import Destination
from relay.status import Status
from relay.store.suppressions import Suppressed

_DUE = (
    "SELECT r.id, r.message_id, r.address, r.route, r.domain, r.attempts, m.mail_from,"
    " m.received_at FROM recipient AS r JOIN message AS m ON m.id = r.message_id"
    " WHERE r.message_id IN ({}) AND r.status = ? AND r.next_attempt_at <= ? ORDER BY r.id"
)
_STATES = 'SELECT 1 FROM destination_state WHERE "key" IN ({}) LIMIT 1'
_LEASE = (
    "UPDATE recipient SET status = ?, lease_owner = ?, lease_until = ?, updated_at = ?"
    " WHERE id IN ({})"
)
_SUPPRESSED = (
    "SELECT address_key, address, created_at, expires_at, reason, enhanced FROM suppression"
    " WHERE address_key IN ({}) AND (expires_at IS NULL OR expires_at > ?)"
)


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def due(conn: Connection, message_ids: Sequence[str], now: float) -> list[Any]:
    """What a claim reads (relay.store.claims.CLAIMED) of the recipients of `message_ids`
    waiting for their first attempt and due at `now`."""
    sql = _DUE.format(_marks(message_ids))
    return list(conn.exec_driver_sql(sql, (*message_ids, Status.QUEUED.value, now)))


def plain(
    conn: Connection, destinations: Sequence[Destination], rate: Callable[[Destination], int]
) -> bool:
    """Whether none of `destinations` has a rate limit or a breaker state (a row of
    destination_state): then a claim would lease all their recipients, and nothing else."""
    if any(rate(d) > 0 for d in destinations):
        return False
    keys = sorted({str(d) for d in destinations})
    return conn.exec_driver_sql(_STATES.format(_marks(keys)), tuple(keys)).first() is None


def lease(conn: Connection, ids: Sequence[int], owner: str, until: float, now: float) -> None:
    """Lease the recipients `ids` to `owner` until `until` (relay.store.claims.LEASE)."""
    sql = _LEASE.format(_marks(ids))
    conn.exec_driver_sql(sql, (Status.SENDING.value, owner, until, now, *ids))


def suppressed(conn: Connection, addresses: Sequence[str], now: float) -> dict[str, Suppressed]:
    """The suppression list's entries for `addresses`, by dedup key (as
    relay.store.suppressions.lookup_sync)."""
    keys = sorted({address.dedup_key(a) for a in addresses})
    rows = conn.exec_driver_sql(_SUPPRESSED.format(_marks(keys)), (*keys, now))
    return {row[0]: Suppressed(*row[1:]) for row in rows}
