"""The search indexer (SQLite): fills the trigram index of free-text search while ingest is
idle, so that indexing never delays a 250.

Tokenizing 5 KB of text into trigrams costs about as much CPU as the rest of storing a
message, so the group commit does not do it. This task does, after the group commit has
been quiet for `IDLE` seconds: it indexes the rows of `message_text` past the watermark
(`message_fts_state.indexed_to`, the highest rowid in the index) and takes deleted rows
out of the index (`message_fts_gone`, filled by a trigger), a few at a time in short
write transactions (`BUDGET` seconds of work each), until it has caught up; then it
sleeps until the group commit says it committed, or `POLL` seconds pass (rows another
process wrote, or a backlog after an upgrade). Search looks up indexed rows in the index
and scans the others, so results never depend on how far the indexer has got.

The watermark lives in the database and moves in the transaction that indexes, under
SQLite's write lock: a restart carries on where it stopped, and several processes on one
file cannot index a row twice. PostgreSQL keeps its trigram index itself (revision 0004).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from relay.store.batch import GroupCommit
from relay.store.database import Database
from relay.store.rawzip import TEXT_SQL

log = logging.getLogger(__name__)

IDLE = 0.15
"""Seconds without a group commit before the indexer takes the write lock."""
BUDGET = 0.01
"""Seconds of indexing per write transaction (at least one row): bounds how long a message
that arrives meanwhile waits for the lock."""
BATCH = 64
"""Most rows read per write transaction."""
POLL = 5.0
"""Seconds between looks for work when nothing in this process wakes the indexer."""

_PENDING = text(
    "SELECT (SELECT coalesce(max(rowid), 0) FROM message_text)"
    " > (SELECT indexed_to FROM message_fts_state)"
    " OR EXISTS (SELECT 1 FROM message_fts_gone)"
)
# The texts as text: compressed ones are BLOBs (relay.store.rawzip), and FTS5 is given
# exactly the text it indexed when it takes a row out.
_GONE = f"SELECT rowid, {TEXT_SQL}(text) FROM message_fts_gone ORDER BY rowid LIMIT ?"
_UNINDEX = "INSERT INTO message_fts (message_fts, rowid, text) VALUES ('delete', ?, ?)"
_FORGET = "DELETE FROM message_fts_gone WHERE rowid = ?"
_WATERMARK = "SELECT indexed_to FROM message_fts_state"
_NEW = f"SELECT rowid, {TEXT_SQL}(text) FROM message_text WHERE rowid > ? ORDER BY rowid LIMIT ?"
_INDEX = "INSERT INTO message_fts (rowid, text) VALUES (?, ?)"
_ADVANCE = "UPDATE message_fts_state SET indexed_to = ?"


@dataclass(frozen=True)
class Step:
    """What one write transaction did: rows indexed, rows taken out, and whether it
    stopped before running out of work."""

    indexed: int = 0
    removed: int = 0
    more: bool = False


def index_step(conn: Connection, budget: float = BUDGET, batch: int = BATCH) -> Step:
    """One write transaction on `conn` (BEGIN IMMEDIATE): take deleted rows out of the
    index first, then index rows past the watermark and move it, for about `budget`
    seconds. Rows are taken out first so that a rowid SQLite hands out again is never in
    the index twice."""
    deadline = time.monotonic() + budget
    with conn.begin():
        gone = conn.exec_driver_sql(_GONE, (batch,)).all()
        for done, (rowid, old) in enumerate(gone, 1):
            conn.exec_driver_sql(_UNINDEX, (rowid, old))
            conn.exec_driver_sql(_FORGET, (rowid,))
            if time.monotonic() > deadline and done < len(gone):
                return Step(removed=done, more=True)
        if len(gone) == batch:
            return Step(removed=len(gone), more=True)
        watermark = conn.exec_driver_sql(_WATERMARK).scalar_one()
        rows = conn.exec_driver_sql(_NEW, (watermark, batch)).all()
        indexed = 0
        for rowid, new in rows:
            conn.exec_driver_sql(_INDEX, (rowid, new))
            indexed += 1
            watermark = rowid
            if time.monotonic() > deadline:
                break
        if indexed:
            conn.exec_driver_sql(_ADVANCE, (watermark,))
        return Step(indexed, len(gone), more=indexed == len(rows) == batch or indexed < len(rows))


class Indexer:
    """The background task that keeps SQLite's search index up to date (see the module)."""

    def __init__(self, db: Database, committer: GroupCommit, idle: float = IDLE) -> None:
        assert db.commit_engine is not None, "the search indexer is for SQLite"
        self.db = db
        self.committer = committer
        self.idle = idle
        self._engine = db.commit_engine
        self._thread = ThreadPoolExecutor(1, "relay-indexer")
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.caught_up = asyncio.Event()
        """Set while the running indexer has found nothing left to index; cleared by
        each commit of new mail."""

    async def pending(self) -> bool:
        """Whether rows wait to be indexed or taken out of the index (one small read)."""
        async with self.db.reader.connect() as conn:
            return bool((await conn.execute(_PENDING)).scalar())

    def _step(self, budget: float, batch: int) -> Step:
        with self._engine.connect() as conn:
            return index_step(conn, budget, batch)

    async def step(self, budget: float = BUDGET, batch: int = BATCH) -> Step:
        """One short write transaction of indexing (`index_step`), in the indexer's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._step, budget, batch)

    async def catch_up(self) -> int:
        """Index everything now, busy or not (tests, benchmarks); return the rows indexed."""
        indexed = 0
        while await self.pending():
            indexed += (await self.step()).indexed
        return indexed

    async def _quiet(self) -> bool:
        """Wait until the group commit has been idle for `idle` seconds; False on stop."""
        while not self._stop.is_set():
            wait = self.idle - self.committer.idle_for()
            if wait <= 0:
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
        return False

    async def _catch_up_quietly(self) -> bool:
        """Index while ingest is quiet until done or stopped; whether anything was done."""
        progressed = False
        while await self._quiet():
            done = await self.step()
            progressed = progressed or bool(done.indexed or done.removed)
            if not done.more:
                break
        return progressed

    def _committed(self) -> None:
        self.caught_up.clear()
        self._wake.set()

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if await self.pending():
                    if await self._catch_up_quietly():
                        continue  # look again: rows may have come while indexing
                elif not self._wake.is_set():
                    self.caught_up.set()
            except Exception:
                log.exception("search indexer failed; trying again in %.0fs", POLL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken(), POLL)

    async def _woken(self) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        wake = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((stop, wake), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            wake.cancel()

    def start(self) -> None:
        """Start indexing in the background."""
        if self._task is None:
            self._stop.clear()
            self.committer.on_commit.append(self._committed)
            self._task = asyncio.create_task(self._run(), name="search-indexer")

    async def stop(self) -> None:
        """Stop, letting a write transaction in progress finish."""
        if self._task is not None:
            self._stop.set()
            await self._task
            self._task = None
            self.committer.on_commit.remove(self._committed)
        self._thread.shutdown(wait=False)
