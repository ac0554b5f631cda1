"""Lanes: the sends of one destination, at most `max_connections` at once.

A claim may hand the worker many messages for one destination; they take turns here, in
the worker, rather than in the connection pool, so that each one looks at the
destination's breaker just before it goes: once the destination is paused, the messages
still waiting their turn go back to the queue to wait with the others (no attempt
counted) instead of each trying on its own. A destination's lane goes when nothing of
it is in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from relay.routing import Destination


class Lanes:
    """One semaphore per destination with mail in flight."""

    def __init__(self, width: Callable[[Destination], int]) -> None:
        self.width = width
        self._lanes: dict[Destination, asyncio.Semaphore] = {}

    @asynccontextmanager
    async def turn(self, destination: Destination) -> AsyncIterator[None]:
        """Wait for a turn to send to `destination`; hold it until the block ends."""
        lane = self._lanes.get(destination)
        if lane is None:
            lane = self._lanes[destination] = asyncio.Semaphore(self.width(destination))
        async with lane:
            yield

    def drop(self, destination: Destination) -> None:
        """Forget `destination`'s lane: nothing of it is in flight any more."""
        self._lanes.pop(destination, None)
