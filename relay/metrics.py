"""Prometheus metrics of one relay: a registry per `Relay`, never a global one, so that two
relays in one process (as in the tests) keep their own figures.

Counters that only this process can know (messages received, bytes, delivery attempts) are
incremented where things happen, through the methods below; figures the database knows
(recipients per status, queue depth, the oldest deferred recipient) are read from the
store at each scrape, so they are right however many processes share the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from relay.status import Status
from relay.store import Store

__all__ = ["CONTENT_TYPE", "RESULTS", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text exposition format every Prometheus version reads (our names need nothing newer)."""

ACCEPTED = "accepted"
REJECTED = "rejected"
FAILED = "failed"
RESULTS = (ACCEPTED, REJECTED, FAILED)
"""Results of receiving a message: stored (250), refused (5xx), or not stored (4xx)."""

ATTEMPT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def result_of(reply: str) -> str:
    """The result label of the SMTP reply that ended DATA."""
    if reply.startswith("2"):
        return ACCEPTED
    return FAILED if reply.startswith("4") else REJECTED


ChaosHits = Callable[[], Iterable[tuple[str, str, str, int]]]
"""(rule, leg, stage, hits) of every chaos rule (relay.chaos.Chaos.hits)."""


class _ChaosHits(Collector):
    """relay_chaos_hits_total, read from the rules at each scrape (they come and go)."""

    def __init__(self, hits: ChaosHits) -> None:
        self.hits = hits

    def collect(self) -> Iterator[Metric]:
        """One sample per rule, trigger and the X-Relay-Chaos header."""
        family = CounterMetricFamily(
            "relay_chaos_hits",
            "Times each chaos rule fired, by rule (its id; mailpit-sender, mailpit-recipient,"
            " mailpit-authentication; header), leg and stage.",
            labels=["rule", "leg", "stage"],
        )
        for rule, leg, stage, count in self.hits():
            family.add_metric([rule, leg, stage], count)
        yield family


class Metrics:
    """Every metric of one relay, in its own registry."""

    def __init__(self) -> None:
        self._connections: Callable[[], Mapping[str, int]] = dict
        self.registry = CollectorRegistry()
        self._add_ingest(self.registry)
        self._add_queue(self.registry)
        self._add_delivery(self.registry)
        self.pruned = Counter(
            "relay_retention_pruned_messages",
            "Messages deleted by retention ([storage] max_messages, max_age).",
            registry=self.registry,
        )

    def _add_ingest(self, r: CollectorRegistry) -> None:
        """What SMTP and the API accept."""
        self.messages_received = Counter(
            "relay_messages_received",
            "Messages received, by listener (or api) and result: accepted (stored),"
            " rejected (5xx) or failed (4xx, not stored).",
            ["listener", "result"],
            registry=r,
        )
        self.received_bytes = Counter(
            "relay_received_bytes",
            "Bytes of accepted messages, by listener (or api).",
            ["listener"],
            registry=r,
        )
        self.smtp_sessions = Gauge(
            "relay_smtp_sessions_active",
            "SMTP sessions open now, by listener.",
            ["listener"],
            registry=r,
        )

    def _add_queue(self, r: CollectorRegistry) -> None:
        """What the database holds: recipients by status, the queue."""
        self.recipients = Gauge(
            "relay_recipients",
            "Stored recipients by status (from the database).",
            ["status"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "relay_queue_depth",
            "Recipients waiting for delivery: queued, deferred or being sent (from the database).",
            registry=r,
        )
        self.oldest_deferred_age = Gauge(
            "relay_oldest_deferred_age_seconds",
            "Seconds since the message of the oldest deferred recipient arrived; 0 when none.",
            registry=r,
        )

    def _add_delivery(self, r: CollectorRegistry) -> None:
        """What the delivery worker does: attempts, their durations, open connections."""
        self.deliveries = Counter(
            "relay_deliveries",
            "Delivery attempts of recipients, by destination and outcome"
            " (delivered, deferred, failed).",
            ["destination", "outcome"],
            registry=r,
        )
        self.attempt_duration = Histogram(
            "relay_delivery_attempt_duration_seconds",
            "Time one delivery attempt (one SMTP transaction) took, by destination.",
            ["destination"],
            buckets=ATTEMPT_BUCKETS,
            registry=r,
        )
        self.upstream_connections = Gauge(
            "relay_upstream_connections_open",
            "SMTP connections to upstreams open now, by destination.",
            ["destination"],
            registry=r,
        )

    # --- SMTP and API ---------------------------------------------------------------

    def received(self, listener: str, result: str, size: int = 0) -> None:
        """Count one message received on `listener` with `result`, and its bytes if accepted."""
        self.messages_received.labels(listener, result).inc()
        if result == ACCEPTED:
            self.received_bytes.labels(listener).inc(size)

    def watch_sessions(self, listener: str, count: Callable[[], int]) -> None:
        """Report `count()` as the open SMTP sessions of `listener` at each scrape."""
        self.smtp_sessions.labels(listener).set_function(count)

    def watch_chaos(self, hits: ChaosHits) -> None:
        """Report the chaos rules' hits at each scrape (only when chaos is on)."""
        self.registry.register(_ChaosHits(hits))

    # --- hooks for the delivery worker ----------------------------------------------

    def delivery_attempt(self, destination: str, outcomes: dict[str, int], duration: float) -> None:
        """Record one attempt at `destination` (an upstream name or an MX host) that took
        `duration` seconds, with how many recipients ended in each outcome."""
        self.attempt_duration.labels(destination).observe(duration)
        for outcome, count in outcomes.items():
            if count:
                self.deliveries.labels(destination, outcome).inc(count)

    def watch_connections(self, count: Callable[[], Mapping[str, int]]) -> None:
        """Report `count()` (open upstream connections by destination) at each scrape."""
        self._connections = count

    # --- scrape ---------------------------------------------------------------------

    async def refresh(self, store: Store, now: float | None = None) -> None:
        """Read the figures the database knows into their gauges."""
        stats = await store.messages.recipient_stats()
        for status in Status:
            self.recipients.labels(status.value).set(stats.by_status.get(status.value, 0))
        self.queue_depth.set(stats.queue_depth)
        now = time.time() if now is None else now
        oldest = stats.oldest_deferred_at
        self.oldest_deferred_age.set(0 if oldest is None else max(0.0, now - oldest))
        for destination, count in self._connections().items():
            self.upstream_connections.labels(destination).set(count)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def sum(self, sample: str, **labels: str) -> float:
        """The sum of the samples called `sample` whose labels include `labels`."""
        found = 0.0
        for family in self.registry.collect():
            for item in family.samples:
                if item.name == sample and labels.items() <= item.labels.items():
                    found += item.value
        return found
