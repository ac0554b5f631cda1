"""What every page of the UI shares: the store and config the app serves, rendering a
template, the navigation's counts, paging, and the safe way back after a form."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from relay.config import Config
from relay.store import Store


def store_of(request: Request) -> Store:
    """The store the app serves."""
    store: Store = request.app.state.store
    return store


def config_of(request: Request) -> Config:
    """The configuration the app was made with."""
    config: Config = request.app.state.config
    return config


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """A template response with what every page needs."""
    return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
        request, template, {"csrf": request.state.csrf, **context}, status_code=status
    )


async def navigation(request: Request) -> dict[str, Any]:
    """The sidebar's counts, the configured listeners, the authenticated users, the tags
    with their counts, and the queue's recipients per state; for a user narrowed to one
    mailbox (web/scope.py) only that mailbox's counts."""
    store = store_of(request)
    narrowed: str | None = getattr(request.state, "mailbox", None)
    listeners = [lc.name for lc in config_of(request).listener if not lc.is_pop3]
    if narrowed is not None:
        return {
            "counts": await store.messages.counts_in(narrowed),
            "tags": {},
            "listeners": listeners,
            "users": [],
            "mailboxes": [],
        }
    return {
        "counts": await store.messages.counts(),
        "tags": await store.tags.counts(),
        "listeners": listeners,
        "users": await store.messages.users(),
        "mailboxes": await store.messages.mailboxes(),
        "queue_summary": await store.queue_view.summary(),
    }


def page_number(request: Request) -> int:
    """The `page` query parameter (1 when absent); 400 when it is not a whole number."""
    try:
        return max(1, int(request.query_params.get("page", 1)))
    except ValueError:
        raise HTTPException(400, "page must be a whole number") from None


def page_count(total: int, size: int) -> int:
    """How many pages of `size` rows `total` rows fill (at least one)."""
    return max(1, -(-total // size))


def safe_next(value: object, fallback: str) -> str:
    """A local path to go back to after a form (never another site)."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return fallback
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return fallback
    return value
