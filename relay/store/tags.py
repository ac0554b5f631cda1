"""Tags of stored messages: read them with the messages, list them, set, rename, delete.

Two tags are one when their names differ only in case (`tag_key`, the name lower-cased);
a tag's name is spelled as it was first given, and a rename spells it anew everywhere.
Callers hand over names that are already checked (relay.tagging). A tag exists while a
message has it: there is no table of tags apart from the messages'.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from relay import tagging
from relay.store.accepted import tag_rows
from relay.store.database import Database
from relay.store.memo import Memo
from relay.store.returning import delete_returning
from relay.store.schema import message, message_tag


async def tags_of(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The tags of each of `ids` that has any, in order of their keys."""
    if not ids:
        return {}
    found: dict[str, list[str]] = {}
    result = await conn.execute(
        select(message_tag.c.message_id, message_tag.c.tag)
        .where(message_tag.c.message_id.in_(list(ids)))
        .order_by(message_tag.c.message_id, message_tag.c.tag_key)
    )
    for message_id, tag in result:
        found.setdefault(str(message_id), []).append(str(tag))
    return {k: tuple(v) for k, v in found.items()}


class Tags:
    """Every message's tags: the list of them (kept until the database changes), and the
    changes people make."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._counts = Memo(db, self._count_now)

    async def counts(self) -> dict[str, int]:
        """Each tag with how many messages have it, in order of the keys."""
        return dict(await self._counts.get())

    async def names(self) -> list[str]:
        """Every tag in use, in order of the keys (case-insensitive)."""
        return list(await self._counts.get())

    async def _count_now(self) -> dict[str, int]:
        async with self.db.reader.connect() as conn:
            result = await conn.execute(
                select(func.min(message_tag.c.tag), func.count())
                .group_by(message_tag.c.tag_key)
                .order_by(message_tag.c.tag_key)
            )
            return {str(name): int(count) for name, count in result}

    async def set(self, ids: Sequence[str], tags: Sequence[str]) -> list[str]:
        """Give each message of `ids` exactly `tags` (none: no tags); return the ids of the
        messages there are."""
        async with self.db.writer.begin() as conn:
            result = await conn.execute(select(message.c.id).where(message.c.id.in_(list(ids))))
            found = [str(i) for i in result.scalars()]
            if not found:
                return []
            await conn.execute(delete(message_tag).where(message_tag.c.message_id.in_(found)))
            rows = [row for message_id in found for row in tag_rows(message_id, tags)]
            if rows:
                await conn.execute(insert(message_tag), rows)
            await self.db.notify(conn, "status", found)
        return found

    async def rename(self, old: str, new: str) -> list[str] | None:
        """Call the tag `old` `new` on every message (one that has both keeps one); return
        the messages changed, None when no message has `old`."""
        old_key, new_key = tagging.key(old), tagging.key(new)
        async with self.db.writer.begin() as conn:
            having = await self._having(conn, old_key)
            if not having:
                return None
            if new_key != old_key:
                both = await self._having(conn, new_key)  # spelled anew too
                having += both
                await conn.execute(
                    delete(message_tag).where(
                        message_tag.c.tag_key == old_key, message_tag.c.message_id.in_(both)
                    )
                )
            await conn.execute(
                update(message_tag)
                .where(message_tag.c.tag_key.in_([old_key, new_key]))
                .values(tag=new, tag_key=new_key)
            )
            await self.db.notify(conn, "status", having)
        return sorted(set(having))

    async def delete(self, name: str) -> list[str] | None:
        """Take the tag `name` off every message; return the messages changed, None when
        no message has it."""
        async with self.db.writer.begin() as conn:
            where = [message_tag.c.tag_key == tagging.key(name)]
            found = await delete_returning(conn, message_tag, where, message_tag.c.message_id)
            gone = [str(i) for i in found]
            await self.db.notify(conn, "status", gone)
        return gone or None

    @staticmethod
    async def _having(conn: AsyncConnection, tag_key: str) -> list[str]:
        result = await conn.execute(
            select(message_tag.c.message_id).where(message_tag.c.tag_key == tag_key)
        )
        return [str(i) for i in result.scalars()]
