"""The delivery timeline of one message: each recipient with its attempts (read-only)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncConnection

from relay.store.database import Database
from relay.store.messages import RecipientRow, recipient_columns
from relay.store.schema import attempt, recipient


@dataclass(frozen=True)
class AttemptRow:
    """One try at delivering one recipient, as recorded."""

    recipient_id: int
    address: str
    started_at: float
    duration: float
    host: str
    code: int | None
    enhanced: str | None
    text: str
    injected: bool  # made by a chaos rule of the delivery leg: nothing was sent


@dataclass(frozen=True)
class RecipientTimeline(RecipientRow):
    """A recipient's state, route and every attempt so far, oldest first."""

    history: list[AttemptRow]


async def _attempts(
    conn: AsyncConnection, where: ColumnElement[bool], *order: ColumnElement[object]
) -> list[AttemptRow]:
    """The attempts `where` picks (of recipients joined), in `order`."""
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
            attempt.c.injected,
        )
        .join(recipient, recipient.c.id == attempt.c.recipient_id)
        .where(where)
        .order_by(*order)
    )
    return [AttemptRow(*row) for row in rows]


class Timeline:
    """Reads recipients and attempts for the Deliveries tab."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def of_message(self, message_id: str) -> list[RecipientTimeline]:
        """Every recipient of `message_id` in envelope order, with its attempts oldest first."""
        async with self.db.reader.connect() as conn:
            recipients = (
                await conn.execute(
                    select(*recipient_columns())
                    .where(recipient.c.message_id == message_id)
                    .order_by(recipient.c.id)
                )
            ).all()
            ids = [r.id for r in recipients]
            history: dict[int, list[AttemptRow]] = {i: [] for i in ids}
            if ids:
                where = attempt.c.recipient_id.in_(ids)
                for one in await _attempts(conn, where, attempt.c.started_at, attempt.c.id):
                    history[one.recipient_id].append(one)
        return [RecipientTimeline(**r._asdict(), history=history[r.id]) for r in recipients]

    async def attempts(self, message_id: str) -> list[AttemptRow]:
        """Every recorded attempt for a message's recipients, oldest first."""
        async with self.db.reader.connect() as conn:
            return await _attempts(conn, recipient.c.message_id == message_id, attempt.c.id)
