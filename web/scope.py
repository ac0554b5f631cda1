"""Which mailbox a web user sees (`[mailboxes] mode = "per-user"`).

A `[web.users]` user who is not in `[web] admins` sees only the mailbox of their name:
lists, searches, the wait, "delete all" and bulk changes are narrowed to it, a message of
another mailbox is 404 as if it did not exist, and what acts across mailboxes (the
queue, tags' rename and delete, chaos rules, /metrics, webhooks, the suppression list)
is 403. An admin, the bearer
token, and everyone when no login is asked see every message, and may narrow a list with
`?mailbox=NAME` (or `mailbox:NAME` in a search). In "shared" mode nobody is narrowed.
"""

from __future__ import annotations

import re

from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request

from relay import mailboxes
from relay.config import Config
from relay.store import Store

ADMIN_ONLY = (
    "/queue",
    "/api/v1/queue",
    "/api/v1/recipient/",
    "/api/v1/chaos",
    "/api/v1/tags",
    "/metrics",
    "/webhooks",
    "/api/v1/webhooks",
    "/suppressions",
    "/api/v1/suppressions",
)
"""Paths that act across mailboxes: refused (403) to a user narrowed to one mailbox."""

_BY_ID = re.compile(r"^/(?:message|api/v1/message|view)/([^/]+?)(?:\.html|\.txt)?(?:/|$)")
"""Paths that name one message: its id is the first part after the prefix."""
LATEST = "latest"


def mailbox_of(config: Config, user: str | None) -> str | None:
    """The one mailbox the `[web.users]` user `user` sees, or None for every message
    (the bearer token is not a user: web/security.py asks nothing for it)."""
    admin = user is not None and user in config.web.admins
    return mailboxes.scope_of(config, user, admin)


def scope(request: Request) -> str | None:
    """The mailbox the request's user is narrowed to (None: not narrowed)."""
    narrowed: str | None = getattr(request.state, "mailbox", None)
    return narrowed


def list_mailbox(request: Request, params: QueryParams | FormData | None = None) -> str | None:
    """The mailbox a list is narrowed to: the user's, else the `mailbox` parameter."""
    narrowed = scope(request)
    if narrowed is not None:
        return narrowed
    value = (params if params is not None else request.query_params).get("mailbox")
    return str(value).strip() or None if value else None


async def visible(request: Request, store: Store, ids: list[str]) -> list[str]:
    """Those of `ids` the request's user may see."""
    narrowed = scope(request)
    if narrowed is None:
        return ids
    return await store.mailboxes.within(narrowed, ids)


async def refusal(mailbox: str, path: str, store: Store) -> tuple[int, str] | None:
    """Why a user narrowed to `mailbox` may not have `path` (status and text), or None."""
    if path.startswith(ADMIN_ONLY):
        return 403, "only an admin may use this (it acts across mailboxes)"
    found = _BY_ID.match(path)
    if found is None or found.group(1) == LATEST:
        return None
    if not await store.mailboxes.within(mailbox, [found.group(1)]):
        return 404, "message not found"
    return None
