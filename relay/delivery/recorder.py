"""Delivery results written in batches: one transaction for all that finished meanwhile.

Every delivery ends with a write (its attempts, its recipients' new status). Under load
many finish within the same few milliseconds; one transaction each would queue them up
behind the database's single write lock, where ingest's group commit waits too. Here the
results that arrive while a write is under way go together into the next one, the way
ingest's group commit batches messages. Each caller still returns only once its own
results are committed, or raises what the write raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from relay.store.destinations import Outcome
from relay.store.queue import Queue, Result

Waiting = tuple[Sequence[Result], Sequence[Outcome], float, asyncio.Future[None]]
"""One caller's results, its outcomes for the breakers, its time and its future."""


class Recorder:
    """Writes one worker's results, batching those that wait for the same write."""

    def __init__(self, queue: Queue, owner: str) -> None:
        self.queue = queue
        self.owner = owner
        self.batches = 0  # writes made so far, for tests
        self._waiting: list[Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(
        self, results: Sequence[Result], now: float, outcomes: Sequence[Outcome] = ()
    ) -> None:
        """Commit `results` and `outcomes` (as of `now`), with whatever else is waiting;
        return once they are. Cancelling the caller does not stop the write its results
        are part of."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((results, outcomes, now, done))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all(), name="delivery-results")
        await done

    async def drain(self) -> None:
        """Wait until every result handed over so far is written (or failed)."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write_all(self) -> None:
        batch: list[Waiting] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                results = [r for part, _, _, _ in batch for r in part]
                outcomes = [o for _, part, _, _ in batch for o in part]
                now = max(at for _, _, at, _ in batch)
                try:
                    await self.queue.finish(self.owner, results, now, outcomes)
                except Exception as exc:  # noqa: BLE001 - handed to every caller
                    _settle(batch, exc)
                else:
                    _settle(batch, None)
                finally:
                    self.batches += 1
        except asyncio.CancelledError:  # the loop is going away: nobody may wait forever
            _settle(batch + self._waiting, asyncio.CancelledError())
            self._waiting = []
            raise
        finally:
            self._writer = None


def _settle(batch: Sequence[Waiting], error: BaseException | None) -> None:
    for _, _, _, done in batch:
        if done.done():  # its caller was cancelled
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
            done.exception()  # retrieved: a cancelled caller will never look at it
