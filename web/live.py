"""Server-Sent Events: the store's committed changes, pushed to browsers as they happen.

Each event is `event: message|status|deleted` with `data: {"id": "..."}`; the page then
fetches what it needs (new rows, a changed row, the counts). A comment line every
HEARTBEAT seconds keeps proxies from closing an idle stream. Requests from other sites
are refused: their Origin must be ours.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from relay.store import Event
from relay.store.events import CLOSED
from web.pages import store_of
from web.security import same_origin

HEARTBEAT = 15.0
RETRY_MS = 3000
KINDS = ("message", "status", "deleted")


def format_event(event: Event) -> str:
    """One event in the text/event-stream format."""
    return f"event: {event.kind}\ndata: {json.dumps({'id': event.message_id})}\n\n"


async def _stream(request: Request) -> AsyncIterator[str]:
    async with store_of(request).events.subscribe() as queue:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), HEARTBEAT)
            except TimeoutError:
                yield ": heartbeat\n\n"
                continue
            if event is CLOSED or event.kind == CLOSED.kind:
                return
            if event.kind in KINDS:
                yield format_event(event)


async def events(request: Request) -> Response:
    """The event stream (text/event-stream); 403 for requests from another origin."""
    if not same_origin(request.headers):
        raise HTTPException(403, "events are only for pages of this relay")
    return StreamingResponse(
        _stream(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
