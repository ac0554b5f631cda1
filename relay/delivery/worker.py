"""The delivery worker: claims due recipients and sends them, many destinations at once.

It wakes when the store announces a committed change, its own or (PostgreSQL NOTIFY)
another process's, with no polling delay, and otherwise sleeps until the next retry or
foreign lease falls due (at most `poll_interval`, a fallback for lost notifications).
The claim applies each destination's rate limit and circuit breaker (in the database,
relay.store.destinations): what is over the limit or paused waits, unclaimed. Claimed
recipients are grouped per message per destination, one SMTP transaction each; every
group runs in its own task and waits only for its own destination's lane
(relay.delivery.lanes), so one slow or dead destination never delays the others; a group
signs its message first when its From domain has a DKIM key. A destination with a backlog
of twice its `max_connections` groups gets no more claims until it drains. Leases are
renewed while deliveries run; on stop, deliveries in flight get `grace` seconds to finish
and the rest give their leases back.

On SQLite the worker also takes mail straight from ingest (relay.store.batch.HandOff): a
message committed alone whose destinations have a lane free is leased to the worker in
the transaction that stores it, with the same limits, pauses and suppression entries as
a claim, and sent as soon as it is durable, with no claim, no wake-up and no read of its
own; what it does not take (busy destinations, no room) is claimed as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
from collections import Counter
from collections.abc import Sequence

from relay.chaos import Chaos
from relay.clock import Clock, SystemClock
from relay.config import Config
from relay.delivery import drills, dsn, retry, suppressed
from relay.delivery.groups import Group, Looked, bounced, chunks, group, result_of, store_bounce
from relay.delivery.lanes import Lanes
from relay.delivery.mx import MxResolver
from relay.delivery.recorder import Recorder
from relay.delivery.sender import Sender, Sent
from relay.delivery.signing import Signer
from relay.delivery.suppressed import Screen
from relay.delivery.transaction import Envelope
from relay.metrics import Metrics
from relay.routing import Destination
from relay.status import Status
from relay.store import Claim, Result, Store, Suppressed
from relay.store.accepted import MessageRows
from relay.store.destinations import Outcome
from relay.store.queue import Batch, Lease

log = logging.getLogger(__name__)

WAKING_EVENTS = frozenset({"message", "due", "wake"})
"""Mail stored, recipients due now (retried, released, given back), or "look again" (the
LISTEN connection was re-established). Other status changes, such as another process's
deliveries, do not wake the worker: they make nothing due."""
INTERNAL = "4.3.0"  # other or undefined mail system status
RETRY_AFTER_ERROR = 1.0
"""Seconds before looking at the queue again after it could not be read (doubling)."""


class Worker:
    """Delivers queued recipients for one process."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Clock | None = None,
        resolver: MxResolver | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        chaos: Chaos | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.chaos = chaos  # delivery-leg drills; None when chaos is off
        self.policy = config.delivery
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.sender = Sender(config, resolver)
        self.signer = Signer(config.dkim)
        self.lanes = Lanes(lambda d: self.sender.settings(d).max_connections)
        self.rng = rng or random.Random()
        self.owner = f"{config.server.host_name}:{os.getpid()}:{secrets.token_hex(4)}"
        self.recorder = Recorder(store.queue, self.owner)
        self.screen = Screen()
        self._wake = asyncio.Event()
        self.sleeping = asyncio.Event()  # set while nothing but a wake-up or a timer is left
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._jobs: set[asyncio.Task[None]] = set()
        self._in_flight: dict[int, Claim] = {}
        self._backlog: Counter[Destination] = Counter()
        self._offered: dict[str, int] = {}  # messages ingest is committing for us: recipients

    async def start(self) -> None:
        """Take back leases a killed process left (SQLite: this process owns the queue), run;
        on SQLite take mail from ingest too (`wanted`, `take`)."""
        if self.store.db.is_sqlite:
            freed = await self.store.queue.release_all_leases(self.clock.now())
            if freed:
                log.warning("%d deliveries left unfinished by the last run are queued again", freed)
            self.store.committer.hand_off = self
        self._tasks = [
            asyncio.create_task(self._listen(), name="delivery-events"),
            asyncio.create_task(self._run(), name="delivery-claims"),
            asyncio.create_task(self._renew(), name="delivery-leases"),
        ]

    def wanted(self, batch: Sequence[MessageRows]) -> Lease | None:
        """Ingest offers the messages of a batch committed alone: those whose queued
        recipients fit in the room left and whose destinations each have a lane free (a
        busy destination's mail waits for the claims, in order), on a claim's terms. Room
        is kept for them until `take`."""
        if self._stopping:
            return None
        room = self.policy.max_in_flight - len(self._in_flight) - sum(self._offered.values())
        wanted: list[str] = []
        for rows in batch:
            queued = [r for r in rows.recipients if r["status"] == Status.QUEUED.value]
            if not queued or len(queued) > room:
                continue
            routes = {Destination.stored(r["route"], r["domain"]) for r in queued}
            if any(self._backlog[d] >= self.sender.settings(d).max_connections for d in routes):
                continue
            message_id = str(rows.message["id"])
            room -= len(queued)
            self._offered[message_id] = len(queued)
            wanted.append(message_id)
        if not wanted:
            return None
        return Lease(wanted, self.owner, self.clock.now(), self.policy.lease, self._rate)

    def take(self, lease: Lease, leased: Batch | None) -> set[str]:
        """Ingest committed what `lease` leased to this worker (None: nothing): send it as
        a claim's; the messages taken whole (the others wake the claims)."""
        for message_id in lease.message_ids:
            self._offered.pop(message_id, None)
        if leased is None or not leased.claims:
            return set()
        self.store.queue.leased(leased)
        self.screen.note(leased.claims, leased.suppressed)
        # On the loop's next turn: the 250 that ingest is about to send goes out first.
        asyncio.get_running_loop().call_soon(self._launch_taken, leased.claims)
        return {c.message_id for c in leased.claims} - set(leased.waiting)

    def _launch_taken(self, claims: Sequence[Claim]) -> None:
        """Send what ingest handed over, as a claim's; while stopping, give it back."""
        if self._stopping:  # too late to send: back to the queue for the next run
            self.screen.forget(claims)
            self._hand_back(claims)
            return
        for g in group(claims):
            self._launch(g)

    def _hand_back(self, claims: Sequence[Claim]) -> None:
        """Give back leases taken while stopping, in the background."""
        task = asyncio.create_task(self._give_back([c.id for c in claims]))
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    def poke(self) -> None:
        """Look at the queue now (tests call it after moving their clock)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        """Recipients claimed and not finished."""
        return len(self._in_flight)

    async def _listen(self) -> None:
        async with self.store.events.subscribe() as events:
            while True:
                event = await events.get()
                if event.kind in WAKING_EVENTS and event.due:
                    self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            delay = self.policy.poll_interval
            try:
                looked = await self._claim_all()
                if not self._wake.is_set():  # woken meanwhile: claim again, no need to ask
                    # As of the last claim, not now: a recipient that fell due in between
                    # (a timer may fire a little early) is one to claim at once, not lost.
                    # The claim that took all that was due asked already, in its transaction.
                    due = looked.next_due
                    if not looked.last:
                        due = await self.store.queue.next_due(looked.at, self.owner)
                    if due is not None:
                        delay = max(0.0, min(delay, due - self.clock.now()))
                failures = 0
            except Exception:
                # A database restart costs one failed statement: try again soon, backing off.
                delay = min(delay, RETRY_AFTER_ERROR * 2**failures)
                failures += 1
                log.exception("delivery: cannot read the queue; trying again in %.0fs", delay)
            if self._stopping:
                return
            if not self._wake.is_set():
                self.sleeping.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self.sleeping.clear()

    def _busy(self) -> set[Destination]:
        """Destinations with a backlog of twice their connections: no claims for now."""
        return {
            dest
            for dest, groups in self._backlog.items()
            if groups >= 2 * self.sender.settings(dest).max_connections
        }

    async def _claim_all(self) -> Looked:
        """Claim and launch what is due, batch after batch; when the queue was last looked
        at, and what the last claim saw of when it next needs a look."""
        now = self.clock.now()
        while not self._stopping:
            room = self.policy.max_in_flight - len(self._in_flight)
            if room <= 0:
                return Looked(now)
            limit = min(self.policy.batch_size, room)
            now = self.clock.now()
            batch = await self.store.queue.claim_batch(
                self.owner, now, self.policy.lease, limit, self._busy(), self._rate
            )
            claims = batch.claims
            self.screen.note(claims, batch.suppressed)  # the suppressed among them
            try:  # one read for the batch, not one per message, of bytes not in memory
                await self.store.prefetch_raw(c.message_id for c in claims)
            except Exception:  # each delivery reads its message itself then
                log.exception("could not read the claimed messages ahead")
            for g in group(claims):
                self._launch(g)
            if batch.picked < limit:  # those made to wait for their destination count
                return Looked(now, batch.last, batch.next_due)
        return Looked(now)

    def _rate(self, destination: Destination) -> int:
        """A destination's messages per minute (0: no limit), for the claim."""
        return self.sender.limits(destination).max_messages_per_minute

    def _launch(self, g: Group) -> None:
        for claim in g.claims:
            self._in_flight[claim.id] = claim
        self._backlog[g.destination] += 1
        task = asyncio.create_task(self._deliver(g), name=f"deliver-{g.first.message_id}")
        self._jobs.add(task)

        def done(_: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.error("delivery task failed", exc_info=task.exception())
            self._jobs.discard(task)
            self._backlog[g.destination] -= 1
            if self._backlog[g.destination] <= 0:
                del self._backlog[g.destination]
                self.lanes.drop(g.destination)
            self._wake.set()  # capacity freed: claim more

        task.add_done_callback(done)

    async def _deliver(self, g: Group) -> None:
        first = g.first
        try:
            raw = await self.store.raw_to_send(first.message_id)
        except Exception:
            log.exception("could not read message %s to send it", first.message_id)
            await self._give_back([c.id for c in g.claims])
            raw = None
        if raw is None:  # or deleted meanwhile: its recipients went with it
            self._forget(g.claims)
            return
        raw = await self.signer.sign(first.message_id, raw)  # DKIM, when its From has a key
        settings = self.sender.settings(first.destination)
        for chunk in chunks(g.claims, settings.max_recipients):
            try:
                await self._attempt(chunk, raw)
            except Exception:
                log.exception("could not record the delivery of %s", first.message_id)
                await self._give_back([c.id for c in chunk])
            # Not when cancelled: `stop` gives back what is still in flight.
            self._forget(chunk)

    async def _transmit(self, chunk: Sequence[Claim], raw: bytes) -> Sent:
        first = chunk[0]
        envelope = Envelope(first.mail_from, tuple(c.address for c in chunk), raw)
        try:
            return await self.sender.send(first.destination, envelope)
        except Exception as exc:
            # A bug, not the upstream: defer with backoff rather than retry in a hot loop.
            log.exception("delivery of %s failed unexpectedly", first.message_id)
            error = retry.local(f"internal error: {type(exc).__name__}: {exc}", INTERNAL)
            return Sent("", [error] * len(chunk))

    def _forget(self, claims: Sequence[Claim]) -> None:
        self.screen.forget(claims)
        for claim in claims:
            self._in_flight.pop(claim.id, None)

    async def _attempt(self, chunk: Sequence[Claim], raw: bytes) -> None:
        """Send `chunk`; with chaos on, the recipients a delivery rule fires for get its
        injected reply instead, and nothing is sent for them (relay/delivery/drills.py).
        Suppressed recipients fail at once or are held, nothing sent."""
        listed, chunk = self.screen.split(chunk)
        if listed:
            await self._suppress(listed, raw)
        if self.chaos is not None:
            drilled, chunk = drills.split(self.chaos, chunk)
            if drilled:
                sent = Sent("", [reply for _, reply in drilled])
                claims = [claim for claim, _ in drilled]
                await self._record(claims, raw, sent, self.clock.now(), 0.0, injected=True)
        if chunk:
            await self._send(chunk, raw)

    async def _suppress(self, listed: Sequence[tuple[Claim, Suppressed]], raw: bytes) -> None:
        """Fail (or hold, `[suppression] action`) recipients whose addresses are listed."""
        now = self.clock.now()
        if self.config.suppression.action == "hold":
            held = [(claim.id, entry.why) for claim, entry in listed]
            await self.store.suppressions.hold(self.owner, held, now)
            return
        sent = Sent("", [suppressed.reply(entry) for _, entry in listed])
        await self._record([claim for claim, _ in listed], raw, sent, now, 0.0)

    async def _send(self, chunk: Sequence[Claim], raw: bytes) -> None:
        first = chunk[0]
        async with self.lanes.turn(first.destination):
            paused = self.store.queue.seen.paused.get(str(first.destination), 0.0)
            if paused > self.clock.now():  # paused meanwhile: wait with the others
                ids = [c.id for c in chunk]
                await self.store.queue.give_back(self.owner, ids, self.clock.now(), paused)
                return
            loop = asyncio.get_running_loop()
            started, clock_start = self.clock.now(), loop.time()
            sent = await self._transmit(chunk, raw)
            duration = loop.time() - clock_start
            if retry.pushback(sent.replies) is not None:
                # The destination's next send waits for this result, which may pause it.
                await self._record(chunk, raw, sent, started, duration)
                return
        await self._record(chunk, raw, sent, started, duration)

    async def _record(
        self,
        chunk: Sequence[Claim],
        raw: bytes,
        sent: Sent,
        started: float,
        duration: float,
        injected: bool = False,
    ) -> None:
        """Decide each recipient's fate from its reply (`injected`: a chaos drill's, nothing
        was sent), bounce, record, count and log."""
        first = chunk[0]
        now = self.clock.now()
        results: list[Result] = []
        failures: list[dsn.Failure] = []
        for claim, reply in zip(chunk, sent.replies, strict=True):
            spread = self.rng.uniform(-1.0, 1.0)
            verdict = retry.decide(
                reply, claim.attempts + 1, claim.received_at, now, self.policy, spread
            )
            results.append(result_of(claim, verdict, reply, sent.host, started, duration, injected))
            if verdict.gave_up:
                log.warning("%s to=<%s>: giving up, too old", claim.message_id, claim.address)
            if verdict.status is Status.FAILED:
                failures.append(dsn.Failure(claim.address, reply, sent.host, verdict.gave_up))
        if failures and self.policy.dsn and dsn.wanted(first.mail_from):
            # Before the result: a crash in between may bounce twice, never not at all.
            try:
                if await store_bounce(self.store, self.config, first, raw, failures, now):
                    results = [bounced(r) for r in results]
            except Exception:
                log.exception("%s: could not store the bounce", first.message_id)
        await self.recorder.record(results, now, self._outcome(first.destination, sent))
        if self.metrics is not None:
            outcomes = Counter(result.status.value for result in results)
            self.metrics.delivery_attempt(str(first.destination), dict(outcomes), duration)
        via = "chaos (injected, nothing sent)" if injected else sent.host or first.destination.route
        for claim, result in zip(chunk, results, strict=True):
            log.info(
                "%s to=<%s> via %s: %s (%s)",
                result.message_id,
                claim.address,
                via,
                result.status.value,
                " ".join(str(p) for p in (result.code, result.enhanced, result.text) if p),
            )

    def _outcome(self, destination: Destination, sent: Sent) -> list[Outcome]:
        """What the replies tell the destination's circuit breaker (nothing when no reply
        came from the destination itself)."""
        pushed = retry.pushback(sent.replies)
        if pushed is None and not retry.answered(sent.replies):
            return []
        reason = None if pushed is None else str(pushed)
        return [Outcome(str(destination), reason, self.sender.limits(destination))]

    async def _give_back(self, claim_ids: Sequence[int]) -> None:
        try:
            await self.store.queue.give_back(self.owner, claim_ids, self.clock.now())
        except Exception:
            log.exception("could not give back %d leases; they lapse on their own", len(claim_ids))

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.policy.lease / 3)
            if not self._in_flight:
                continue
            try:
                until = self.clock.now() + self.policy.lease
                await self.store.queue.renew(self.owner, list(self._in_flight), until)
            except Exception:
                log.exception("could not renew delivery leases")

    async def stop(self, grace: float) -> None:
        """Stop claiming; let deliveries finish for `grace` s; give back what is left."""
        self._stopping = True
        if self.store.committer.hand_off is self:
            self.store.committer.hand_off = None
        self._wake.set()
        runner = self._tasks[1] if len(self._tasks) > 1 else None
        if runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner, grace + 5)
        if self._jobs:
            log.info("delivery: waiting up to %.0fs for %d deliveries", grace, len(self._jobs))
            _, pending = await asyncio.wait(set(self._jobs), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.recorder.drain()  # results already handed over are kept, not given back
        left = list(self._in_flight)
        if left:
            await self._give_back(left)
            log.info("delivery: %d unfinished deliveries queued again", len(left))
            self._in_flight.clear()
        await self.sender.close()
