"""What every API route shares: JSON errors, the guard on state-changing calls, JSON
bodies, and finding a message by id (or `latest`).

The API is for scripts, so it takes no CSRF token. It is still safe from other sites:
PUT and DELETE cannot be sent cross-site without a CORS preflight, which relay never
grants; POST must carry `Content-Type: application/json`, which a form cannot send; and
a request a browser marks as cross-site (Origin, Sec-Fetch-Site) is refused. With
`[web.users]` or `[web] token` set, the API asks for the same credentials as the UI.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from relay.metrics import Metrics
from relay.store import Filter, MessageRow
from web.pages import store_of
from web.security import same_origin

LATEST = "latest"
JSON_TYPES = ("application/json",)

Endpoint = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """An error answered as `{"Error": message}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def endpoint(handler: Endpoint) -> Endpoint:
    """Wrap an API handler so that ApiError becomes a JSON error response."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            return error(exc.status, exc.message)

    return wrapped


def error(status: int, message: str) -> JSONResponse:
    """The JSON error body: {"Error": message}."""
    return JSONResponse({"Error": message}, status_code=status)


def ok() -> PlainTextResponse:
    """Mailpit's plain-text "ok" of a successful change."""
    return PlainTextResponse("ok")


def metrics_of(request: Request) -> Metrics:
    """The relay's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


def guard_change(request: Request) -> None:
    """Refuse a state-changing call from another site, or a POST that is not JSON."""
    if not same_origin(request.headers):
        raise ApiError(403, "cross-site request refused")
    if request.method == "POST":
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in JSON_TYPES:
            raise ApiError(415, "send the body as JSON, with Content-Type: application/json")


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; {} for an empty body; 400 for anything else."""
    body = await request.body()
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    return data


def string_list(data: dict[str, Any], key: str) -> list[str]:
    """`data[key]` as a list of strings (absent or null: empty); 400 when it is not one."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{key} must be an array of strings")
    return value


def int_param(request: Request, name: str, default: int, low: int = 0) -> int:
    """An integer query parameter, at least `low`; 400 when malformed."""
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number") from None
    if value < low:
        raise ApiError(400, f"{name} must be {low} or more")
    return value


async def message_id(request: Request) -> str:
    """The path's message id, with `latest` resolved to the newest message; 404 if none."""
    wanted = str(request.path_params["ID"])
    if wanted != LATEST:
        return wanted
    narrowed: str | None = getattr(request.state, "mailbox", None)
    page = await store_of(request).messages.page(0, 1, Filter(mailbox=narrowed), total=0)
    if not page.messages:
        raise ApiError(404, "no messages")
    return page.messages[0].id


async def message_and_raw(request: Request) -> tuple[MessageRow, bytes]:
    """The message the path names and its raw bytes; 404 when there is none."""
    store = store_of(request)
    wanted = await message_id(request)
    row = await store.messages.get(wanted)
    raw = await store.messages.raw(wanted) if row else None
    if row is None or raw is None:
        raise ApiError(404, "message not found")
    return row, raw
