"""PostgreSQL LISTEN: hear what other relay processes committed, as events of this one.

Writers NOTIFY inside the transaction that makes a change (relay.store.database), so the
notification goes out when, and only if, it commits. Each process keeps one connection of
its own (outside the pool) that LISTENs, and publishes what it hears in its Events hub: the
delivery worker wakes within milliseconds and the web UI's live stream shows mail that
another process accepted. A process skips its own notifications (it already published
them itself).

The connection is watched: when it is lost (a database restart, a terminated backend, a
dead network found by a periodic ping) it is opened again, with backoff. Notifications sent
meanwhile are lost; the hub then gets a "wake" event so that the worker looks at the queue
at once, and the worker's slow fallback poll covers whatever else is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from relay.store.events import Event, Events

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "relay_events"
TAG = "relay:"
PAYLOAD_LIMIT = 7900
"""PostgreSQL refuses payloads of 8000 bytes or more; longer lists are split."""
WAKE = Event("wake", "")
"""Published after (re)connecting: notifications may have been missed, look again."""
MIN_BACKOFF = 0.1
MAX_BACKOFF = 5.0
PING_INTERVAL = 10.0
"""Seconds between checks that the LISTEN connection is still alive."""


def payloads(origin: str, kind: str, ids: Collection[str]) -> list[str]:
    """NOTIFY payloads "relay:ORIGIN KIND ID,ID,..." for `ids`, each under PAYLOAD_LIMIT
    bytes."""
    head = f"{TAG}{origin} {kind} "
    out: list[str] = []
    batch: list[str] = []
    size = len(head)
    for message_id in ids:
        if batch and size + len(message_id) + 1 > PAYLOAD_LIMIT:
            out.append(head + ",".join(batch))
            batch, size = [], len(head)
        batch.append(message_id)
        size += len(message_id) + 1
    if batch:
        out.append(head + ",".join(batch))
    return out


def parse(payload: str) -> tuple[str, str, list[str]] | None:
    """(origin, kind, ids) of a payload made by `payloads`; None when it is not one."""
    if not payload.startswith(TAG):
        return None
    parts = payload.removeprefix(TAG).split(" ")
    if len(parts) != 3 or not all(parts[:2]):
        return None
    origin, kind, ids = parts
    return origin, kind, [i for i in ids.split(",") if i]


def with_mailboxes(boxes: Mapping[str, str | None]) -> list[str]:
    """The ids of a payload, each with its message's mailbox: "ID/MAILBOX" (the name
    quoted: no "," or " " in it), or "ID" for a message in no mailbox."""
    return [i if box is None else f"{i}/{quote(box, safe='@')}" for i, box in boxes.items()]


def event_of(kind: str, item: str) -> Event:
    """The event of one id of a payload, with the mailbox it carries (see
    `with_mailboxes`; message ids never hold a "/")."""
    message_id, slash, box = item.partition("/")
    return Event(kind, message_id, mailbox=unquote(box) if slash else None)


class Feed:
    """A background task feeding other processes' changes to `events`: `start` returns once
    it is connected (or after a while, still trying), `stop` cancels it."""

    task_name = "store-feed"

    def __init__(self, origin: str, events: Events) -> None:
        self.origin = origin
        self.events = events
        self.connected = asyncio.Event()
        self.heard = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self, within: float = 10.0) -> None:
        """Start the task; return once it is connected (or after `within` s, still trying
        in the background)."""
        self._task = asyncio.create_task(self._run(), name=self.task_name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), within)

    async def stop(self) -> None:
        """Stop the task (and with it its connection)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        raise NotImplementedError


class Notices(Feed):
    """One LISTEN connection, kept open, feeding other processes' changes to `events`."""

    task_name = "store-notices"

    def __init__(self, params: Mapping[str, Any], origin: str, events: Events) -> None:
        super().__init__(origin, events)
        self.params = dict(params)
        self.server_pid: int | None = None
        """The backend process of the LISTEN connection (tests terminate it)."""

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        parsed = parse(payload)
        if parsed is None:
            log.warning("ignored a notification that is not relay's: %r", payload[:80])
            return
        origin, kind, ids = parsed
        if origin == self.origin:
            return
        self.heard += 1
        for item in ids:
            self.events.publish(event_of(kind, item))

    async def _run(self) -> None:
        import asyncpg  # PostgreSQL's alone: SQLite and MySQL (and `relay stats`) skip it

        delay = MIN_BACKOFF
        failures = 0
        while True:
            try:
                conn: asyncpg.Connection = await asyncpg.connect(**self.params, timeout=10)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                if failures == 0:
                    log.warning("cannot LISTEN for other processes' changes: %s; retrying", exc)
                failures += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            try:
                await self._serve(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("lost the LISTEN connection (%s); reconnecting", exc)
            else:
                log.warning("lost the LISTEN connection; reconnecting")
            finally:
                self.connected.clear()
                self.server_pid = None
                if not conn.is_closed():
                    conn.terminate()
            delay, failures = MIN_BACKOFF, 0

    async def _serve(self, conn: asyncpg.Connection) -> None:
        """LISTEN on `conn` until it is lost."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(CHANNEL, self._on_notify)
        self.server_pid = conn.get_server_pid()
        self.connected.set()
        log.debug("listening for other processes' changes (backend %d)", self.server_pid)
        self.events.publish(WAKE)
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PING_INTERVAL)
            if not lost.is_set():
                await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_INTERVAL)
