"""The shape of the queue, as Postfix's qshape shows it: per destination, how many
recipients wait, and how long ago their messages arrived.

Each row is a destination (its one text form) with its total (T) and a count per age
bucket: the first counts recipients whose message arrived less than 5 minutes ago, each
next one those up to twice as old as the previous bucket's limit (10, 20, ... 1280
minutes), and the last those older than 1280 minutes. By default the recipients relay
still owes a delivery are counted: queued, being sent, or deferred (qshape's incoming,
active and deferred queues); held ones on request (qshape's hold queue).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, case, func, select

from relay.status import Status
from relay.store.database import Database
from relay.store.queue_view import DESTINATION, Paused, paused_destinations
from relay.store.schema import message, recipient

BUCKET_MINUTES = (5, 10, 20, 40, 80, 160, 320, 640, 1280)
"""The upper age limits of the buckets, in minutes; one more bucket holds the older."""
COLUMNS = ("T", *(str(m) for m in BUCKET_MINUTES), f"{BUCKET_MINUTES[-1]}+")
"""The column headings: the total, then the buckets."""
WAITING = (Status.QUEUED.value, Status.SENDING.value, Status.DEFERRED.value)
"""What is counted unless told otherwise: recipients still to be delivered."""
STATUSES = (*WAITING, Status.HELD.value)
"""What may be counted."""
TOTAL = "TOTAL"


@dataclass(frozen=True)
class ShapeRow:
    """A destination's recipients by age: the total, then one count per bucket."""

    destination: str
    counts: tuple[int, ...]
    paused: Paused | None = None

    @property
    def total(self) -> int:
        """Recipients in the row (qshape's T)."""
        return self.counts[0]


@dataclass(frozen=True)
class QueueShape:
    """The whole table: the TOTAL row, then the destinations, most recipients first."""

    statuses: tuple[str, ...]
    total: ShapeRow
    rows: list[ShapeRow] = field(default_factory=list)


def bucket_of(age: float) -> int:
    """The bucket (0 for the first) of a message `age` seconds old (pure, for tests)."""
    return next((i for i, m in enumerate(BUCKET_MINUTES) if age < m * 60), len(BUCKET_MINUTES))


def _bucket(now: float) -> ColumnElement[int]:
    """The bucket of each recipient's message, in SQL."""
    age = now - message.c.received_at
    whens = [(age < m * 60, i) for i, m in enumerate(BUCKET_MINUTES)]
    return case(*whens, else_=len(BUCKET_MINUTES))


async def shape(db: Database, now: float, statuses: Collection[str] = WAITING) -> QueueShape:
    """The queue's shape at `now` over recipients in `statuses` (a subset of STATUSES)."""
    chosen = tuple(s for s in STATUSES if s in statuses)
    bucket = _bucket(now).label("bucket")
    query = (
        select(DESTINATION.label("key"), bucket, func.count().label("n"))
        .select_from(recipient.join(message, message.c.id == recipient.c.message_id))
        .where(recipient.c.status.in_(chosen))
        .group_by("key", "bucket")
    )
    width = len(BUCKET_MINUTES) + 1
    counts: dict[str, list[int]] = {}
    async with db.reader.connect() as conn:
        for row in await conn.execute(query):
            counts.setdefault(str(row.key), [0] * width)[int(row.bucket)] += int(row.n)
        paused = await paused_destinations(conn, counts) if counts else {}
    rows = [
        ShapeRow(key, (sum(buckets), *buckets), paused.get(key)) for key, buckets in counts.items()
    ]
    rows.sort(key=lambda r: (-r.total, r.destination))
    columns = [sum(r.counts[i] for r in rows) for i in range(width + 1)]
    return QueueShape(chosen, ShapeRow(TOTAL, tuple(columns)), rows)
