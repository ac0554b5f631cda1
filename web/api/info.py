"""GET /api/v1/info: Mailpit's AppInformation, from the store and this process's metrics."""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay import __version__
from relay.metrics import ACCEPTED, FAILED, REJECTED
from relay.store import Counts
from web.api.common import endpoint, metrics_of
from web.api.oas import COUNTS, INTEGER, STRING, Field, Shape
from web.pages import store_of

RECEIVED = "relay_messages_received_total"


def peak_memory() -> int:
    """The most memory this process has held, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@dataclass(frozen=True)
class AppInfo:
    """What the answer tells: the database, its totals and this process's statistics."""

    database: str
    size: int
    counts: Counts
    stats: dict[str, int]
    tags: dict[str, int]


INFO: Shape[AppInfo] = Shape(
    "Info",
    (
        Field("Version", STRING, lambda i: __version__),
        Field("LatestVersion", STRING, lambda i: ""),
        Field("Database", STRING, lambda i: i.database),
        Field("DatabaseSize", INTEGER, lambda i: i.size),
        Field("Messages", INTEGER, lambda i: i.counts.total),
        Field("Unread", INTEGER, lambda i: i.counts.unread),
        Field("Tags", COUNTS, lambda i: i.tags),
        Field("RuntimeStats", COUNTS, lambda i: i.stats),
    ),
)
"""Mailpit's AppInformation."""


def runtime_stats(request: Request) -> dict[str, int]:
    """Mailpit's RuntimeStats of this process: uptime, memory, SMTP counters."""
    metrics = metrics_of(request)
    started: float = request.app.state.started
    return {
        "Uptime": int(time.monotonic() - started),
        "Memory": peak_memory(),
        "MessagesDeleted": 0,
        "SMTPAccepted": int(metrics.sum(RECEIVED, result=ACCEPTED)),
        "SMTPAcceptedSize": int(metrics.sum("relay_received_bytes_total")),
        "SMTPRejected": int(
            metrics.sum(RECEIVED, result=REJECTED) + metrics.sum(RECEIVED, result=FAILED)
        ),
        "SMTPIgnored": 0,
    }


@endpoint
async def info(request: Request) -> Response:
    """Version, database, message totals and runtime statistics."""
    store = store_of(request)
    counts = await store.messages.counts()
    size = await store.db.size()
    stats, tags = runtime_stats(request), await store.tags.counts()
    return JSONResponse(INFO(AppInfo(store.db.display_url, size, counts, stats, tags)))
