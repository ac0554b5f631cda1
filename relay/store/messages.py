"""Messages: store one with its raw bytes and recipients in one transaction; read them back."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    func,
    literal_column,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from relay.config import DEFAULT_MAILBOX
from relay.query import Field
from relay.status import message_status
from relay.store.accepted import NewMessage, insert_rows, message_rows
from relay.store.chunks import completed
from relay.store.counts import (
    Counts,
    RecipientStats,
    count_messages,
    count_recipients,
    unread_count,
)
from relay.store.database import Database
from relay.store.memo import Memo
from relay.store.notices import with_mailboxes
from relay.store.rawzip import IN_THREAD, Damaged, head, head_span, unpack
from relay.store.returning import delete_returning_sync, update_returning
from relay.store.schema import message, message_raw, recipient
from relay.store.search import Filter, ids_matching, where
from relay.store.tags import tags_of

Gone = dict[str, str | None]
"""Deleted messages: each id with the mailbox it was in (None: in none), in order."""


async def delete_where(
    db: Database, conn: AsyncConnection, where: Sequence[ColumnElement[bool]]
) -> Gone:
    """In `conn`'s transaction, delete the messages meeting `where` (with everything that
    belongs to them) and tell other processes at commit, with each one's mailbox (the web
    shows a narrowed user only the deletions of their mailbox)."""
    columns = [message.c.id, message.c.mailbox]
    rows = await conn.run_sync(delete_returning_sync, message, where, columns)
    gone: Gone = {str(i): None if box is None else str(box) for i, box in rows}
    await db.notify(conn, "deleted", with_mailboxes(gone))
    return gone


def _unpacked(
    stored: dict[str, bytes], firsts: dict[str, bytes], meta: dict[str, tuple[int, int]]
) -> dict[str, bytes]:
    """The bytes as received of stored messages (id → stored bytes, put together from
    their first chunks `firsts` on MySQL; `meta`: id → encoding and size); a message whose
    chunks were deleted between the two reads is gone (left out), never cut short."""
    whole: dict[str, bytes] = {}
    for message_id, data in stored.items():
        encoding, size = meta[message_id]
        try:
            raw = unpack(data, encoding)
        except Damaged:
            continue
        if len(raw) == size or data is firsts[message_id]:
            whole[message_id] = raw
    return whole


@dataclass(frozen=True)
class RecipientRow:
    """One recipient of a stored message, as the store keeps it."""

    id: int
    address: str
    route: str
    status: str
    attempts: int
    next_attempt_at: float | None
    last_code: int | None
    last_enhanced: str | None
    last_text: str | None


def recipient_columns() -> list[ColumnElement[Any]]:
    """The recipient's columns a RecipientRow holds, in its order: every read of
    recipients (a message's, the timeline's, the queue view's) selects these."""
    return [recipient.c[f.name] for f in dataclasses.fields(RecipientRow)]


@dataclass(frozen=True)
class MessageRow:
    """A stored message's summary row, with its recipients and derived status."""

    id: str
    received_at: float
    mail_from: str
    size: int
    subject: str
    from_header: str
    to_header: str
    cc_header: str
    message_id_header: str
    attachments: int
    snippet: str
    listener: str
    peer: str
    helo: str
    auth_user: str | None
    tls: bool
    read: bool
    mailbox: str | None
    """Its mailbox; None once taken out of it over POP3 while still queued."""
    recipients: list[RecipientRow]
    tags: tuple[str, ...] = ()
    """Its tags, in order of their keys (case-insensitive)."""

    @property
    def status(self) -> str:
        """The message's status, derived from its recipients'."""
        return message_status(r.status for r in self.recipients)


@dataclass(frozen=True)
class Page:
    """One page of the message list, newest first."""

    messages: list[MessageRow]
    total: int
    offset: int
    limit: int
    more: bool = False
    """True when `total` is a lower bound: counting stopped at COUNT_LIMIT."""


COUNT_LIMIT = 1000
"""A filtered list counts its matches up to this many, then says "1000+"."""

USERS_SHOWN = 100
"""Authenticated users the navigation offers as filters, at most."""

SCAN_PARTS = max(1, min(os.cpu_count() or 1, 4))
"""SQLite: an exact count that reads every message's text is split into this many ranges
of messages counted at once, each on a reader connection of its own (each runs in a thread
of its own, outside the GIL): one core per part."""
message_rowid: ColumnElement[int] = literal_column("message.rowid", Integer)

HEAD_BYTES = 16 * 1024
"""Bytes of a raw message read when only its headers are wanted."""

_SUMMARY_COLUMNS = [c for c in message.c]


class Messages:
    """Stored messages: the write of an accepted message and the reads of the UI."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._counts = Memo(db, self._count_now)
        self._users = Memo(db, self._users_now)
        self._mailboxes = Memo(db, self._mailboxes_now)

    async def add(self, new: NewMessage, compress: bool = True) -> None:
        """Store the message, its raw bytes and its deduplicated recipients; commit.

        Returns only after the commit: the caller may then answer 250. The SMTP path goes
        through `Store.add_message`, which groups concurrent messages into one commit.
        `compress=False` writes the raw bytes and search text as a relay before revision
        0011 did (and on MySQL before 0012): as they are, naming no `encoding` column
        (what tests of the migrations write).
        """
        rows = message_rows(new, self.db.dialect if compress else "")
        if rows.message["mailbox"] == DEFAULT_MAILBOX:
            # The column's server default says the same: left out, the insert also fits a
            # schema from before revision 0008 (what tests of the migrations write).
            del rows.message["mailbox"]
        if not compress:
            rows = dataclasses.replace(rows, raw={"message_id": new.id, "data": new.raw})
            if self.db.is_mysql:  # UTF-8 bytes, as the schema's binary column takes them
                rows.text["text"] = rows.text["text"].encode()
        async with self.db.writer.begin() as conn:
            await conn.run_sync(insert_rows, [rows])
            await self.db.notify(conn, "message", [new.id])

    async def _recipients(self, conn: Any, ids: list[str]) -> dict[str, list[RecipientRow]]:
        by_message: dict[str, list[RecipientRow]] = {i: [] for i in ids}
        if not ids:
            return by_message
        result = await conn.execute(
            select(recipient.c.message_id, *recipient_columns())
            .where(recipient.c.message_id.in_(ids))
            .order_by(recipient.c.id)
        )
        for row in result:
            by_message[row.message_id].append(RecipientRow(*row[1:]))
        return by_message

    async def page(
        self,
        offset: int = 0,
        limit: int = 50,
        filter_: Filter | None = None,
        after: str | None = None,
        only: list[str] | None = None,
        total: int | None = None,
    ) -> Page:
        """Messages matching `filter_` newest first, `limit` of them from `offset`, with the
        total count; with `after` only those newer than that id, with `only` only those ids
        (both for live updates). A known `total` (from `counts`) saves counting."""
        clauses = where(filter_ or Filter())
        listed = list(clauses)
        if after:
            listed.append(message.c.id > after)
        if only is not None:
            listed.append(message.c.id.in_(only))
        async with self.db.reader.connect() as conn:
            result = await conn.execute(
                select(*_SUMMARY_COLUMNS)
                .where(*listed)
                .order_by(message.c.id.desc())
                .offset(offset)
                .limit(limit)
            )
            rows = result.all()
            recipients = await self._recipients(conn, [r.id for r in rows])
            tags = await tags_of(conn, [r.id for r in rows])
            if total is None and (offset == 0 or rows) and len(rows) < limit:
                total = offset + len(rows)  # the last page: nothing left to count
            more = False
            if total is None:
                total, more = await self._count(conn, clauses)
        return Page(
            messages=[
                MessageRow(**r._asdict(), recipients=recipients[r.id], tags=tags.get(r.id, ()))
                for r in rows
            ],
            total=total,
            offset=offset,
            limit=limit,
            more=more,
        )

    @staticmethod
    async def _count(conn: Any, clauses: list[Any]) -> tuple[int, bool]:
        """How many messages match (exact without filters, else stopping at COUNT_LIMIT)."""
        if not clauses:
            return (
                await conn.execute(select(func.count()).select_from(message))
            ).scalar_one(), False
        matching = select(message.c.id).where(*clauses).limit(COUNT_LIMIT + 1).subquery()
        found = (await conn.execute(select(func.count()).select_from(matching))).scalar_one()
        return min(found, COUNT_LIMIT), found > COUNT_LIMIT

    async def count_matching(self, filter_: Filter) -> tuple[int, int]:
        """How many messages `filter_` matches, and how many of those are unread, exactly
        (no cap): one pass over the matches, which for a common word is a scan of every
        message's text; on SQLite such a scan is split in `SCAN_PARTS` run side by side."""
        clauses = where(filter_)
        reads_text = any(t.field is Field.TEXT for t in filter_.query.terms)
        if not (self.db.is_sqlite and reads_text and SCAN_PARTS > 1):
            return await self._count_range(clauses)
        async with self.db.reader.connect() as conn:
            top = int(
                (await conn.execute(select(func.max(message_rowid)).select_from(message))).scalar()
                or 0
            )
        cuts = [top * part // SCAN_PARTS for part in range(SCAN_PARTS + 1)]
        ranges = [[message_rowid > low, message_rowid <= high] for low, high in pairwise(cuts)]
        ranges[-1].pop()  # the last range is open: mail that came since counts too
        counted = await asyncio.gather(*(self._count_range([*clauses, *r]) for r in ranges))
        return sum(m for m, _ in counted), sum(u for _, u in counted)

    async def _count_range(self, clauses: list[Any]) -> tuple[int, int]:
        async with self.db.reader.connect() as conn:
            query = select(func.count(), unread_count()).select_from(message).where(*clauses)
            matching, unread_matching = (await conn.execute(query)).one()
            return int(matching), int(unread_matching)

    async def heads(self, ids: list[str], limit: int = HEAD_BYTES) -> dict[str, bytes]:
        """The first `limit` bytes of each message's raw form (its headers, in practice),
        decompressed from the beginning of what is stored (relay.store.rawzip.head)."""
        if not ids:
            return {}
        found: dict[str, bytes] = {}
        wanted, span = list(ids), head_span(limit)
        async with self.db.reader.connect() as conn:
            while wanted:  # more of the stored bytes for heads their prefix did not hold
                prefix = func.substr(message_raw.c.data, 1, span)
                result = await conn.execute(
                    select(message_raw.c.message_id, prefix, message_raw.c.encoding).where(
                        message_raw.c.message_id.in_(wanted)
                    )
                )
                wanted = []
                for message_id, data, encoding in result:
                    got = head(bytes(data), encoding, limit, span)
                    if got is None:
                        wanted.append(str(message_id))
                    else:
                        found[str(message_id)] = got
                span *= 4
        return found

    async def counts(self) -> Counts:
        """Messages in all, unread, and per derived status, for the navigation (counted
        again only after the database changed: relay.store.memo)."""
        return await self._counts.get()

    async def counts_in(self, mailbox: str) -> Counts:
        """`counts` of one mailbox (not memoized: a scoped user's navigation)."""
        async with self.db.reader.connect() as conn:
            return await count_messages(conn, mailbox)

    async def _count_now(self) -> Counts:
        async with self.db.reader.connect() as conn:
            return await count_messages(conn)

    async def recipient_stats(self) -> RecipientStats:
        """Recipients per status and the arrival of the oldest deferred one's message."""
        async with self.db.reader.connect() as conn:
            return await count_recipients(conn)

    async def users(self) -> list[str]:
        """Authenticated users that sent stored mail, in name order (the first
        USERS_SHOWN; looked up again only after the database changed)."""
        return await self._users.get()

    async def _users_now(self) -> list[str]:
        return await self._names_in(message.c.auth_user)

    async def mailboxes(self) -> list[str]:
        """The mailboxes that hold mail, in name order (the first USERS_SHOWN; looked up
        again only after the database changed)."""
        return await self._mailboxes.get()

    async def _mailboxes_now(self) -> list[str]:
        return await self._names_in(message.c.mailbox)

    async def _names_in(self, column: Any, limit: int = USERS_SHOWN) -> list[str]:
        """The distinct non-null values of a message column, in order (the first `limit`)."""
        async with self.db.reader.connect() as conn:
            result = await conn.execute(
                select(column)
                .where(column.is_not(None))
                .group_by(column)
                .order_by(column)
                .limit(limit)
            )
            return [str(r) for r in result.scalars()]

    async def get(self, message_id: str) -> MessageRow | None:
        """One message's summary row with its recipients, or None."""
        async with self.db.reader.connect() as conn:
            row = (
                await conn.execute(select(*_SUMMARY_COLUMNS).where(message.c.id == message_id))
            ).first()
            if row is None:
                return None
            recipients = await self._recipients(conn, [message_id])
            tags = await tags_of(conn, [message_id])
        return MessageRow(
            **row._asdict(), recipients=recipients[message_id], tags=tags.get(message_id, ())
        )

    async def raw(self, message_id: str) -> bytes | None:
        """The raw bytes of a message exactly as stored, or None."""
        return (await self.raws([message_id], None)).get(message_id)

    async def raws(self, message_ids: Sequence[str], max_size: int | None) -> dict[str, bytes]:
        """The raw bytes of the messages of `message_ids` no larger than `max_size` (None:
        any size), in one query (on MySQL, one more for the chunks of those over a chunk:
        relay.store.chunks), decompressed (relay.store.rawzip; in a thread when there is
        much); messages gone or larger are left out."""
        if not message_ids:
            return {}
        query = (
            select(
                message_raw.c.message_id, message_raw.c.data, message_raw.c.encoding, message.c.size
            )
            .join(message, message.c.id == message_raw.c.message_id)
            .where(message_raw.c.message_id.in_(list(message_ids)))
        )
        if max_size is not None:
            query = query.where(message.c.size <= max_size)
        async with self.db.reader.connect() as conn:
            meta: dict[str, tuple[int, int]] = {}
            firsts: dict[str, bytes] = {}
            for message_id, data, encoding, size in await conn.execute(query):
                firsts[str(message_id)] = bytes(data)
                meta[str(message_id)] = (encoding, size)
            whole = await conn.run_sync(completed, firsts)
        if sum(map(len, whole.values())) > IN_THREAD:
            return await asyncio.to_thread(_unpacked, whole, firsts, meta)
        return _unpacked(whole, firsts, meta)

    async def mark_read(self, message_id: str, read: bool = True) -> None:
        """Mark a message read (or unread)."""
        await self.set_read([message_id], read)

    async def set_read(self, ids: list[str], read: bool) -> list[str]:
        """Mark messages read or unread; return the ids whose marker changed."""
        if not ids:
            return []
        async with self.db.writer.begin() as conn:
            where = [message.c.id.in_(ids), message.c.read.is_not(read)]
            found = await update_returning(conn, message, where, {"read": read}, message.c.id)
            changed = [str(r) for r in found]
            await self.db.notify(conn, "status", changed)
        return changed

    async def set_read_matching(self, filter_: Filter, read: bool) -> list[str]:
        """Mark every message `filter_` matches read or unread; return the ids that changed."""
        async with self.db.writer.begin() as conn:
            where = [ids_matching(filter_), message.c.read.is_not(read)]
            found = await update_returning(conn, message, where, {"read": read}, message.c.id)
            changed = [str(r) for r in found]
            await self.db.notify(conn, "status", changed)
        return changed

    async def delete(self, ids: list[str]) -> int:
        """Delete messages with everything that belongs to them; return how many went."""
        return len(await self.delete_returning(ids))

    async def delete_returning(self, ids: list[str]) -> Gone:
        """Delete messages with everything that belongs to them; return those that went."""
        if not ids:
            return {}
        async with self.db.writer.begin() as conn:
            return await delete_where(self.db, conn, [message.c.id.in_(ids)])

    async def delete_matching(self, filter_: Filter) -> Gone:
        """Delete every message that `filter_` matches; return those that went."""
        async with self.db.writer.begin() as conn:
            return await delete_where(self.db, conn, [ids_matching(filter_)])
