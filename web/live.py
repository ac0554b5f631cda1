"""Server-Sent Events: the store's committed changes, pushed to browsers as they happen.

Each event is `event: message|status|deleted` with `data: {"id": "..."}`; the page then
fetches what it needs (new rows, a changed row, the counts). A comment line every
HEARTBEAT seconds keeps proxies from closing an idle stream. Requests from other sites
are refused: their Origin must be ours.

A user narrowed to one mailbox (web/scope.py) hears only of the messages of that mailbox:
a "deleted" event carries the mailbox the message was in; for the others the events
waiting are taken together and one query asks which of their messages are the user's
(the mailbox a "message" event carries spares it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from relay.store import Event, Store
from relay.store.events import CLOSED
from web.pages import store_of
from web.scope import scope
from web.security import same_origin

HEARTBEAT = 15.0
RETRY_MS = 3000
KINDS = ("message", "status", "deleted")


def format_event(event: Event) -> str:
    """One event in the text/event-stream format."""
    return f"event: {event.kind}\ndata: {json.dumps({'id': event.message_id})}\n\n"


def _waiting(first: Event, queue: asyncio.Queue[Event]) -> tuple[list[Event], bool]:
    """`first` and the events already waiting behind it, up to the stream's end; and
    whether the stream ends there (CLOSED)."""
    batch: list[Event] = []
    event = first
    while True:
        if event is CLOSED or event.kind == CLOSED.kind:
            return batch, True
        if event.kind in KINDS:
            batch.append(event)
        if queue.empty():
            return batch, False
        event = queue.get_nowait()


async def narrowed_to(mailbox: str, store: Store, batch: list[Event]) -> list[Event]:
    """Those events of `batch` about messages of `mailbox`: a deletion of one that was in
    it, another event of one in it (asked of the store in one query for the batch)."""
    unknown = list({e.message_id: e for e in batch if e.kind != "deleted" and e.mailbox is None})
    found = set(await store.mailboxes.within(mailbox, unknown)) if unknown else set()
    return [
        e
        for e in batch
        if e.mailbox == mailbox
        or (e.mailbox is None and e.kind != "deleted" and e.message_id in found)
    ]


async def _stream(request: Request) -> AsyncIterator[str]:
    store = store_of(request)
    mailbox = scope(request)
    async with store.events.subscribe() as queue:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while True:
            try:
                first = await asyncio.wait_for(queue.get(), HEARTBEAT)
            except TimeoutError:
                yield ": heartbeat\n\n"
                continue
            batch, closed = _waiting(first, queue)
            if mailbox is not None and batch:
                batch = await narrowed_to(mailbox, store, batch)
            for event in batch:
                yield format_event(event)
            if closed:
                return


async def events(request: Request) -> Response:
    """The event stream (text/event-stream); 403 for requests from another origin."""
    if not same_origin(request.headers):
        raise HTTPException(403, "events are only for pages of this relay")
    return StreamingResponse(
        _stream(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
