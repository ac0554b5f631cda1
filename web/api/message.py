"""One message, Mailpit's way: its JSON, raw source, headers, parts, rendered bodies, and
release to real recipients."""

from __future__ import annotations

import re
import time

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from relay import address, routing
from web import htmlbody
from web.api import shapes
from web.api.common import (
    ApiError,
    endpoint,
    guard_change,
    json_body,
    message_and_raw,
    message_id,
    string_list,
)
from web.message import part_of, part_response
from web.pages import config_of, store_of
from web.release import MAX_ADDRESSES
from web.structures import view_of


@endpoint
async def get_message(request: Request) -> Response:
    """GET /api/v1/message/{ID}: Mailpit's Message (bodies, parts); marks it read."""
    row, raw = await message_and_raw(request)
    view = await view_of(request, row.id, raw)
    if not row.read:
        await store_of(request).set_read([row.id], True)
    return JSONResponse(shapes.message(row, view))


@endpoint
async def get_headers(request: Request) -> Response:
    """GET /api/v1/message/{ID}/headers: {Name: [values]}, names in alphabetical order."""
    row, raw = await message_and_raw(request)
    return JSONResponse(shapes.headers(await view_of(request, row.id, raw)))


@endpoint
async def get_raw(request: Request) -> Response:
    """GET /api/v1/message/{ID}/raw: the message exactly as stored, as text/plain."""
    _row, raw = await message_and_raw(request)
    return Response(raw, media_type="text/plain")


@endpoint
async def get_part(request: Request) -> Response:
    """GET /api/v1/message/{ID}/part/{PartID}: one part (attachment, inline or body)."""
    found = await part_of(request, await message_id(request), str(request.path_params["PartID"]))
    if found is None:
        raise ApiError(404, "part not found")
    return part_response(*found)


@endpoint
async def view_html(request: Request) -> Response:
    """GET /view/{ID}.html: the HTML body alone, under the UI's strict CSP; 404 without one.

    `cid:` images point at their parts and `<meta http-equiv>` is disabled; with
    `?embed=1` links also open in a new tab.
    """
    row, raw = await message_and_raw(request)
    view = await view_of(request, row.id, raw)
    if not view.html:
        raise ApiError(404, "the message has no HTML body")
    new_tab = request.query_params.get("embed") == "1"
    html = htmlbody.prepare(view.html, row.id, view.cid_map, new_tab=new_tab)
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": htmlbody.csp(remote_images=False),
            "X-Frame-Options": "SAMEORIGIN",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


@endpoint
async def view_text(request: Request) -> Response:
    """GET /view/{ID}.txt: the text body (made from the HTML when there is no text part)."""
    row, raw = await message_and_raw(request)
    view = await view_of(request, row.id, raw)
    return PlainTextResponse(view.text or "")


_NAMED = re.compile(r"[^<>]*<([^<>]*)>\s*")


def release_addresses(values: list[str]) -> list[str]:
    """The envelope addresses of a release's `To` (`Name <a@b>` and `<a@b>` give `a@b`);
    400 naming each that has a line break or is not an address (relay.address.problem)."""
    found: list[str] = []
    problems: list[str] = []
    for value in values:
        why: str | None = "contains a line break"
        rcpt = value
        if "\r" not in value and "\n" not in value:
            named = _NAMED.fullmatch(value)
            rcpt = (named.group(1) if named else value).strip()
            why = address.problem(rcpt)
        if why is None:
            found.append(rcpt)
        else:
            problems.append(f"{value!r} {why}")
    if problems:
        raise ApiError(400, "; ".join(problems))
    if len(found) > MAX_ADDRESSES:
        raise ApiError(400, f"at most {MAX_ADDRESSES} addresses at a time")
    return found


@endpoint
async def release(request: Request) -> Response:
    """POST /api/v1/message/{ID}/release: {"To": [...]}: queue the stored message for
    delivery to these addresses, each through the route [[route]] gives it."""
    guard_change(request)
    to = release_addresses(string_list(await json_body(request), "To"))
    if not to:
        raise ApiError(400, "To must list at least one address")
    wanted = await message_id(request)
    routed = routing.route_all(to, config_of(request).route)
    released = await store_of(request).actions.release_captured(wanted, routed, time.time())
    if released is None:
        raise ApiError(404, "message not found")
    if not released.queued:
        detail = "; ".join(f"{a}: {why}" for a, why in released.skipped.items())
        raise ApiError(400, f"no address could be released ({detail})")
    return PlainTextResponse("ok")
