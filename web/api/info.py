"""GET /api/v1/info: Mailpit's AppInformation, from the store and this process's metrics."""

from __future__ import annotations

import resource
import sys
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay import __version__
from relay.metrics import ACCEPTED, FAILED, REJECTED
from web.api.common import endpoint, metrics_of
from web.pages import store_of

RECEIVED = "relay_messages_received_total"


def peak_memory() -> int:
    """The most memory this process has held, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@endpoint
async def info(request: Request) -> Response:
    """Version, database, message totals and runtime statistics."""
    store = store_of(request)
    metrics = metrics_of(request)
    counts = await store.messages.counts()
    started: float = request.app.state.started
    return JSONResponse(
        {
            "Version": __version__,
            "LatestVersion": "",
            "Database": store.db.display_url,
            "DatabaseSize": await store.db.size(),
            "Messages": counts.total,
            "Unread": counts.unread,
            "Tags": {},
            "RuntimeStats": {
                "Uptime": int(time.monotonic() - started),
                "Memory": peak_memory(),
                "MessagesDeleted": 0,
                "SMTPAccepted": int(metrics.sum(RECEIVED, result=ACCEPTED)),
                "SMTPAcceptedSize": int(metrics.sum("relay_received_bytes_total")),
                "SMTPRejected": int(
                    metrics.sum(RECEIVED, result=REJECTED) + metrics.sum(RECEIVED, result=FAILED)
                ),
                "SMTPIgnored": 0,
            },
        }
    )
