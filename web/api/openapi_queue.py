"""The OpenAPI description of relay's own queue routes (web/api/queue.py), merged into the
document by web/api/openapi.py."""

from __future__ import annotations

from relay.status import ACTIONS, SHOWN
from web.api.oas import (
    BAD,
    JSON,
    NOT_JSON,
    STRING,
    body,
    error_response,
    json_response,
    message_id,
    path_param,
    query_param,
    ref,
    schemas,
)
from web.api.queue import FILTERS
from web.api.queue_shapes import (
    ATTEMPT,
    DELIVERIES,
    DELIVERY,
    QUEUE_GROUP,
    QUEUE_PAGE,
    QUEUE_RECIPIENT,
    QUEUE_SHAPE,
    QUEUE_SHAPE_ROW,
)

_ACTION = path_param(
    "Action",
    "retry (deferred, failed: queued again, due now), hold (queued, deferred), release"
    " (held: queued again, due now) or cancel (queued, deferred, held: never sent)",
    enum=list(ACTIONS),
)
_FILTER_PARAMS = [query_param(key, words) for key, words in FILTERS.items()]
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
            key: {**STRING, "enum": list(SHOWN)} if key == "status" else STRING for key in FILTERS
        },
    },
    **schemas(
        QUEUE_RECIPIENT,
        QUEUE_PAGE,
        QUEUE_GROUP,
        QUEUE_SHAPE_ROW,
        QUEUE_SHAPE,
        ATTEMPT,
        DELIVERY,
        DELIVERIES,
    ),
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
            "responses": {"200": json_response(QUEUE_PAGE.ref), "400": BAD},
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
                            "groups": {"type": "array", "items": QUEUE_GROUP.ref},
                        },
                    }
                ),
                "400": BAD,
            },
        },
    },
    "/api/v1/queue/shape": {
        "get": {
            "summary": "Postfix's qshape: recipients waiting per destination, by minutes since"
            " their message arrived",
            "parameters": [
                query_param(
                    "status",
                    "A state to count, repeated for several: queued, sending, deferred, held"
                    " (default: queued, sending and deferred)",
                )
            ],
            "responses": {"200": json_response(QUEUE_SHAPE.ref), "400": BAD},
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
                "200": json_response(QUEUE_RECIPIENT.ref),
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
            "responses": {"200": json_response(DELIVERIES.ref), "404": _NO_MESSAGE},
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
