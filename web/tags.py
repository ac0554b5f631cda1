"""The tag editor of the message page: add tags to a message, or take one off.

A form posts here (with the CSRF token) `add` (tags separated by commas) or `remove` (one
tag); the message then has its tags with those added or that one removed. A name that is
not a tag name (relay.tagging) is refused with a 400 page that says why.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from relay import tagging
from web.pages import safe_next, store_of
from web.security import check_post


def edited(current: tuple[str, ...], add: str, remove: str) -> list[str]:
    """`current` tags with those of `add` (comma-separated) added and `remove` taken off;
    400 naming the added tags that are no names."""
    try:
        added = tagging.named(part for part in add.split(",") if part.strip())
    except ValueError as exc:
        raise HTTPException(400, f"Cannot add that tag: {exc}") from None
    gone = tagging.key(remove)
    return tagging.unique([*(t for t in current if tagging.key(t) != gone), *added])


async def tags_action(request: Request) -> Response:
    """POST /message/{id}/tags: add or remove tags, then back to the message."""
    form = await request.form()
    check_post(request, form)
    message_id = request.path_params["id"]
    store = store_of(request)
    row = await store.messages.get(message_id)
    if row is None:
        raise HTTPException(404, "no such message")
    add, remove = (str(form.get(key) or "") for key in ("add", "remove"))
    await store.set_tags([message_id], edited(row.tags, add, remove))
    back = str(request.url_for("message", id=message_id).path)
    return RedirectResponse(safe_next(form.get("next"), back), status_code=303)
