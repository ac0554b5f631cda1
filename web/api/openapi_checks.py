"""The OpenAPI description of the check routes (web/api/checks.py) and the tag routes
(web/api/tags.py), merged into the document by web/api/openapi.py."""

from __future__ import annotations

from web.api.check_shapes import CHECK_SHAPES, HTML_CHECK, LINK_CHECK, SPAM_CHECK
from web.api.oas import (
    BAD,
    JSON,
    NOT_FOUND,
    OK,
    STRING,
    STRINGS,
    body,
    error_response,
    json_response,
    message_id,
    path_param,
    query_param,
    schemas,
)

_TAG = path_param("Tag", "The tag's name (URL-encoded); any case")
_NO_TAG = error_response("No message has this tag")

PATHS: JSON = {
    "/api/v1/message/{ID}/html-check": {
        "get": {
            "summary": "Which email clients support the HTML and CSS the message uses"
            " (caniemail); run once, then kept",
            "parameters": [message_id()],
            "responses": {
                "200": json_response(HTML_CHECK.ref),
                "404": error_response("No such message, or it has no HTML body"),
            },
        },
    },
    "/api/v1/message/{ID}/link-check": {
        "get": {
            "summary": "Each link's HTTP status (private addresses refused unless allowed);"
            " run once, then kept",
            "parameters": [
                message_id(),
                query_param("follow", "true: follow redirects (at most 5)", "boolean"),
            ],
            "responses": {"200": json_response(LINK_CHECK.ref), "400": BAD, "404": NOT_FOUND},
        },
    },
    "/api/v1/message/{ID}/sa-check": {
        "get": {
            "summary": "SpamAssassin's verdict from spamd ([checks] spamassassin); a verdict"
            " is kept, an Error is not",
            "parameters": [message_id()],
            "responses": {"200": json_response(SPAM_CHECK.ref), "404": NOT_FOUND},
        },
    },
    "/api/v1/tags": {
        "get": {
            "summary": "Every tag in use, sorted",
            "responses": {"200": json_response(STRINGS)},
        },
        "put": {
            "summary": "Give messages exactly these tags (none: remove theirs)",
            "requestBody": body(
                {
                    "type": "object",
                    "required": ["IDs"],
                    "properties": {"IDs": STRINGS, "Tags": STRINGS},
                },
                required=True,
            ),
            "responses": {"200": OK, "400": BAD},
        },
    },
    "/api/v1/tags/{Tag}": {
        "put": {
            "summary": "Rename a tag on every message",
            "parameters": [_TAG],
            "requestBody": body(
                {"type": "object", "required": ["Name"], "properties": {"Name": STRING}},
                required=True,
            ),
            "responses": {"200": OK, "400": BAD, "404": _NO_TAG},
        },
        "delete": {
            "summary": "Take a tag off every message (the messages stay)",
            "parameters": [_TAG],
            "responses": {"200": OK, "404": _NO_TAG},
        },
    },
}

SCHEMAS: JSON = schemas(*CHECK_SHAPES)
