"""The OpenAPI description of the webhook and suppression routes (web/api/hooks.py),
merged into the document by web/api/openapi.py."""

from __future__ import annotations

from web.api.hooks import (
    SUPPRESSION,
    WEBHOOK,
    WEBHOOK_ATTEMPT,
    WEBHOOK_EVENT,
    WEBHOOK_EVENT_DETAIL,
)
from web.api.oas import (
    BAD,
    JSON,
    NOT_JSON,
    OK,
    STRING,
    array,
    body,
    error_response,
    json_response,
    path_param,
    query_param,
    schemas,
)

SCHEMAS: JSON = {
    "SuppressionRequest": {
        "type": "object",
        "properties": {"Address": STRING, "Reason": STRING},
        "required": ["Address"],
    },
    **schemas(SUPPRESSION, WEBHOOK, WEBHOOK_EVENT, WEBHOOK_ATTEMPT, WEBHOOK_EVENT_DETAIL),
}

_EVENT_ID = path_param("EventID", "The event ID (X-Relay-Event-ID)")
_NO_EVENT = error_response("No such event")

PATHS: JSON = {
    "/api/v1/suppressions": {
        "get": {
            "summary": "relay: the suppressed addresses, newest first",
            "parameters": [query_param("limit", "At most this many (1000)", "integer")],
            "responses": {"200": json_response(array(SUPPRESSION.ref)), "400": BAD},
        },
        "post": {
            "summary": "relay: suppress an address ([suppression] ttl applies)",
            "requestBody": body({"$ref": "#/components/schemas/SuppressionRequest"}, True),
            "responses": {
                "200": json_response(SUPPRESSION.ref, "The entry"),
                "400": BAD,
                "415": NOT_JSON,
            },
        },
    },
    "/api/v1/suppressions/{Address}": {
        "delete": {
            "summary": "relay: send to a suppressed address again",
            "parameters": [path_param("Address", "The address")],
            "responses": {"200": OK, "404": error_response("The address is not suppressed")},
        },
    },
    "/api/v1/webhooks": {
        "get": {
            "summary": "relay: each [[webhook]], its events by state and its last error",
            "responses": {"200": json_response(array(WEBHOOK.ref))},
        },
    },
    "/api/v1/webhooks/events": {
        "get": {
            "summary": "relay: the newest webhook events",
            "parameters": [
                query_param("webhook", "Only this webhook's (its URL)"),
                query_param("message", "Only this message's (its ID)"),
                query_param("limit", "At most this many (50, up to 500)", "integer"),
            ],
            "responses": {"200": json_response(array(WEBHOOK_EVENT.ref)), "400": BAD},
        },
    },
    "/api/v1/webhooks/events/{EventID}": {
        "get": {
            "summary": "relay: one webhook event, its attempts and its body",
            "parameters": [_EVENT_ID],
            "responses": {"200": json_response(WEBHOOK_EVENT_DETAIL.ref), "404": _NO_EVENT},
        },
    },
    "/api/v1/webhooks/events/{EventID}/resend": {
        "post": {
            "summary": "relay: send a webhook event again (pending from now, whatever its state)",
            "parameters": [_EVENT_ID],
            "responses": {"200": OK, "404": _NO_EVENT, "415": NOT_JSON},
        },
    },
}
