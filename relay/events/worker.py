"""The webhooks' sender: POSTs the outbox's events to their receivers, signed, retrying.

Each receiver has its own loop, so a slow or dead receiver never delays another's events.
A loop wakes when the store announces a committed change (this process's, or another's by
NOTIFY), and otherwise sleeps until its next retry falls due (at most `POLL` seconds).
Each look takes the receiver's due events from the store (relay.store.webhooks: the
oldest pending one of each message, leased), POSTs them at once through the receiver's
own `httpx.AsyncClient`, whose connections are kept and reused, and writes what came of
them in one transaction. A 2xx answer is success; any other answer, a timeout or a
refused connection is tried again after 1 s, 2 s, 4 s… (at most `BACKOFF_MAX` apart)
until the event is the webhook's `max_age` old, then given up. The result of each POST
is written before the next event of its message can go: events arrive in order per
message, at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import httpx

from relay.clock import Clock, SystemClock
from relay.config import WebhookConfig
from relay.events import signing
from relay.metrics import DELIVERED, FAILED, RETRYING, Metrics
from relay.store import HookAttempt, Outgoing, Store
from relay.store.webhooks import Outcome

log = logging.getLogger(__name__)

BACKOFF_FIRST = 1.0
"""Seconds before the first retry of an event; each further retry waits twice as long."""
BACKOFF_MAX = 300.0
"""The longest wait between two tries of an event."""
POLL = 5.0
"""Seconds between two looks at the outbox when nothing wakes the sender."""
LEASE_MARGIN = 30.0
"""An event is leased for its webhook's timeout plus this: then another process may try."""
BATCH = 100
"""Most events POSTed at once."""
KEPT = 7 * 86400.0
"""Seconds an event sent or given up is kept, for the UI and the API."""
PRUNE_EVERY = 3600.0
"""Seconds between two deletions of old events."""
ERROR_TEXT = 200
"""Characters of a receiver's answer kept with a failed attempt."""


def backoff(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed try of an event."""
    return float(min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


class EventSender:
    """Sends one process's share of the outbox to the [[webhook]] receivers."""

    def __init__(
        self,
        hooks: Sequence[WebhookConfig],
        store: Store,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.hooks = {hook.url: hook for hook in hooks}
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.metrics.watch_webhooks(self.hooks)
        self.lease = max((h.timeout for h in hooks), default=0.0) + LEASE_MARGIN
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.sent = 0  # events accepted by their receivers, for tests and logs
        self._wakes = {url: asyncio.Event() for url in self.hooks}
        self._pruned = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Take back leases a killed process left (SQLite: this process owns the
        outbox), start listening for changes and sending."""
        if self.store.db.is_sqlite:
            await self.store.webhooks.release_leases()
        self._tasks = [asyncio.create_task(self._listen(), name="webhook-events")]
        self._tasks += [
            asyncio.create_task(self._run(url), name=f"webhook-sender-{i}")
            for i, url in enumerate(self.hooks)
        ]

    def poke(self) -> None:
        """Look at the outbox now."""
        for wake in self._wakes.values():
            wake.set()

    async def _listen(self) -> None:
        async with self.store.events.subscribe() as events:
            while True:
                await events.get()
                self.poke()

    async def _run(self, url: str) -> None:
        """One receiver's loop: a slow or dead receiver never delays another's events."""
        failures = 0
        wake = self._wakes[url]
        while True:
            wake.clear()
            delay = POLL
            try:
                while await self.send_due(url):
                    pass
                await self._prune()
                due = await self.store.webhooks.next_due([url])
                if due is not None:
                    delay = max(0.0, min(delay, due - self.clock.now()))
                failures = 0
            except Exception:
                delay = min(POLL, BACKOFF_FIRST * 2**failures)
                failures += 1
                log.exception("webhooks: cannot read the outbox; trying again in %.0fs", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)

    async def send_due(self, url: str) -> int:
        """POST the receiver's events due now, all at once, and record what came of them
        in one transaction; return how many were tried."""
        now = self.clock.now()
        events = await self.store.webhooks.take([url], now, self.lease, BATCH)
        if events:
            done = await asyncio.gather(*(self._deliver(event) for event in events))
            await self.store.webhooks.finish(done, self.clock.now())
        return len(events)

    async def _prune(self) -> None:
        """Now and then, delete the events sent or given up more than `KEPT` ago."""
        now = self.clock.now()
        if now - self._pruned < PRUNE_EVERY:
            return
        self._pruned = now
        gone = await self.store.webhooks.prune(now - KEPT)
        if gone:
            log.info("webhooks: deleted %d events sent or given up before", gone)

    def _client(self, hook: WebhookConfig) -> httpx.AsyncClient:
        """The receiver's client: its connections are kept between events."""
        client = self.clients.get(hook.url)
        if client is None:
            client = httpx.AsyncClient(timeout=hook.timeout, follow_redirects=False)
            self.clients[hook.url] = client
        return client

    async def _deliver(self, event: Outgoing) -> Outcome:
        """POST `event`; what came of it, and when to try again (None: done with it)."""
        hook = self.hooks[event.webhook]
        attempt = await self._post(hook, event)
        now = self.clock.now()
        next_at: float | None = None
        result = DELIVERED
        if attempt.error:
            if now < event.expires_at:
                next_at = min(now + backoff(event.attempts + 1), event.expires_at)
                result = RETRYING
            else:
                result = FAILED
                log.warning(
                    "webhook %s: giving up on event %s (%s of %s), %s",
                    hook.url, event.event_id, event.event, event.message_id, attempt.error,
                )  # fmt: skip
        else:
            self.sent += 1
        self.metrics.webhook_post(hook.url, result, attempt.duration)
        return event, attempt, next_at

    async def _post(self, hook: WebhookConfig, event: Outgoing) -> HookAttempt:
        """One POST of `event`; what came of it (an error, or "" when accepted)."""
        body = event.body.encode("utf-8")
        started = self.clock.now()
        headers = signing.headers(event.event_id, event.event, int(started), body, hook.secret)
        loop = asyncio.get_running_loop()
        clock_start = loop.time()
        status: int | None = None
        try:
            answer = await self._client(hook).post(hook.url, content=body, headers=headers)
            status = answer.status_code
            error = "" if 200 <= status < 300 else f"HTTP {status}: {answer.text[:ERROR_TEXT]}"
        except httpx.TimeoutException:
            error = f"no answer within {hook.timeout:g}s"
        except httpx.ConnectError as exc:
            error = f"cannot connect: {exc}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        duration = loop.time() - clock_start
        if error:
            log.info("webhook %s: event %s not accepted: %s", hook.url, event.event_id, error)
        return HookAttempt(started, duration, status, error or "")

    async def stop(self) -> None:
        """Stop sending (an event in flight is sent again after a restart) and close the
        receivers' connections."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for client in self.clients.values():
            await client.aclose()
        self.clients.clear()
