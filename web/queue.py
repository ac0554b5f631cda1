"""The queue page for operators: deferred, failed and held recipients grouped by destination
and by error, listed, and retried, held or cancelled one by one, by selection, or all that
match the filter. Every action is a plain POST form; the page refreshes itself live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData, QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from relay.config import Config
from relay.routing import MX, Destination
from relay.status import ACTIONS, SHOWN, actions_for
from relay.store import ErrorKey, Group, QueueFilter, QueueSummary
from relay.store.shape import COLUMNS as SHAPE_COLUMNS
from web.pages import (
    config_of,
    navigation,
    page_count,
    page_number,
    render,
    safe_next,
    store_of,
)
from web.security import check_post

FILTER_KEYS = ("status", "destination", "error", "q")
MAX_SELECTION = 1000
BULK_ACTIONS = ("retry", "release", "hold", "cancel")
ACTION_LABELS = {"retry": "Retry", "hold": "Hold", "release": "Release", "cancel": "Cancel"}
ACTION_HELP = {
    "retry": "queued again, due now",
    "release": "queued again, due now",
    "hold": "paused until released",
    "cancel": "discarded, never sent",
}
ACTION_SCOPE = {
    "retry": "deferred and failed",
    "release": "held",
    "hold": "deferred",
    "cancel": "deferred and held",
}
"""Which of the listed recipients an action on everything matching applies to."""


@dataclass(frozen=True)
class Shown:
    """A destination in words: its name and where it leads."""

    name: str
    detail: str


def destination(key: str, config: Config) -> Shown:
    """How a destination's text form ("relay:NAME", "relay:mx:DOMAIN") is shown."""
    dest = Destination.parse(key)
    if dest.is_mx and dest.domain is not None:
        return Shown(dest.domain or "(no domain)", "direct, to its MX hosts")
    name = dest.upstream
    upstream = config.upstream.get(name)
    if upstream is not None:
        return Shown(name, f"upstream {upstream.host}:{upstream.port}")
    if name == MX:
        return Shown(name, "direct, to the MX hosts")
    return Shown(name, "upstream not in the configuration")


def read_queue_filter(params: QueryParams | FormData) -> tuple[QueueFilter, dict[str, str]]:
    """The queue filter in request parameters (400 on a bad value), and those parameters."""
    values = {k: str(params.get(k) or "").strip() for k in FILTER_KEYS}
    if values["status"] and values["status"] not in SHOWN:
        raise HTTPException(400, f"status must be one of {', '.join(SHOWN)}")
    error = None
    if values["error"]:
        try:
            error = ErrorKey.parse(values["error"])
        except ValueError:
            raise HTTPException(400, "error must be an error group from this page") from None
    filter_ = QueueFilter(
        status=values["status"] or None,
        destination=values["destination"] or None,
        error=error,
        search=values["q"],
    )
    return filter_, {k: v for k, v in values.items() if v}


async def _queue_context(request: Request, summary: QueueSummary | None = None) -> dict[str, Any]:
    filter_, params = read_queue_filter(request.query_params)
    view = store_of(request).queue_view
    config = config_of(request)
    size = config.web.page_size
    number = page_number(request)
    page = await view.page(filter_, (number - 1) * size, size)
    by_destination = await view.groups("destination", filter_)
    by_error = await view.groups("error", filter_)
    chosen_error = _chosen(by_error, params.get("error"))
    shape = await store_of(request).queue_shape(time.time())
    keys = {g.key for g in by_destination} | {r.destination for r in page.rows}
    keys |= {row.destination for row in shape.rows}
    if filter_.destination:
        keys.add(filter_.destination)
    return {
        "page": page,
        "page_number": number,
        "pages": page_count(page.total, size),
        "by_destination": by_destination,
        "by_error": by_error,
        "chosen_error": chosen_error,
        "shape": shape,
        "SHAPE_COLUMNS": SHAPE_COLUMNS,
        "destinations": {key: destination(key, config) for key in keys},
        "status_counts": await view.counts(filter_),
        "queue_summary": summary or await view.summary(),
        "queue_params": params,
        "filtered": bool(set(params) - {"status"}),
        "actions_for": actions_for,
        "ACTION_LABELS": ACTION_LABELS,
        "ACTION_HELP": ACTION_HELP,
        "here": _here(request),
        "now": time.time(),
    }


def _chosen(groups: list[Group], key: str | None) -> Group | None:
    return next((g for g in groups if g.key == key), None) if key else None


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def queue_page(request: Request) -> Response:
    """Deferred, failed and held recipients: groups, the filtered list, and actions."""
    nav = await navigation(request)
    context = await _queue_context(request, nav["queue_summary"])
    return render(request, "queue.html", {**nav, **context, "section": "queue", "params": {}})


async def queue_live(request: Request) -> Response:
    """The queue page's body alone, for live updates."""
    context = await _queue_context(request)
    context["here"] = safe_next(request.query_params.get("next"), context["here"])
    return render(request, "_queue.html", context)


def _one(value: object) -> tuple[str, int] | None:
    """A per-row button's "ACTION:ID" value."""
    if not isinstance(value, str):
        return None
    action, _, number = value.partition(":")
    if action not in ACTIONS or not number.isdigit():
        raise HTTPException(400, f"act must be ACTION:ID with ACTION one of {', '.join(ACTIONS)}")
    return action, int(number)


def _ids(form: FormData) -> list[int]:
    ids = []
    for value in form.getlist("ids")[:MAX_SELECTION]:
        if not isinstance(value, str) or not value.isdigit():
            raise HTTPException(400, "ids must be recipient numbers")
        ids.append(int(value))
    return ids


async def queue_action(request: Request) -> Response:
    """Retry, hold, release or cancel: one recipient (`act=ACTION:ID`), the selected ones
    (`ids`), or every recipient the filter matches (`scope=all`, after a confirmation)."""
    form = await request.form()
    check_post(request, form)
    back = safe_next(form.get("next"), str(request.url_for("queue").path))
    actions = store_of(request).actions
    one = _one(form.get("act"))
    if one is not None:
        await actions.act_on(one[0], [one[1]], time.time())
        return RedirectResponse(back, status_code=303)
    action = form.get("action")
    if not isinstance(action, str) or action not in BULK_ACTIONS:
        raise HTTPException(400, f"action must be one of {', '.join(BULK_ACTIONS)}")
    if form.get("scope") == "all":
        filter_, params = read_queue_filter(form)
        if form.get("confirm") != "yes":
            return render(
                request,
                "queue_confirm.html",
                {
                    "action": action,
                    "total": await actions.affected(action, filter_),
                    "queue_params": params,
                    "next": back,
                    "section": "queue",
                    "ACTION_LABELS": ACTION_LABELS,
                    "ACTION_HELP": ACTION_HELP,
                    "ACTION_SCOPE": ACTION_SCOPE,
                    "params": {},
                    **await navigation(request),
                },
            )
        await actions.act_matching(action, filter_, time.time())
        return RedirectResponse(back, status_code=303)
    await actions.act_on(action, _ids(form), time.time())
    return RedirectResponse(back, status_code=303)
