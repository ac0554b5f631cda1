"""What operators' tools ask: /metrics (Prometheus text format) and /readyz (ready to
take mail: database reachable, every listener accepting). /healthz is in web.app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.metrics import CONTENT_TYPE, Metrics

Readiness = Callable[[], Awaitable[list[str]]]
"""Returns what keeps the relay from being ready; empty when it is ready."""


async def metrics(request: Request) -> Response:
    """Every metric, with the figures the database knows read now."""
    registry: Metrics = request.app.state.metrics
    await registry.refresh(request.app.state.store)
    return Response(registry.render(), media_type=CONTENT_TYPE)


async def _database(request: Request) -> list[str]:
    try:
        await request.app.state.store.db.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", said as is
        return [f"database unreachable: {exc}"]
    return []


async def readyz(request: Request) -> Response:
    """200 {"ready": true} when ready, else 503 with the problems."""
    ready: Readiness | None = request.app.state.ready
    problems = await ready() if ready is not None else await _database(request)
    return JSONResponse(
        {"ready": not problems, "problems": problems}, status_code=503 if problems else 200
    )
