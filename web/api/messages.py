"""Lists of messages, Mailpit's way: list, search, mark read or unread, delete."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay import query
from relay.store import Filter, MessageRow
from web.api import shapes
from web.api.common import ApiError, endpoint, guard_change, int_param, json_body, ok, string_list
from web.pages import store_of
from web.scope import list_mailbox, scope, visible

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
"""The most messages one list answer carries; page with `start` for more."""


def query_filter(request: Request, required: bool = True) -> Filter:
    """The `query` parameter as a filter; 400 when missing (if required) or unreadable."""
    text = request.query_params.get("query", "").strip()
    if required and not text:
        raise ApiError(400, "query is required")
    parsed = query.parse(text)
    if parsed.problems:
        raise ApiError(400, "; ".join(parsed.problems))
    return Filter(query=parsed, mailbox=list_mailbox(request))


async def summaries(request: Request, rows: list[MessageRow]) -> list[dict[str, Any]]:
    """Mailpit's MessageSummary of each row (headers read for Reply-To and Bcc)."""
    heads = await store_of(request).messages.heads([r.id for r in rows])
    return [shapes.summary(row, heads.get(row.id, b"")) for row in rows]


async def _listing(request: Request, filter_: Filter | None) -> Response:
    store = store_of(request)
    start = int_param(request, "start", 0)
    limit = min(int_param(request, "limit", DEFAULT_LIMIT, low=1), MAX_LIMIT)
    mailbox = list_mailbox(request)
    if mailbox is None:
        counts = await store.messages.counts()
    else:
        counts = await store.messages.counts_in(mailbox)
        filter_ = filter_ or Filter(mailbox=mailbox)
    if filter_ is None:
        matching, unread = counts.total, counts.unread
        page = await store.messages.page(start, limit, total=matching)
    else:
        matching, unread = await store.messages.count_matching(filter_)
        page = await store.messages.page(start, limit, filter_, total=matching)
    messages = await summaries(request, page.messages)
    tags = await store.tags.names() if scope(request) is None else []
    listing = shapes.Listing(counts, matching, unread, start, messages, tags)
    return JSONResponse(shapes.MESSAGES_SUMMARY(listing))


@endpoint
async def list_messages(request: Request) -> Response:
    """GET /api/v1/messages: newest first, `limit` of them from `start`."""
    return await _listing(request, None)


@endpoint
async def search_messages(request: Request) -> Response:
    """GET /api/v1/search: the messages a search matches, newest first."""
    return await _listing(request, query_filter(request))


@endpoint
async def set_read(request: Request) -> Response:
    """PUT /api/v1/messages: {"IDs": [...], "Read": bool}; no IDs: every message (or
    those the `Search` field or `search` parameter matches)."""
    guard_change(request)
    data = await json_body(request)
    read = data.get("Read", False)
    if not isinstance(read, bool):
        raise ApiError(400, "Read must be true or false")
    store = store_of(request)
    ids = string_list(data, "IDs")
    if ids:
        await store.set_read(await visible(request, store, ids), read)
        return ok()
    text = data.get("Search") or request.query_params.get("search") or ""
    if not isinstance(text, str):
        raise ApiError(400, "Search must be a string")
    parsed = query.parse(text)
    if parsed.problems:
        raise ApiError(400, "; ".join(parsed.problems))
    await store.set_read_matching(Filter(query=parsed, mailbox=list_mailbox(request)), read)
    return ok()


@endpoint
async def delete_messages(request: Request) -> Response:
    """DELETE /api/v1/messages: {"IDs": [...]}; no IDs (or no body): every message."""
    guard_change(request)
    ids = string_list(await json_body(request), "IDs")
    store = store_of(request)
    if ids:
        await store.delete_messages(await visible(request, store, ids))
    else:
        await store.delete_matching(Filter(mailbox=list_mailbox(request)))
    return ok()


@endpoint
async def delete_search(request: Request) -> Response:
    """DELETE /api/v1/search?query=: every message the search matches."""
    guard_change(request)
    await store_of(request).delete_matching(query_filter(request))
    return ok()
