"""relay's own queue API: deferred, failed and held recipients with filters and groups;
retry, hold, release or cancel one recipient, a message's recipients, a list of recipients
or everything a filter matches; and the deliveries of a message, attempt by attempt.

Every read and action is a store function (relay/store/queue_view.py, actions.py,
timeline.py); a state change wakes this process's delivery worker through the store's
events. State-changing calls pass the API guard (common.guard_change).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.status import ACTIONS, SHOWN, applies_to
from relay.store import MessageRow, QueueFilter, Store
from relay.store.queue_view import GroupBy
from relay.store.shape import STATUSES as SHAPE_STATUSES
from relay.store.shape import WAITING
from web.api import queue_shapes as shapes
from web.api.common import ApiError, endpoint, guard_change, int_param, json_body, message_id
from web.pages import store_of

FILTERS = {
    "status": f"One of {', '.join(SHOWN)} (default: all three)",
    "destination": "A destination key: relay:NAME, or relay:mx:DOMAIN",
    "domain": "Recipient domain, exact (case-insensitive)",
    "error": "An error group key, CODE|ENHANCED|normalised text (ErrorGroup)",
    "search": "Words that must all appear in address, sender, subject or reply",
}
"""Filter fields, with what each means: query parameters of GET /api/v1/queue, keys of a
bulk action's Filter (web/api/openapi_queue.py describes both from this)."""
FILTER_KEYS = tuple(FILTERS)
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_IDS = 10_000
"""The most recipient IDs one bulk action takes; act on a Filter for more."""
GROUPINGS: dict[str, GroupBy] = {"destination": "destination", "error": "error"}


def read_filter(values: Mapping[str, Any]) -> QueueFilter:
    """The queue filter in `values` (query parameters or a JSON object); 400 when bad."""
    texts: dict[str, str] = {}
    for key in FILTER_KEYS:
        value = values.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ApiError(400, f"{key} must be a string")
        texts[key] = value
    try:
        return QueueFilter.of(**texts)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def action_of(request: Request) -> str:
    """The path's action; 404 when it is not one."""
    action = str(request.path_params["Action"])
    if action not in ACTIONS:
        raise ApiError(404, f"no such action {action!r}: use one of {', '.join(ACTIONS)}")
    return action


def recipient_ids(data: dict[str, Any]) -> list[int] | None:
    """`data["IDs"]` as recipient IDs (None when absent); 400 when it is not a list of them."""
    value = data.get("IDs")
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ApiError(400, "IDs must be an array of recipient IDs (numbers)")
    if len(value) > MAX_IDS:
        raise ApiError(400, f"at most {MAX_IDS} IDs at a time: act on a Filter for more")
    return value


@endpoint
async def list_queue(request: Request) -> Response:
    """GET /api/v1/queue: deferred, failed and held recipients a filter matches, newest
    first, `limit` of them from `start`, with counts per state."""
    filter_ = read_filter(request.query_params)
    start = int_param(request, "start", 0)
    limit = min(int_param(request, "limit", DEFAULT_LIMIT, low=1), MAX_LIMIT)
    view = store_of(request).queue_view
    page = await view.page(filter_, start, limit)
    listing = shapes.Listing(page, start, await view.counts(filter_), await view.summary())
    return JSONResponse(shapes.QUEUE_PAGE(listing))


@endpoint
async def queue_groups(request: Request) -> Response:
    """GET /api/v1/queue/groups: the recipients a filter matches grouped by destination
    (default) or by error, largest group first."""
    by = GROUPINGS.get(request.query_params.get("by") or "destination")
    if by is None:
        raise ApiError(400, f"by must be one of {', '.join(GROUPINGS)}")
    filter_ = read_filter(request.query_params)
    groups = await store_of(request).queue_view.groups(by, filter_)
    return JSONResponse({"by": by, "groups": [shapes.QUEUE_GROUP(g) for g in groups]})


@endpoint
async def queue_shape(request: Request) -> Response:
    """GET /api/v1/queue/shape: Postfix's qshape, the recipients waiting per destination by
    minutes since their message arrived (`status`, repeated, chooses the states counted)."""
    statuses = request.query_params.getlist("status") or list(WAITING)
    wrong = [s for s in statuses if s not in SHAPE_STATUSES]
    if wrong:
        raise ApiError(400, f"status must be among {', '.join(SHAPE_STATUSES)}, not {wrong[0]!r}")
    found = await store_of(request).queue_shape(time.time(), statuses)
    return JSONResponse(shapes.QUEUE_SHAPE(found))


@endpoint
async def act_on_queue(request: Request) -> Response:
    """POST /api/v1/queue/{Action}: {"IDs": [...]} acts on those recipients, {"Filter":
    {...}} on every deferred, failed or held one it matches; answers {"Changed": n}."""
    guard_change(request)
    action = action_of(request)
    data = await json_body(request)
    ids = recipient_ids(data)
    chosen = data.get("Filter")
    if (ids is None) == (chosen is None):
        raise ApiError(400, "give either IDs (recipient IDs) or Filter ({} matches everything)")
    actions = store_of(request).actions
    if ids is not None:
        changed = await actions.act_on(action, ids, time.time())
    elif isinstance(chosen, dict):
        changed = await actions.act_matching(action, read_filter(chosen), time.time())
    else:
        raise ApiError(400, "Filter must be an object")
    return JSONResponse({"Changed": changed})


def _recipient_number(request: Request) -> int:
    text = str(request.path_params["RID"])
    if not text.isdigit():
        raise ApiError(404, "no such recipient")
    return int(text)


@endpoint
async def act_on_recipient(request: Request) -> Response:
    """POST /api/v1/recipient/{RID}/{Action}: act on one recipient; answers it as it is
    now, 404 when there is none, 409 when the action does not apply to its state."""
    guard_change(request)
    action = action_of(request)
    rid = _recipient_number(request)
    store = store_of(request)
    view = store.queue_view
    if not await view.find([rid]):
        raise ApiError(404, "no such recipient")
    changed = await store.actions.act_on(action, [rid], time.time())
    found = await view.find([rid])
    if not found:
        raise ApiError(404, "no such recipient")
    if not changed:
        raise ApiError(
            409,
            f"recipient {rid} is {found[0].status}: {action} applies to"
            f" {applies_to(action)} recipients",
        )
    return JSONResponse(shapes.QUEUE_RECIPIENT(found[0]))


async def _message_row(request: Request, store: Store) -> MessageRow:
    row = await store.messages.get(await message_id(request))
    if row is None:
        raise ApiError(404, "message not found")
    return row


@endpoint
async def deliveries(request: Request) -> Response:
    """GET /api/v1/message/{ID}/deliveries: each recipient of the message with its status,
    route, last reply, next attempt and every attempt."""
    store = store_of(request)
    row = await _message_row(request, store)
    timeline = await store.timeline.of_message(row.id)
    return JSONResponse(shapes.DELIVERIES((row, timeline)))


@endpoint
async def act_on_message(request: Request) -> Response:
    """POST /api/v1/message/{ID}/deliveries/{Action}: act on the message's recipients
    (those in {"IDs": [...]}, else all it applies to); answers {"Changed": n}."""
    guard_change(request)
    action = action_of(request)
    ids = recipient_ids(await json_body(request))
    store = store_of(request)
    row = await _message_row(request, store)
    changed = await store.actions.act(action, row.id, time.time(), ids)
    return JSONResponse({"Changed": changed})
