"""MySQL and MariaDB: hear what other relay processes committed, without LISTEN/NOTIFY.

Writers add a row to `change_log` inside the transaction that makes a change (the same
payloads as PostgreSQL's NOTIFY, relay.store.notices), so the row is there when, and only
if, it commits. Each process polls the table every `[storage] change_poll` seconds for
rows past the last it saw (one indexed range read of a small table; nothing when nothing
changed) and publishes them in its Events hub, as Notices does on PostgreSQL: a worker
wakes for mail another process accepted within one interval.

Auto-increment ids are handed out at insert but become visible at commit, so a row may
appear after one with a higher id. An id skipped over is remembered for `LATE` seconds and
asked for again at each poll (a rolled-back insert leaves a gap that never fills). Rows are
deleted after `KEEP` seconds by whichever process polls. When the database cannot be
reached the feed tries again, and publishes a "wake" once it can: changes may have been
missed, and the worker looks at the queue (its slow fallback poll covers the rest).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.store.events import Events
from relay.store.notices import WAKE, Feed, event_of, parse
from relay.store.schema import change_log

log = logging.getLogger(__name__)

LATE = 10.0
"""Seconds an id skipped over is looked for (a transaction that commits later than one
that started after it)."""
KEEP = 60.0
"""Seconds a change_log row is kept."""
PRUNE_EVERY = 10.0
"""Seconds between two deletions of old rows by one process."""
MAX_BACKOFF = 5.0


def record(conn: Connection, payloads: Iterable[str], known: bool = True) -> bool:
    """Add the payloads to change_log in `conn`'s transaction (they count once it commits);
    return whether there is a change_log. Unless `known` (it was there before), look
    first: a database before revision 0010 (tests of old schemas) has none."""
    if not (known or conn.dialect.has_table(conn, "change_log")):
        return False
    now = time.time()
    conn.execute(insert(change_log), [{"at": now, "payload": p} for p in payloads])
    return True


class ChangeFeed(Feed):
    """Polls change_log and publishes other processes' changes to `events` (see module)."""

    task_name = "store-changes"

    def __init__(self, engine: AsyncEngine, origin: str, events: Events, interval: float) -> None:
        super().__init__(origin, events)
        self.engine = engine
        self.interval = interval
        self.polls = 0
        self._last = 0
        self._missing: dict[int, float] = {}  # id skipped over → when to stop looking
        self._pruned = 0.0

    async def _run(self) -> None:
        delay = self.interval
        while True:
            try:
                if not self.connected.is_set():
                    async with self.engine.connect() as conn:
                        newest = await conn.scalar(select(func.max(change_log.c.id)))
                    self._last = max(self._last, int(newest or 0))
                    self.connected.set()
                    self.events.publish(WAKE)
                await self.poll()
                delay = self.interval
            except (DBAPIError, OSError) as exc:
                if self.connected.is_set():
                    log.warning("cannot read other processes' changes (%s); retrying", exc)
                self.connected.clear()
                delay = min(max(delay * 2, 0.1), MAX_BACKOFF)
            except Exception:
                log.exception("reading other processes' changes failed; retrying")
                self.connected.clear()
                delay = MAX_BACKOFF
            await asyncio.sleep(delay)

    async def poll(self) -> int:
        """Read the changes committed since the last poll and publish them; return how many
        rows were read."""
        self.polls += 1
        now = time.monotonic()
        self._missing = {i: until for i, until in self._missing.items() if until > now}
        wanted = change_log.c.id > self._last
        if self._missing:
            wanted = wanted | change_log.c.id.in_(list(self._missing))
        query = (
            select(change_log.c.id, change_log.c.payload).where(wanted).order_by(change_log.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
            if time.time() - self._pruned > PRUNE_EVERY:
                self._pruned = time.time()
                await conn.execute(delete(change_log).where(change_log.c.at < self._pruned - KEEP))
                await conn.commit()
        for row_id, payload in rows:
            self._missing.pop(row_id, None)
            for skipped in range(self._last + 1, row_id):
                self._missing[skipped] = now + LATE
            self._last = max(self._last, row_id)
            self._publish(payload)
        return len(rows)

    def _publish(self, payload: str) -> None:
        parsed = parse(payload)
        if parsed is None:
            return
        origin, kind, ids = parsed
        if origin == self.origin:
            return
        self.heard += 1
        for item in ids:
            self.events.publish(event_of(kind, item))
