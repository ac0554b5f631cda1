"""Prometheus metrics of one relay: a registry per `Relay`, never a global one, so that two
relays in one process (as in the tests) keep their own figures.

Counters that only this process can know (messages received, bytes, delivery attempts) are
incremented where things happen, through the methods below; figures the database knows
(recipients per status, queue depth, the oldest deferred recipient) are read from the
store at each scrape, so they are right however many processes share the database.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from relay.status import Status
from relay.store import Store

__all__ = ["CONTENT_TYPE", "LOGIN_RESULTS", "POST_RESULTS", "RESULTS", "Metrics", "hook_label"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text exposition format every Prometheus version reads (our names need nothing newer)."""

ACCEPTED = "accepted"
REJECTED = "rejected"
FAILED = "failed"
RESULTS = (ACCEPTED, REJECTED, FAILED)
"""Results of receiving a message: stored (250), refused (5xx), or not stored (4xx)."""

ATTEMPT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
POST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

DELIVERED = "delivered"
RETRYING = "retrying"
POST_RESULTS = (DELIVERED, RETRYING, FAILED)
"""Results of one webhook POST: accepted (2xx), not accepted and to be tried again, not
accepted and given up (the event reached its webhook's max_age)."""

LOGIN_OK = "ok"
LOGIN_FAILED = "failed"
LOGIN_LOCKED = "locked"
LOGIN_ERROR = "error"
LOGIN_RESULTS = (LOGIN_OK, LOGIN_FAILED, LOGIN_LOCKED, LOGIN_ERROR)
"""Results of a POP3 login: in, wrong credentials, the mailbox in another session's
hands ([IN-USE]), or the store could not open the mailbox ([SYS/TEMP])."""


@functools.lru_cache(maxsize=256)
def hook_label(url: str) -> str:
    """A webhook's `webhook` label: its URL without user info nor query (which may hold
    credentials that have no place in a monitoring system); kept, as the URLs are few."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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
        self._add_webhooks(self.registry)
        self._add_pop3(self.registry)
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

    def _add_webhooks(self, r: CollectorRegistry) -> None:
        """What the outbox raises and the webhooks' sender POSTs."""
        self._hooks: set[str] = set()
        """The webhooks' labels whose backlog is reported: configured, or seen pending."""
        self.hook_events = Counter(
            "relay_webhook_events_raised",
            "Webhook events raised (written to the outbox, counted at commit by the process"
            " that wrote them), by webhook and event.",
            ["webhook", "event"],
            registry=r,
        )
        self.hook_posts = Counter(
            "relay_webhook_posts",
            "POSTs of webhook events, by webhook and result: delivered (2xx), retrying (to"
            " be tried again) or failed (given up at the webhook's max_age).",
            ["webhook", "result"],
            registry=r,
        )
        self.hook_post_duration = Histogram(
            "relay_webhook_post_duration_seconds",
            "Time one POST of a webhook event took, answered or not, by webhook.",
            ["webhook"],
            buckets=POST_BUCKETS,
            registry=r,
        )
        self.hook_backlog = Gauge(
            "relay_webhook_backlog",
            "Webhook events waiting to be sent (pending in the outbox, from the database),"
            " by webhook.",
            ["webhook"],
            registry=r,
        )

    def _add_pop3(self, r: CollectorRegistry) -> None:
        """What POP3 sessions do."""
        self.pop3_sessions = Gauge(
            "relay_pop3_sessions_active",
            "POP3 sessions open now, by listener.",
            ["listener"],
            registry=r,
        )
        self.pop3_logins = Counter(
            "relay_pop3_logins",
            "POP3 logins, by listener and result: ok, failed (wrong credentials), locked"
            " (the mailbox is in another session) or error (the store could not open it).",
            ["listener", "result"],
            registry=r,
        )
        self.pop3_messages = Counter(
            "relay_pop3_retrieved_messages",
            "Messages sent whole to POP3 clients (RETR), by listener.",
            ["listener"],
            registry=r,
        )
        self.pop3_bytes = Counter(
            "relay_pop3_retrieved_bytes",
            "Bytes of the messages sent whole to POP3 clients (RETR, as stored), by listener.",
            ["listener"],
            registry=r,
        )
        self.pop3_deleted = Counter(
            "relay_pop3_deleted_messages",
            "Messages a POP3 session's QUIT took out of its mailbox (deleted, or only"
            " unlisted while recipients wait for delivery), by listener.",
            ["listener"],
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

    # --- hooks for the outbox and the webhooks' sender ----------------------------------

    def watch_webhooks(self, urls: Iterable[str]) -> None:
        """The [[webhook]] receivers, whose backlog is reported (0 too) at each scrape."""
        self._hooks.update(hook_label(u) for u in urls)

    def events_raised(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Count committed outbox rows: how many per (webhook URL, event)."""
        for (url, event), count in counts.items():
            self.hook_events.labels(hook_label(url), event).inc(count)

    def webhook_post(self, url: str, result: str, duration: float) -> None:
        """Record one POST to the webhook `url` that took `duration` s, and its result."""
        label = hook_label(url)
        self.hook_posts.labels(label, result).inc()
        self.hook_post_duration.labels(label).observe(duration)

    # --- hooks for POP3 ---------------------------------------------------------------

    def watch_pop3_sessions(self, listener: str, count: Callable[[], int]) -> None:
        """Report `count()` as the open POP3 sessions of `listener` at each scrape."""
        self.pop3_sessions.labels(listener).set_function(count)

    def pop3_login(self, listener: str, result: str) -> None:
        """Count one POP3 login on `listener` with `result` (LOGIN_RESULTS)."""
        self.pop3_logins.labels(listener, result).inc()

    def pop3_retrieved(self, listener: str, size: int) -> None:
        """Count one message of `size` bytes sent whole (RETR) on `listener`."""
        self.pop3_messages.labels(listener).inc()
        self.pop3_bytes.labels(listener).inc(size)

    def pop3_removed(self, listener: str, count: int) -> None:
        """Count the messages a session's QUIT took out of its mailbox."""
        self.pop3_deleted.labels(listener).inc(count)

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
        backlog = dict.fromkeys(self._hooks, 0)
        for url, count in (await store.webhooks.backlog()).items():
            label = hook_label(url)
            backlog[label] = backlog.get(label, 0) + count
        self._hooks.update(backlog)
        for label, count in backlog.items():
            self.hook_backlog.labels(label).set(count)

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
