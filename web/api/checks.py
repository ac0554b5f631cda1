"""The checks of one message, Mailpit's way: HTML compatibility, links, spam (web/checks.py
runs each once per message and keeps its answer)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from web import checks
from web.api.check_shapes import HTML_CHECK, LINK_CHECK, SPAM_CHECK
from web.api.common import ApiError, endpoint, message_id

TRUE = ("true", "1", "yes", "on")
FALSE = ("false", "0", "no", "off", "")


def bool_param(request: Request, name: str) -> bool:
    """A true/false query parameter (absent: false); 400 when it is neither."""
    value = request.query_params.get(name, "").strip().lower()
    if value not in TRUE + FALSE:
        raise ApiError(400, f"{name} must be true or false")
    return value in TRUE


async def _checked(run: Callable[[], Awaitable[Any]]) -> Any:
    """The answer of a check; 404 when the message (or its HTML) is not there."""
    try:
        return await run()
    except checks.NoMessage:
        raise ApiError(404, "message not found") from None
    except checks.NoHtml:
        raise ApiError(404, "the message has no HTML body") from None


@endpoint
async def html_check(request: Request) -> Response:
    """GET /api/v1/message/{ID}/html-check: which email clients support the HTML and CSS
    the message uses (caniemail); 404 without an HTML body."""
    wanted = await message_id(request)
    answer = await _checked(lambda: checks.html_check(request, wanted))
    return JSONResponse(HTML_CHECK(answer))


@endpoint
async def link_check(request: Request) -> Response:
    """GET /api/v1/message/{ID}/link-check?follow=: each link's HTTP status."""
    follow = bool_param(request, "follow")
    wanted = await message_id(request)
    answer = await _checked(lambda: checks.link_check(request, wanted, follow))
    return JSONResponse(LINK_CHECK(answer))


@endpoint
async def spam_check(request: Request) -> Response:
    """GET /api/v1/message/{ID}/sa-check: SpamAssassin's verdict from spamd; what kept
    spamd from giving one (off, down, slow) is in Error."""
    wanted = await message_id(request)
    answer = await _checked(lambda: checks.spam_check(request, wanted))
    return JSONResponse(SPAM_CHECK(answer))
