"""The message page and its parts: HTML body, text, headers, source, attachments, deliveries.

Mail content is hostile by default: the HTML body is served from its own route under a
Content-Security-Policy that forbids scripts, forms, plugins and remote loads, and shown in
an iframe whose sandbox grants no scripts, forms, same-origin access or top navigation.
The server never fetches anything a message points at; remote images, when the user asks
for them, are loaded by the browser (https only).
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from relay import mime
from relay.status import actions_for
from relay.store import MessageRow
from web import htmlbody
from web.check_tabs import CHECK_TABS, check_tab
from web.pages import navigation, render, safe_next, store_of
from web.security import check_post
from web.structures import structures_of, view_of

TABS = ("html", "text", "headers", "source", "attachments", "deliveries", *CHECK_TABS)
SHOWN = 2 * 1024 * 1024
"""Bytes of the raw message shown on the Source tab, and characters of the text and of
the HTML shown on theirs (a download has all of it): a browser takes seconds to lay out
more, minutes for 30 MB."""
_UNSAFE_FILENAME = re.compile(r"[^\w.\-+()\[\] ]+", re.UNICODE)
_INLINE_TYPES = ("image/png", "image/gif", "image/jpeg", "image/webp", "image/bmp")
RECIPIENT_ACTIONS = ("retry", "hold", "release", "cancel")
MESSAGE_ACTIONS = ("delete", "read", "unread", *RECIPIENT_ACTIONS)


async def _message_or_404(request: Request) -> tuple[MessageRow, bytes]:
    store = store_of(request)
    message_id = request.path_params["id"]
    row = await store.messages.get(message_id)
    raw = await store.messages.raw(message_id) if row else None
    if row is None or raw is None:
        raise HTTPException(404, "no such message")
    return row, raw


async def part_of(request: Request, message_id: str, part_id: str) -> mime.view.Found | None:
    """One part of a stored message and its bytes (None: no such message or part), only
    that part decoded, off the event loop when it is large."""
    raw = await store_of(request).messages.raw(message_id)
    if raw is None:
        return None
    return await structures_of(request).part(message_id, raw, part_id)


def _remote_images(request: Request) -> bool:
    return request.query_params.get("images") == "1"


async def message_page(request: Request) -> Response:
    """One message: summary, warnings, then the chosen tab."""
    row, raw = await _message_or_404(request)
    view = await view_of(request, row.id, raw)
    tab = request.query_params.get("tab") or ("html" if view.html else "text")
    if tab not in TABS:
        raise HTTPException(400, f"tab must be one of {', '.join(TABS)}")
    if not row.read:
        await store_of(request).set_read([row.id], True)
    timeline = await store_of(request).timeline.of_message(row.id) if tab == "deliveries" else []
    source = ""
    if tab == "source":
        source = raw[:SHOWN].decode("utf-8", errors="replace")
    return render(
        request,
        "message.html",
        {
            "message": row,
            "view": view,
            "tab": tab,
            "tabs": TABS,
            "shown": SHOWN,
            "source": source,
            "source_truncated": len(raw) > SHOWN,
            "text": (view.text or "")[:SHOWN],
            "text_truncated": len(view.text or "") > SHOWN,
            "html_truncated": len(view.html or "") > SHOWN,
            "remote": bool(view.html) and htmlbody.has_remote_content(view.html or ""),
            "remote_images": _remote_images(request),
            "sandbox": htmlbody.FRAME_SANDBOX,
            "timeline": timeline,
            "actions_for": actions_for,
            "params": {},
            "checked": await check_tab(request, tab, row, view),
            **await navigation(request),
        },
    )


async def message_source(request: Request) -> Response:
    """The raw message as stored, downloaded as `<id>.eml`."""
    row, raw = await _message_or_404(request)
    return Response(
        raw,
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{row.id}.eml"'},
    )


async def message_html(request: Request) -> Response:
    """The HTML body alone (its first SHOWN characters), for the sandboxed iframe, under a
    strict CSP."""
    row, raw = await _message_or_404(request)
    view = await view_of(request, row.id, raw)
    html = htmlbody.prepare((view.html or "")[:SHOWN], row.id, view.cid_map)
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": htmlbody.csp(_remote_images(request)),
            "X-Frame-Options": "SAMEORIGIN",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


def safe_filename(name: str, fallback: str) -> str:
    """A file name with no path, no control characters and nothing a shell would mind."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_FILENAME.sub("_", base).strip(" ._")
    return cleaned[:200] or fallback


def content_disposition(kind: str, filename: str) -> str:
    """A Content-Disposition value with an ASCII fallback name and the exact UTF-8 one."""
    ascii_name = filename.encode("ascii", errors="ignore").decode().replace('"', "") or "download"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


async def message_part(request: Request) -> Response:
    """One part (an attachment, or a text or HTML body), with its content type and a safe
    file name."""
    found = await part_of(request, request.path_params["id"], request.path_params["part_id"])
    if found is None:
        raise HTTPException(404, "no such part")
    return part_response(*found)


def part_response(attachment: mime.view.Attachment, data: bytes) -> Response:
    """A part as a download (images inline), sandboxed: mail content never runs here."""
    filename = safe_filename(attachment.filename, f"part-{attachment.part_id}")
    inline = attachment.content_type in _INLINE_TYPES  # shown by the browser, never run
    return Response(
        data,
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": content_disposition(
                "inline" if inline else "attachment", filename
            ),
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


async def message_deliveries(request: Request) -> Response:
    """The Deliveries tab's content alone, for live updates."""
    store = store_of(request)
    row = await store.messages.get(request.path_params["id"])
    if row is None:
        raise HTTPException(404, "no such message")
    timeline = await store.timeline.of_message(row.id)
    context = {"message": row, "timeline": timeline, "actions_for": actions_for}
    return render(request, "_deliveries.html", context)


def _recipient_ids(values: list[object]) -> list[int] | None:
    """The recipients a form names (None: all of the message's)."""
    if not values:
        return None
    if not all(isinstance(v, str) and v.isdigit() for v in values):
        raise HTTPException(400, "recipient must be a recipient number")
    return [int(str(v)) for v in values]


async def message_action(request: Request) -> Response:
    """Delete one message, mark it read or unread, or retry, hold, release or cancel its
    recipients (all, or those named by `recipient`): POST with the CSRF token."""
    form = await request.form()
    check_post(request, form)
    message_id = request.path_params["id"]
    action = form.get("action")
    store = store_of(request)
    list_path = str(request.url_for("list").path)
    if action == "delete":
        await store.delete_messages([message_id])
        return RedirectResponse(safe_next(form.get("next"), list_path), status_code=303)
    if action in ("read", "unread"):
        await store.set_read([message_id], action == "read")
        return RedirectResponse(safe_next(form.get("next"), list_path), status_code=303)
    if action in RECIPIENT_ACTIONS:
        ids = _recipient_ids(list(form.getlist("recipient")))
        if await store.messages.get(message_id) is None:
            raise HTTPException(404, "no such message")
        await store.actions.act(str(action), message_id, time.time(), ids)
        back = f"{request.url_for('message', id=message_id).path}?tab=deliveries"
        return RedirectResponse(safe_next(form.get("next"), back), status_code=303)
    raise HTTPException(400, f"action must be one of {', '.join(MESSAGE_ACTIONS)}")
