"""Mailboxes as POP3 reads them: a mailbox's messages (id and size, oldest first), their
raw bytes, the removal of those a session deleted, and the one-session-per-mailbox lock.

A mailbox is the `message.mailbox` column. `None` as a mailbox name stands for every
message that is in some mailbox (the one shared mailbox of [mailboxes] mode = "shared").

Removal happens in one transaction at the end of a session (POP3's UPDATE state). A
message some of whose recipients still wait for delivery (queued, deferred, sending,
held) is not deleted from under the relay: it leaves its mailbox only (`mailbox` set to
NULL), its recipients keep their state, and retention prunes it once delivery is done.

The lock: in one process a set of the mailboxes in use. On PostgreSQL (and MySQL), where
several relay processes may serve POP3 on one database, each session also holds a
session-level advisory lock (`pg_try_advisory_lock`; MySQL: `GET_LOCK`) on a connection
of its own for as long as it lasts, opened outside the pool that ingest and delivery
share (so that many POP3 sessions never starve them); the lock goes with the connection
when a process dies.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from relay.status import Status
from relay.store.database import Database
from relay.store.messages import Gone, Messages, delete_where
from relay.store.notices import with_mailboxes
from relay.store.returning import update_returning
from relay.store.schema import message, recipient

log = logging.getLogger(__name__)

WAITING = (Status.QUEUED, Status.DEFERRED, Status.SENDING, Status.HELD)
"""Recipient states that keep a message POP3 deleted: delivery is not done with it."""
SHARED_LOCK = "*"
"""The lock name of the one shared mailbox."""


@dataclass(frozen=True)
class Entry:
    """One message of a mailbox as POP3 lists it: its id (the UIDL) and size in octets."""

    id: str
    size: int


@dataclass(frozen=True)
class Removed:
    """What a session's deletions did: messages deleted, and those only taken out of
    their mailbox because recipients still wait for delivery."""

    deleted: Gone
    unlisted: list[str]


def _in_mailbox(name: str | None) -> ColumnElement[bool]:
    if name is None:
        return message.c.mailbox.is_not(None)
    return message.c.mailbox == name


def lock_key(name: str) -> int:
    """The PostgreSQL advisory lock number of mailbox `name` (a signed 64-bit integer)."""
    return zlib.crc32(f"relay-pop3:{name}".encode()) - 2**31


class InUse(Exception):
    """The mailbox is in use by another session."""


class Mailboxes:
    """The POP3 side of the store."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.messages = Messages(db)
        self._in_use: set[str] = set()
        self._lock_engine: AsyncEngine | None = None

    async def entries(self, name: str | None) -> list[Entry]:
        """The messages of mailbox `name` (None: every message in some mailbox), oldest
        first: the order POP3 numbers them in for a session."""
        async with self.db.reader.connect() as conn:
            result = await conn.execute(
                select(message.c.id, message.c.size).where(_in_mailbox(name)).order_by(message.c.id)
            )
            return [Entry(str(row.id), int(row.size)) for row in result]

    async def within(self, name: str, ids: list[str]) -> list[str]:
        """Those of `ids` that are messages of mailbox `name` (the web's scoped users)."""
        if not ids:
            return []
        async with self.db.reader.connect() as conn:
            result = await conn.execute(
                select(message.c.id).where(message.c.id.in_(ids), message.c.mailbox == name)
            )
            found = {str(r) for r in result.scalars()}
        return [i for i in ids if i in found]

    async def raw(self, message_id: str) -> bytes | None:
        """The raw bytes of a message exactly as stored, or None when it is gone."""
        return await self.messages.raw(message_id)  # on MySQL, from its chunks

    async def remove(self, name: str | None, ids: list[str]) -> Removed:
        """In one transaction: delete the messages of `ids` still in mailbox `name`, but
        only take out of it (mailbox NULL) those with recipients waiting for delivery."""
        if not ids:
            return Removed({}, [])
        waiting = exists().where(
            recipient.c.message_id == message.c.id,
            recipient.c.status.in_([s.value for s in WAITING]),
        )
        mine = [message.c.id.in_(ids), _in_mailbox(name)]
        async with self.db.writer.begin() as conn:
            where = [*mine, waiting]
            found = await update_returning(conn, message, where, {"mailbox": None}, message.c.id)
            unlisted = [str(r) for r in found]
            deleted = await delete_where(self.db, conn, [*mine, ~waiting])
            # The mailbox they left: its narrowed users' pages drop them (web/live.py).
            await self.db.notify(conn, "status", with_mailboxes(dict.fromkeys(unlisted, name)))
        return Removed(deleted, unlisted)

    @contextlib.asynccontextmanager
    async def lock(self, name: str) -> AsyncIterator[None]:
        """Hold mailbox `name` for one session; raises InUse when another holds it."""
        if name in self._in_use:
            raise InUse(name)
        self._in_use.add(name)
        try:
            if self.db.is_sqlite:
                yield
                return
            if self._lock_engine is None:
                self._lock_engine = create_async_engine(self.db.url, poolclass=NullPool)
            async with self._lock_engine.connect() as conn:
                await self._advisory(conn, name)
                try:
                    yield
                finally:
                    with contextlib.suppress(Exception):
                        await conn.execute(self._unlock(name))
                        await conn.commit()
        finally:
            self._in_use.discard(name)

    async def close(self) -> None:
        """Close the lock connections' engine (PostgreSQL)."""
        if self._lock_engine is not None:
            await self._lock_engine.dispose()
            self._lock_engine = None

    def _unlock(self, name: str) -> Any:
        if self.db.is_mysql:
            return select(func.release_lock(mysql_lock_name(name)))
        return select(func.pg_advisory_unlock(lock_key(name)))

    async def _advisory(self, conn: AsyncConnection, name: str) -> None:
        """PostgreSQL's advisory lock, or MySQL's named lock (GET_LOCK without waiting)."""
        if self.db.is_mysql:
            query = select(func.get_lock(mysql_lock_name(name), 0))
        else:
            query = select(func.pg_try_advisory_lock(lock_key(name)))
        got = (await conn.execute(query)).scalar()
        await conn.commit()
        if not got:
            raise InUse(name)


def mysql_lock_name(name: str) -> Any:
    """MySQL's lock name for mailbox `name` of this database (named locks are the server's:
    the database's own part keeps two relays on one server apart); under 64 characters."""
    return func.concat(
        "relay-pop3:", func.left(func.sha1(func.database()), 16), f":{lock_key(name)}"
    )
