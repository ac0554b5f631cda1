"""The Webhooks page (each [[webhook]], its recent events with their attempts and last
error, "send again") and the Suppressions page (list, add, remove)."""

from __future__ import annotations

import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from relay import address
from relay.store import HookStats
from web.api.hooks import resend
from web.pages import config_of, navigation, render, store_of
from web.security import check_post

RECENT = 50
"""Events shown per webhook."""


async def webhooks_page(request: Request) -> Response:
    """GET: each webhook with its counts, last error and recent events; ?event=ID opens
    one event's attempts and body."""
    store = store_of(request)
    stats = await store.webhooks.stats()
    hooks = [
        (
            hook,
            stats.get(hook.url, HookStats(hook.url)),
            await store.webhooks.recent(hook.url, RECENT),
        )
        for hook in config_of(request).webhook
    ]
    opened = None
    wanted = request.query_params.get("event")
    if wanted:
        opened = await store.webhooks.event(wanted)
        if opened is None:
            raise HTTPException(404, "no such event")
    context: dict[str, Any] = {
        "hooks": hooks,
        "opened": opened,
        "section": "webhooks",
        "params": {},
    }
    return render(request, "webhooks.html", {**context, **await navigation(request)})


async def webhooks_action(request: Request) -> Response:
    """POST: send an event again; back to the page, the event open."""
    form = await request.form()
    check_post(request, form)
    event_id = form.get("event")
    if not isinstance(event_id, str) or not await resend(request, event_id):
        raise HTTPException(404, "no such event")
    url = request.url_for("webhooks").include_query_params(event=event_id)
    return RedirectResponse(str(url), status_code=303)


async def suppressions_page(request: Request) -> Response:
    """GET: the suppressed addresses and a form to add one."""
    entries = await store_of(request).suppressions.entries(time.time())
    context = {"entries": entries, "section": "suppressions", "params": {}, "problem": ""}
    return render(request, "suppressions.html", {**context, **await navigation(request)})


async def suppressions_action(request: Request) -> Response:
    """POST: add an address (with a reason) or remove one; back to the page."""
    form = await request.form()
    check_post(request, form)
    store = store_of(request)
    rcpt, reason = form.get("address"), form.get("reason")
    if not isinstance(rcpt, str) or address.problem(rcpt.strip()) is not None:
        entries = await store.suppressions.entries(time.time())
        context = {"entries": entries, "section": "suppressions", "params": {},
                   "problem": f"“{rcpt}” is not an email address"}  # fmt: skip
        return render(request, "suppressions.html", {**context, **await navigation(request)}, 400)
    if form.get("action") == "remove":
        await store.suppressions.remove(rcpt.strip())
    else:
        why = (
            reason.strip() if isinstance(reason, str) and reason.strip() else "added by an operator"
        )
        await store.suppressions.add(rcpt.strip(), why, time.time())
    return RedirectResponse(str(request.url_for("suppressions")), status_code=303)


def routes() -> list[Route]:
    """The two pages and their forms, for web.app."""
    return [
        Route("/webhooks", webhooks_page, name="webhooks"),
        Route("/webhooks", webhooks_action, methods=["POST"], name="webhooks_action"),
        Route("/suppressions", suppressions_page, name="suppressions"),
        Route("/suppressions", suppressions_action, methods=["POST"], name="suppressions_action"),
    ]
