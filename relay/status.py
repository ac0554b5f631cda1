"""Recipient states, and a message's state derived from its recipients' (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Status(StrEnum):
    """Where one recipient of one message stands."""

    CAPTURED = "captured"  # kept, never relayed unless released
    QUEUED = "queued"  # due for delivery
    SENDING = "sending"  # leased by a delivery worker
    DELIVERED = "delivered"
    DEFERRED = "deferred"  # will be retried at next_attempt_at
    FAILED = "failed"  # permanent: 5xx, or gave up
    HELD = "held"  # paused by an operator
    CANCELLED = "cancelled"  # discarded by an operator


# A message shows the first of these that any of its recipients has.
PRECEDENCE = (
    Status.SENDING,
    Status.QUEUED,
    Status.DEFERRED,
    Status.HELD,
    Status.FAILED,
    Status.DELIVERED,
    Status.CAPTURED,
    Status.CANCELLED,
)


def message_status(statuses: Iterable[str]) -> Status:
    """The status the UI shows for a message whose recipients have `statuses`."""
    present = set(statuses)
    for status in PRECEDENCE:
        if status in present:
            return Status.QUEUED if status is Status.SENDING else status
    return Status.CAPTURED


def next_attempt(status: str, at: float | None) -> float | None:
    """When a recipient in `status` is tried next: its due time while queued or deferred;
    None otherwise (a held or finished recipient keeps a stale time that means nothing)."""
    return at if status in (Status.QUEUED, Status.DEFERRED) else None
