"""GET /api/v1/wait: a long poll that answers as soon as a message matching a search is
stored, so that test suites need no polling loop of their own.

It subscribes to the store's events first, then looks for a match already stored, then
checks each newly stored message as its commit is announced: no polling, no race.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.store.events import CLOSED
from web.api.common import ApiError, endpoint, error
from web.api.messages import query_filter, summaries
from web.pages import store_of

DEFAULT_TIMEOUT = 30
MAX_TIMEOUT = 300
TIMED_OUT = 408


def _timeout(request: Request) -> float:
    """The `timeout` parameter: seconds, more than 0 and at most MAX_TIMEOUT (fractions
    allowed: a test that checks that nothing arrives need not wait a whole second)."""
    text = request.query_params.get("timeout") or ""
    try:
        value = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_TIMEOUT:
        raise ApiError(400, f"timeout must be more than 0 and at most {MAX_TIMEOUT} seconds")
    return value


@endpoint
async def wait_for_message(request: Request) -> Response:
    """The newest message matching `query` (newer than the id `after`, when given) as a
    MessageSummary, once there is one; 408 after `timeout` seconds without one."""
    filter_ = query_filter(request, required=False)
    timeout = _timeout(request)
    after = request.query_params.get("after") or None
    store = store_of(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with store.events.subscribe() as events:
        found = await store.messages.page(0, 1, filter_, after=after, total=0)
        while not found.messages:
            try:
                event = await asyncio.wait_for(events.get(), deadline - loop.time())
            except TimeoutError:
                return error(TIMED_OUT, f"no matching message arrived within {timeout:g} s")
            if event is CLOSED:
                raise ApiError(503, "relay is stopping")
            if event.kind != "message" or (after is not None and event.message_id <= after):
                continue
            found = await store.messages.page(0, 1, filter_, only=[event.message_id], total=0)
    return JSONResponse((await summaries(request, found.messages))[0])
