"""The delivery timeline of one message: each recipient with its attempts (read-only)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from relay.store.database import Database
from relay.store.schema import attempt, recipient


@dataclass(frozen=True)
class AttemptRow:
    """One try at delivering one recipient, as recorded."""

    started_at: float
    duration: float
    host: str
    code: int | None
    enhanced: str | None
    text: str


@dataclass(frozen=True)
class RecipientTimeline:
    """A recipient's state, route and every attempt so far, oldest first."""

    id: int
    address: str
    route: str
    status: str
    attempts: int
    next_attempt_at: float | None
    last_code: int | None
    last_enhanced: str | None
    last_text: str | None
    history: list[AttemptRow]


class Timeline:
    """Reads recipients and attempts for the Deliveries tab."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def of_message(self, message_id: str) -> list[RecipientTimeline]:
        """Every recipient of `message_id` in envelope order, with its attempts oldest first."""
        async with self.db.reader.connect() as conn:
            recipients = (
                await conn.execute(
                    select(
                        recipient.c.id,
                        recipient.c.address,
                        recipient.c.route,
                        recipient.c.status,
                        recipient.c.attempts,
                        recipient.c.next_attempt_at,
                        recipient.c.last_code,
                        recipient.c.last_enhanced,
                        recipient.c.last_text,
                    )
                    .where(recipient.c.message_id == message_id)
                    .order_by(recipient.c.id)
                )
            ).all()
            ids = [r.id for r in recipients]
            history: dict[int, list[AttemptRow]] = {i: [] for i in ids}
            if ids:
                rows = await conn.execute(
                    select(
                        attempt.c.recipient_id,
                        attempt.c.started_at,
                        attempt.c.duration,
                        attempt.c.host,
                        attempt.c.code,
                        attempt.c.enhanced,
                        attempt.c.text,
                    )
                    .where(attempt.c.recipient_id.in_(ids))
                    .order_by(attempt.c.started_at, attempt.c.id)
                )
                for row in rows:
                    history[row.recipient_id].append(AttemptRow(*row[1:]))
        return [RecipientTimeline(*r, history=history[r.id]) for r in recipients]
