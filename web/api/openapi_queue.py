"""The OpenAPI description of relay's own queue routes (web/api/queue.py), merged into the
document by web/api/openapi.py."""

from __future__ import annotations

from relay.status import ACTIONS, SHOWN
from web.api.oas import (
    BAD,
    JSON,
    NOT_JSON,
    body,
    error_response,
    json_response,
    message_id,
    path_param,
    query_param,
    ref,
)

_NULLABLE_TIME = {"type": "string", "format": "date-time", "nullable": True}
_NULLABLE_INT = {"type": "integer", "nullable": True}
_NULLABLE_TEXT = {"type": "string", "nullable": True}
_ACTION_LIST = {"type": "array", "items": {"type": "string", "enum": list(ACTIONS)}}

_ACTION = path_param(
    "Action",
    "retry (deferred, failed: queued again, due now), hold (queued, deferred), release"
    " (held: queued again, due now) or cancel (queued, deferred, held: never sent)",
    enum=list(ACTIONS),
)
_FILTER_PARAMS = [
    query_param("status", f"One of {', '.join(SHOWN)} (default: all three)"),
    query_param("destination", "A destination key: relay:NAME, or relay:mx:DOMAIN"),
    query_param("domain", "Recipient domain, exact (case-insensitive)"),
    query_param("error", "An error group key, CODE|ENHANCED|normalised text (ErrorGroup)"),
    query_param("search", "Words that must all appear in address, sender, subject or reply"),
]
_CHANGED = json_response(
    {"type": "object", "properties": {"Changed": {"type": "integer"}}},
    "How many recipients changed state",
)
_NO_MESSAGE = error_response("No such message")
_NO_ACTION = error_response("No such message, or no such action")

SCHEMAS: JSON = {
    "QueueFilter": {
        "type": "object",
        "description": "Every field optional; {} matches every deferred, failed or held recipient",
        "properties": {
            "status": {"type": "string", "enum": list(SHOWN)},
            "destination": {"type": "string"},
            "domain": {"type": "string"},
            "error": {"type": "string"},
            "search": {"type": "string"},
        },
    },
    "QueueRecipient": {
        "type": "object",
        "properties": {
            "ID": {"type": "integer", "description": "Recipient ID"},
            "Message": {"type": "string", "description": "ID of its message"},
            "Address": {"type": "string"},
            "Route": {"type": "string"},
            "Destination": {"type": "string"},
            "Status": {"type": "string"},
            "Attempts": {"type": "integer"},
            "NextAttempt": _NULLABLE_TIME,
            "LastCode": _NULLABLE_INT,
            "LastEnhanced": _NULLABLE_TEXT,
            "LastText": _NULLABLE_TEXT,
            "ErrorGroup": {"type": "string"},
            "Updated": {"type": "string", "format": "date-time"},
            "Received": {"type": "string", "format": "date-time"},
            "MailFrom": {"type": "string"},
            "Subject": {"type": "string"},
            "Actions": _ACTION_LIST,
        },
    },
    "QueuePage": {
        "type": "object",
        "properties": {
            "total": {"type": "integer"},
            "start": {"type": "integer"},
            "count": {"type": "integer"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "summary": {"type": "object", "additionalProperties": {"type": "integer"}},
            "recipients": {"type": "array", "items": ref("QueueRecipient")},
        },
    },
    "QueueGroup": {
        "type": "object",
        "properties": {
            "Key": {"type": "string"},
            "Count": {"type": "integer"},
            "Deferred": {"type": "integer"},
            "Failed": {"type": "integer"},
            "Held": {"type": "integer"},
            "Oldest": {"type": "string", "format": "date-time"},
            "NextAttempt": _NULLABLE_TIME,
            "Code": _NULLABLE_INT,
            "Enhanced": _NULLABLE_TEXT,
            "Sample": {"type": "string"},
        },
    },
    "Attempt": {
        "type": "object",
        "properties": {
            "Time": {"type": "string", "format": "date-time"},
            "Duration": {"type": "number"},
            "Host": {"type": "string"},
            "Code": _NULLABLE_INT,
            "Enhanced": _NULLABLE_TEXT,
            "Text": {"type": "string"},
        },
    },
    "Delivery": {
        "type": "object",
        "properties": {
            "ID": {"type": "integer", "description": "Recipient ID"},
            "Address": {"type": "string"},
            "Route": {"type": "string"},
            "Status": {"type": "string"},
            "Attempts": {"type": "integer"},
            "NextAttempt": _NULLABLE_TIME,
            "LastCode": _NULLABLE_INT,
            "LastEnhanced": _NULLABLE_TEXT,
            "LastText": _NULLABLE_TEXT,
            "Actions": _ACTION_LIST,
            "History": {"type": "array", "items": ref("Attempt")},
        },
    },
    "Deliveries": {
        "type": "object",
        "properties": {
            "ID": {"type": "string"},
            "Status": {"type": "string"},
            "Recipients": {"type": "array", "items": ref("Delivery")},
        },
    },
}

_IDS = {"IDs": {"type": "array", "items": {"type": "integer"}, "description": "Recipient IDs"}}

PATHS: JSON = {
    "/api/v1/queue": {
        "get": {
            "summary": "Deferred, failed and held recipients, newest first",
            "parameters": [
                *_FILTER_PARAMS,
                query_param("start", "Offset of the first recipient (default 0)", "integer"),
                query_param("limit", "Recipients to return (default 50, at most 1000)", "integer"),
            ],
            "responses": {"200": json_response(ref("QueuePage")), "400": BAD},
        },
    },
    "/api/v1/queue/groups": {
        "get": {
            "summary": "The recipients a filter matches, grouped by destination or by error",
            "parameters": [
                query_param("by", "destination (default) or error"),
                *_FILTER_PARAMS,
            ],
            "responses": {
                "200": json_response(
                    {
                        "type": "object",
                        "properties": {
                            "by": {"type": "string"},
                            "groups": {"type": "array", "items": ref("QueueGroup")},
                        },
                    }
                ),
                "400": BAD,
            },
        },
    },
    "/api/v1/queue/{Action}": {
        "post": {
            "summary": "Act on the recipients listed in IDs, or on all a Filter matches",
            "parameters": [_ACTION],
            "requestBody": body(
                {"type": "object", "properties": {**_IDS, "Filter": ref("QueueFilter")}},
                required=True,
            ),
            "responses": {
                "200": _CHANGED,
                "400": BAD,
                "404": error_response("No such action"),
                "415": NOT_JSON,
            },
        },
    },
    "/api/v1/recipient/{RID}/{Action}": {
        "post": {
            "summary": "Act on one recipient; answers it as it is now",
            "parameters": [path_param("RID", "Recipient ID", "integer"), _ACTION],
            "responses": {
                "200": json_response(ref("QueueRecipient")),
                "404": error_response("No such recipient, or no such action"),
                "409": error_response("The action does not apply to the recipient's state"),
                "415": NOT_JSON,
            },
        },
    },
    "/api/v1/message/{ID}/deliveries": {
        "get": {
            "summary": "Each recipient of a message with its status, route and attempts",
            "parameters": [message_id()],
            "responses": {"200": json_response(ref("Deliveries")), "404": _NO_MESSAGE},
        },
    },
    "/api/v1/message/{ID}/deliveries/{Action}": {
        "post": {
            "summary": "Act on a message's recipients (those in IDs, else all)",
            "parameters": [message_id(), _ACTION],
            "requestBody": body({"type": "object", "properties": _IDS}),
            "responses": {"200": _CHANGED, "400": BAD, "404": _NO_ACTION, "415": NOT_JSON},
        },
    },
}
