"""relay's own routes for webhooks and the suppression list: each webhook with its counts
and last error, its recent events and their attempts, "send again"; the suppressed
addresses, added and removed."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay import address
from relay.config import WebhookConfig
from relay.store import EventRow, HookAttempt, HookStats, Suppressed
from web.api.common import ApiError, endpoint, guard_change, int_param, json_body, ok
from web.api.oas import (
    BOOLEAN,
    INTEGER,
    NULLABLE_INT,
    NULLABLE_TEXT,
    NULLABLE_TIME,
    NUMBER,
    STRING,
    STRINGS,
    TIME,
    Field,
    Shape,
    array,
    described,
)
from web.api.shapes import timestamp
from web.pages import config_of, store_of

MAX_EVENTS = 500


def _time(epoch: float | None) -> str | None:
    return None if epoch is None else timestamp(epoch)


SUPPRESSION: Shape[Suppressed] = Shape(
    "Suppression",
    (
        Field("Address", STRING, lambda s: s.address),
        Field("Since", TIME, lambda s: timestamp(s.created_at)),
        Field("Expires", described(NULLABLE_TIME, "null: never"), lambda s: _time(s.expires_at)),
        Field("Reason", STRING, lambda s: s.reason),
        Field("Enhanced", NULLABLE_TEXT, lambda s: s.enhanced),
    ),
)

Hook = tuple[WebhookConfig, HookStats]

WEBHOOK: Shape[Hook] = Shape(
    "Webhook",
    (
        Field("URL", STRING, lambda h: h[0].url),
        Field("Events", STRINGS, lambda h: list(h[0].events)),
        Field("Match", STRING, lambda h: h[0].match),
        Field("Signed", BOOLEAN, lambda h: bool(h[0].secret)),
        Field("Pending", INTEGER, lambda h: h[1].pending),
        Field("Sent", INTEGER, lambda h: h[1].sent),
        Field("Expired", INTEGER, lambda h: h[1].expired),
        Field("LastError", STRING, lambda h: h[1].last_error),
        Field("LastErrorAt", NULLABLE_TIME, lambda h: _time(h[1].last_error_at)),
    ),
)

WEBHOOK_EVENT: Shape[EventRow] = Shape(
    "WebhookEvent",
    (
        Field("ID", described(STRING, "The event ID (X-Relay-Event-ID)"), lambda e: e.event_id),
        Field("Event", STRING, lambda e: e.event),
        Field("Webhook", STRING, lambda e: e.webhook),
        Field("MessageID", STRING, lambda e: e.message_id),
        Field("Created", TIME, lambda e: timestamp(e.created_at)),
        Field("State", described(STRING, "pending, sent or expired"), lambda e: e.state),
        Field("Attempts", INTEGER, lambda e: e.attempts),
        Field("NextAttempt", NULLABLE_TIME, lambda e: _next(e)),
        Field("Expires", TIME, lambda e: timestamp(e.expires_at)),
        Field("LastError", STRING, lambda e: e.last_error),
        Field("Done", NULLABLE_TIME, lambda e: _time(e.done_at)),
    ),
)

WEBHOOK_ATTEMPT: Shape[HookAttempt] = Shape(
    "WebhookAttempt",
    (
        Field("Started", TIME, lambda a: timestamp(a.started_at)),
        Field("Duration", NUMBER, lambda a: round(a.duration, 3)),
        Field("Status", described(NULLABLE_INT, "null: no answer"), lambda a: a.status),
        Field("Error", STRING, lambda a: a.error),
    ),
)

EventDetail = tuple[EventRow, list[HookAttempt]]

WEBHOOK_EVENT_DETAIL: Shape[EventDetail] = Shape(
    "WebhookEventDetail",
    (
        Field("Event", WEBHOOK_EVENT.ref, lambda d: WEBHOOK_EVENT(d[0])),
        Field("Attempts", array(WEBHOOK_ATTEMPT.ref), lambda d: [WEBHOOK_ATTEMPT(a) for a in d[1]]),
        Field("Body", described(STRING, "The JSON body POSTed"), lambda d: d[0].body),
    ),
)


def _next(event: EventRow) -> str | None:
    return timestamp(event.next_attempt_at) if event.state == "pending" else None


@endpoint
async def list_suppressions(request: Request) -> Response:
    """GET /api/v1/suppressions: the suppressed addresses, newest first."""
    limit = int_param(request, "limit", 1000, low=1)
    entries = await store_of(request).suppressions.entries(time.time(), limit)
    return JSONResponse([SUPPRESSION(e) for e in entries])


@endpoint
async def add_suppression(request: Request) -> Response:
    """POST /api/v1/suppressions: {"Address": "...", "Reason": "..."}: suppress it."""
    guard_change(request)
    data = await json_body(request)
    rcpt, reason = data.get("Address"), data.get("Reason", "added by an operator")
    if not isinstance(rcpt, str) or address.problem(rcpt) is not None:
        raise ApiError(400, "Address must be an email address")
    if not isinstance(reason, str):
        raise ApiError(400, "Reason must be a string")
    entry = await store_of(request).suppressions.add(rcpt, reason, time.time())
    return JSONResponse(SUPPRESSION(entry))


@endpoint
async def delete_suppression(request: Request) -> Response:
    """DELETE /api/v1/suppressions/{Address}: send to the address again."""
    guard_change(request)
    if not await store_of(request).suppressions.remove(str(request.path_params["Address"])):
        raise ApiError(404, "address not suppressed")
    return ok()


@endpoint
async def list_webhooks(request: Request) -> Response:
    """GET /api/v1/webhooks: each configured webhook with its events' counts and last
    error."""
    stats = await store_of(request).webhooks.stats()
    hooks = config_of(request).webhook
    return JSONResponse([WEBHOOK((h, stats.get(h.url, HookStats(h.url)))) for h in hooks])


@endpoint
async def list_events(request: Request) -> Response:
    """GET /api/v1/webhooks/events: the newest events (?webhook=URL, ?message=ID)."""
    limit = min(int_param(request, "limit", 50, low=1), MAX_EVENTS)
    params = request.query_params
    rows = await store_of(request).webhooks.recent(
        params.get("webhook") or None, limit, params.get("message") or None
    )
    return JSONResponse([WEBHOOK_EVENT(row) for row in rows])


@endpoint
async def get_event(request: Request) -> Response:
    """GET /api/v1/webhooks/events/{EventID}: one event, its attempts and its body."""
    found = await store_of(request).webhooks.event(str(request.path_params["EventID"]))
    if found is None:
        raise ApiError(404, "event not found")
    return JSONResponse(WEBHOOK_EVENT_DETAIL(found))


async def resend(request: Request, event_id: str) -> bool:
    """Send an event again, for its webhook's max_age (24 h if it is no longer configured);
    False when there is no such event."""
    store = store_of(request)
    found = await store.webhooks.event(event_id)
    if found is None:
        return False
    hooks = {h.url: h for h in config_of(request).webhook}
    hook = hooks.get(found[0].webhook, WebhookConfig(url=found[0].webhook))
    return await store.webhooks.resend(event_id, time.time(), hook.max_age_seconds)


@endpoint
async def resend_event(request: Request) -> Response:
    """POST /api/v1/webhooks/events/{EventID}/resend: send the event again ("send again")."""
    guard_change(request)
    if not await resend(request, str(request.path_params["EventID"])):
        raise ApiError(404, "event not found")
    return ok()
