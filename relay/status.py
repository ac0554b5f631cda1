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


# Operator actions: the states each applies to, the state it sets, whether it makes it due now.
ACTIONS: dict[str, tuple[frozenset[Status], Status, bool]] = {
    "retry": (frozenset({Status.DEFERRED, Status.FAILED}), Status.QUEUED, True),
    "hold": (frozenset({Status.QUEUED, Status.DEFERRED}), Status.HELD, False),
    "release": (frozenset({Status.HELD}), Status.QUEUED, True),
    "cancel": (frozenset({Status.QUEUED, Status.DEFERRED, Status.HELD}), Status.CANCELLED, False),
}

SHOWN = (Status.DEFERRED.value, Status.FAILED.value, Status.HELD.value)
"""The recipient statuses the queue view lists."""

DONE = (Status.CAPTURED, Status.DELIVERED, Status.FAILED, Status.CANCELLED)
"""Message statuses (derived from the recipients') of mail that may be pruned."""


def applies_to(action: str) -> str:
    """The recipient states an operator action changes, in words: "deferred or failed"."""
    names = sorted(ACTIONS[action][0])
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


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


def actions_for(status: str) -> list[str]:
    """The operator actions that apply to a recipient in `status`, in button order."""
    return [name for name, (sources, _t, _d) in ACTIONS.items() if status in sources]
