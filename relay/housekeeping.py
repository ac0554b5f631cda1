"""Housekeeping: the periodic retention task. Every `[storage] prune_interval` seconds it
deletes done-with mail beyond `max_messages` or older than `max_age` (relay.store.retention
says what may go, and runs the SQL), and suppression entries past their `[suppression] ttl`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from relay.config import StorageConfig
from relay.metrics import Metrics
from relay.store import Store

log = logging.getLogger(__name__)


class Retention:
    """A background task that prunes old mail while the relay runs."""

    def __init__(
        self, storage: StorageConfig, store: Store, metrics: Metrics, *, expiring: bool = False
    ) -> None:
        self.storage = storage
        self.expiring = expiring
        """Whether suppression entries expire (a `[suppression] ttl`): they are deleted too."""
        self.store = store
        self.metrics = metrics
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def run_once(self) -> int:
        """Prune now; return how many messages went."""
        if self.expiring:
            expired = await self.store.suppressions.prune(time.time())
            if expired:
                log.info("suppression: %d expired entries deleted", expired)
        if not self.storage.retention:
            return 0
        gone = await self.store.prune(
            self.storage.max_messages,
            self.storage.max_age_seconds,
            time.time(),
            stopping=self._stop.is_set,
        )
        if gone:
            self.metrics.pruned.inc(len(gone))
            log.info("retention: deleted %d old messages", len(gone))
        return len(gone)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception(
                    "retention run failed; trying again in %.0fs", self.storage.prune_interval
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.storage.prune_interval)

    def start(self) -> None:
        """Start pruning in the background, if retention or a suppression ttl is configured."""
        if (self.storage.retention or self.expiring) and self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        """Stop the task, letting a run in progress finish its transaction (a prune of a
        large backlog stops between two short transactions, not at its end)."""
        if self._task is None:
            return
        self._stop.set()
        await self._task
        self._task = None
