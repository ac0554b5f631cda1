"""In-process change notifications: the store publishes after commit, others subscribe.

The delivery worker wakes on them (no polling delay) and the web pushes them to browsers.
A subscriber that falls behind loses old events, never blocks the publisher.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass

QUEUE_LIMIT = 1000


@dataclass(frozen=True)
class Event:
    """Something changed: `kind` is "message" (stored), "status", "deleted", "due"
    (recipients to send now; follows their "status") or "wake" (look at the queue)."""

    kind: str
    message_id: str
    due: bool = True
    """False when the change cannot have made a delivery due (a message only captured)."""
    mailbox: str | None = None
    """The message's mailbox when the publisher knows it: always on "deleted" (None there:
    in no mailbox), on "message" when stored here, on the "status" of a message a POP3
    session took out of its mailbox (the one it left); None elsewhere (ask the store)."""


CLOSED = Event("closed", "")
"""The last event a subscriber receives: the hub is closing (the process is stopping)."""


class Events:
    """A broadcast hub of `Event`s for the tasks of one event loop."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Event]] = set()
        self.closed = False

    def publish(self, event: Event) -> None:
        """Hand `event` to every subscriber, dropping the oldest of a full queue."""
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    def announce(self, message_ids: Collection[str], due: bool = False) -> None:
        """After a commit: these messages changed ("status"), and with `due` they have
        recipients to send now ("due", which wakes workers)."""
        for message_id in sorted(set(message_ids)):
            self.publish(Event("status", message_id))
            if due:
                self.publish(Event("due", message_id))

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open now."""
        return len(self._queues)

    def close(self) -> None:
        """Send CLOSED to every subscriber (and to later ones at once): stop listening."""
        self.closed = True
        self.publish(CLOSED)

    @asynccontextmanager
    async def subscribe(self, limit: int = QUEUE_LIMIT) -> AsyncIterator[asyncio.Queue[Event]]:
        """A queue that receives every event published while the context is open (at most
        `limit` waiting, the oldest dropped beyond; 0: no limit)."""
        queue: asyncio.Queue[Event] = asyncio.Queue(limit)
        if self.closed:
            queue.put_nowait(CLOSED)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)
