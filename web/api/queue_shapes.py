"""The queue and a message's deliveries as relay's own API shapes them (PascalCase fields,
as in Mailpit's objects; times as RFC 3339 UTC). Each shape is described once (oas.Shape):
the answers and the OpenAPI schemas both come from it. Pure functions; the routes fetch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from relay.status import ACTIONS, actions_for, next_attempt
from relay.store import (
    AttemptRow,
    Group,
    MessageRow,
    Paused,
    QueuePage,
    QueueRow,
    QueueShape,
    QueueSummary,
    RecipientRow,
    RecipientTimeline,
    ShapeRow,
)
from relay.store.shape import COLUMNS as SHAPE_COLUMNS
from web.api.oas import (
    BOOLEAN,
    COUNTS,
    INTEGER,
    JSON,
    NULLABLE_INT,
    NULLABLE_TEXT,
    NULLABLE_TIME,
    NUMBER,
    STRING,
    STRINGS,
    TIME,
    Field,
    Shape,
    array,
    described,
)
from web.api.shapes import timestamp


def maybe_time(epoch: float | None) -> str | None:
    """An epoch as RFC 3339, or None."""
    return None if epoch is None else timestamp(epoch)


_RECIPIENT_ID = described(INTEGER, "Recipient ID")
_ACTION_LIST = array({"type": "string", "enum": list(ACTIONS)})
_ID: Field[RecipientRow] = Field("ID", _RECIPIENT_ID, lambda r: r.id)
_ADDRESS: Field[RecipientRow] = Field("Address", STRING, lambda r: r.address)
_ROUTE: Field[RecipientRow] = Field("Route", STRING, lambda r: r.route)
_STATE: tuple[Field[RecipientRow], ...] = (
    Field("Status", STRING, lambda r: r.status),
    Field("Attempts", INTEGER, lambda r: r.attempts),
    Field(
        "NextAttempt",
        NULLABLE_TIME,
        lambda r: maybe_time(next_attempt(r.status, r.next_attempt_at)),
    ),
    Field("LastCode", NULLABLE_INT, lambda r: r.last_code),
    Field("LastEnhanced", NULLABLE_TEXT, lambda r: r.last_enhanced),
    Field("LastText", NULLABLE_TEXT, lambda r: r.last_text),
)
_ACTIONS: Field[RecipientRow] = Field("Actions", _ACTION_LIST, lambda r: actions_for(r.status))

QUEUE_RECIPIENT: Shape[QueueRow] = Shape(
    "QueueRecipient",
    (
        _ID,
        Field("Message", described(STRING, "ID of its message"), lambda r: r.message_id),
        _ADDRESS,
        _ROUTE,
        Field("Destination", STRING, lambda r: r.destination),
        *_STATE,
        Field("ErrorGroup", STRING, lambda r: str(r.error)),
        Field("Updated", TIME, lambda r: timestamp(r.updated_at)),
        Field("Received", TIME, lambda r: timestamp(r.received_at)),
        Field("MailFrom", STRING, lambda r: r.mail_from),
        Field("Subject", STRING, lambda r: r.subject),
        _ACTIONS,
    ),
)
"""One recipient of the queue with its message's sender and subject."""


_PAUSED_UNTIL = described(NULLABLE_TIME, "Until when its circuit breaker pauses it")
_PAUSED_BECAUSE = described(NULLABLE_TEXT, "The reply that paused it")
T = TypeVar("T")


def _pause(read: Callable[[T], Paused | None]) -> tuple[Field[T], Field[T]]:
    """A destination's pause as two fields (nulls when it is not paused)."""
    return (
        Field(
            "PausedUntil", _PAUSED_UNTIL, lambda v: maybe_time(p.until) if (p := read(v)) else None
        ),
        Field("PausedBecause", _PAUSED_BECAUSE, lambda v: p.reason if (p := read(v)) else None),
    )


def _group_pause(group: Group) -> Paused | None:
    return group.paused


def _row_pause(row: ShapeRow) -> Paused | None:
    return row.paused


def summary(queue: QueueSummary) -> JSON:
    """Recipients per queue state."""
    return {
        "queued": queue.queued,
        "sending": queue.sending,
        "deferred": queue.deferred,
        "failed": queue.failed,
        "held": queue.held,
    }


@dataclass(frozen=True)
class Listing:
    """One page of the queue, with the counts its answer carries."""

    page: QueuePage
    start: int
    counts: dict[str, int]
    summary: QueueSummary


QUEUE_PAGE: Shape[Listing] = Shape(
    "QueuePage",
    (
        Field("total", INTEGER, lambda q: q.page.total),
        Field("start", INTEGER, lambda q: q.start),
        Field("count", INTEGER, lambda q: len(q.page.rows)),
        Field("counts", COUNTS, lambda q: q.counts),
        Field("summary", COUNTS, lambda q: summary(q.summary)),
        Field(
            "recipients",
            array(QUEUE_RECIPIENT.ref),
            lambda q: [QUEUE_RECIPIENT(r) for r in q.page.rows],
        ),
    ),
)

QUEUE_GROUP: Shape[Group] = Shape(
    "QueueGroup",
    (
        Field("Key", STRING, lambda g: g.key),
        Field("Count", INTEGER, lambda g: g.count),
        Field("Deferred", INTEGER, lambda g: g.deferred),
        Field("Failed", INTEGER, lambda g: g.failed),
        Field("Held", INTEGER, lambda g: g.held),
        Field("Oldest", TIME, lambda g: timestamp(g.oldest)),
        Field("NextAttempt", NULLABLE_TIME, lambda g: maybe_time(g.next_attempt_at)),
        Field("Code", NULLABLE_INT, lambda g: g.code),
        Field("Enhanced", NULLABLE_TEXT, lambda g: g.enhanced),
        Field("Sample", STRING, lambda g: g.sample),
        *_pause(_group_pause),
    ),
)
"""A destination or error group: its key, counts by state, oldest message, next retry,
and for a destination its pause."""

_COUNTS = described(array(INTEGER), "Recipients: the total (T), then one count per age bucket")

QUEUE_SHAPE_ROW: Shape[ShapeRow] = Shape(
    "QueueShapeRow",
    (
        Field("Destination", STRING, lambda r: r.destination),
        Field("Counts", _COUNTS, lambda r: list(r.counts)),
        *_pause(_row_pause),
    ),
)
"""One destination's waiting recipients by the age of their message."""

QUEUE_SHAPE: Shape[QueueShape] = Shape(
    "QueueShape",
    (
        Field("Statuses", described(STRINGS, "The states counted"), lambda q: list(q.statuses)),
        Field(
            "Columns",
            described(STRINGS, "T, then each bucket's upper age in minutes (the last: older)"),
            lambda _: list(SHAPE_COLUMNS),
        ),
        Field("Total", _COUNTS, lambda q: list(q.total.counts)),
        Field(
            "Destinations",
            array(QUEUE_SHAPE_ROW.ref),
            lambda q: [QUEUE_SHAPE_ROW(r) for r in q.rows],
        ),
    ),
)
"""Postfix's qshape: per destination, the waiting recipients by minutes since arrival."""

ATTEMPT: Shape[AttemptRow] = Shape(
    "Attempt",
    (
        Field("Time", TIME, lambda a: timestamp(a.started_at)),
        Field("Duration", NUMBER, lambda a: round(a.duration, 3)),
        Field("Host", STRING, lambda a: a.host),
        Field("Code", NULLABLE_INT, lambda a: a.code),
        Field("Enhanced", NULLABLE_TEXT, lambda a: a.enhanced),
        Field("Text", STRING, lambda a: a.text),
        Field("Injected", BOOLEAN, lambda a: a.injected),
    ),
)
"""One delivery attempt; Injected: made by a chaos rule, nothing sent, no upstream's reply."""

DELIVERY: Shape[RecipientTimeline] = Shape(
    "Delivery",
    (
        _ID,
        _ADDRESS,
        _ROUTE,
        *_STATE,
        _ACTIONS,
        Field("History", array(ATTEMPT.ref), lambda r: [ATTEMPT(a) for a in r.history]),
    ),
)
"""One recipient of a message: its state, route, last reply and every attempt."""

DELIVERIES: Shape[tuple[MessageRow, list[RecipientTimeline]]] = Shape(
    "Deliveries",
    (
        Field("ID", STRING, lambda m: m[0].id),
        Field("Status", STRING, lambda m: m[0].status),
        Field("Recipients", array(DELIVERY.ref), lambda m: [DELIVERY(r) for r in m[1]]),
    ),
)
"""A message's status and each of its recipients' deliveries."""
