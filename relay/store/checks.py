"""Kept check results: the answer of each check run on a message, until the message goes.

One row per message and kind of check (`Kind`), deleted with its message (cascade). Beside
the answer (JSON, as the API gives it) a row keeps what searches ask of it
(relay/store/search.py): `score` (the HTML check's score, the links that fail, the spam
score) and `flagged` (spam; a link that fails).
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import delete, exc, insert, select

from relay.store.database import Database
from relay.store.schema import message_check


class Kind(StrEnum):
    """A kind of check whose result is kept."""

    HTML = "html"
    LINKS = "links"
    LINKS_FOLLOWED = "links-followed"
    """The link check with redirects followed: an answer of its own."""
    SPAM = "spam"


LINK_KINDS = (Kind.LINKS, Kind.LINKS_FOLLOWED)


class Checks:
    """Kept results of checks, by message and kind."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, message_id: str, kind: Kind) -> str | None:
        """The kept answer (JSON) of a check of a message, or None."""
        async with self.db.reader.connect() as conn:
            result = await conn.execute(
                select(message_check.c.result).where(
                    message_check.c.message_id == message_id, message_check.c.kind == kind
                )
            )
            return result.scalar()

    async def keep(
        self,
        message_id: str,
        kind: Kind,
        result: str,
        *,
        score: float | None,
        flagged: bool,
        now: float,
    ) -> bool:
        """Keep the answer (JSON) of a check, replacing any kept before; False when the
        message is gone (nothing is kept)."""
        row = {
            "message_id": message_id,
            "kind": kind.value,
            "checked_at": now,
            "score": score,
            "flagged": flagged,
            "result": result,
        }
        try:
            async with self.db.writer.begin() as conn:
                await conn.execute(
                    delete(message_check).where(
                        message_check.c.message_id == message_id, message_check.c.kind == kind
                    )
                )
                await conn.execute(insert(message_check), [row])
        except exc.IntegrityError:  # the message went meanwhile: its results go with it
            return False
        return True
