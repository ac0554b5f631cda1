"""The OpenAPI 3 description of the API, served at /api/v1/openapi.json: the paths written
beside the routes they describe (tests/test_api_openapi.py checks that the two agree), the
schemas of the answers made from the shapes that make the answers (shapes.py,
queue_shapes.py, info.py), so that the two cannot disagree."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay import __version__
from web.api import openapi_chaos, openapi_checks, openapi_hooks, openapi_queue
from web.api.info import INFO
from web.api.oas import BAD as _BAD
from web.api.oas import JSON, schemas
from web.api.oas import NOT_FOUND as _NOT_FOUND
from web.api.oas import OK as _OK
from web.api.oas import body as _body
from web.api.oas import error_response as _error
from web.api.oas import json_response as _json
from web.api.oas import message_id as _id
from web.api.oas import query_param as _query
from web.api.oas import ref as _ref
from web.api.oas import text_response as _text
from web.api.shapes import ADDRESS, ATTACHMENT, MESSAGE, MESSAGE_SUMMARY, MESSAGES_SUMMARY

_PAGING = [
    _query("start", "Offset of the first message (default 0)", "integer"),
    _query("limit", "Messages to return (default 50, at most 1000)", "integer"),
]
_IDS = {"type": "object", "properties": {"IDs": {"type": "array", "items": {"type": "string"}}}}
_CONTACT = {
    "type": "object",
    "required": ["Email"],
    "properties": {"Email": {"type": "string"}, "Name": {"type": "string"}},
}
_MAILBOX = _query(
    "mailbox", "Only this mailbox (admins; a user narrowed to one mailbox always gets theirs)"
)

SCHEMAS: JSON = {
    "Error": {"type": "object", "properties": {"Error": {"type": "string"}}},
    **schemas(ADDRESS, ATTACHMENT, MESSAGE_SUMMARY, MESSAGES_SUMMARY, MESSAGE),
    "SendRequest": {
        "type": "object",
        "required": ["From"],
        "properties": {
            "From": _CONTACT,
            "To": {"type": "array", "items": _CONTACT},
            "Cc": {"type": "array", "items": _CONTACT},
            "Bcc": {"type": "array", "items": {"type": "string"}},
            "ReplyTo": {"type": "array", "items": _CONTACT},
            "Subject": {"type": "string"},
            "Text": {"type": "string"},
            "HTML": {"type": "string"},
            "Headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "Tags": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Tags of the message (sent in its X-Tags header)",
            },
            "Attachments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["Content", "Filename"],
                    "properties": {
                        "Content": {"type": "string", "format": "byte"},
                        "Filename": {"type": "string"},
                        "ContentType": {"type": "string"},
                        "ContentID": {"type": "string"},
                    },
                },
            },
        },
    },
    **schemas(INFO),
}

PATHS: JSON = {
    "/api/v1/info": {
        "get": {
            "summary": "Version, database and totals",
            "responses": {"200": _json(INFO.ref)},
        },
    },
    "/api/v1/messages": {
        "get": {
            "summary": "List messages, newest first",
            "parameters": [*_PAGING, _MAILBOX],
            "responses": {"200": _json(MESSAGES_SUMMARY.ref), "400": _BAD},
        },
        "put": {
            "summary": "Mark messages read or unread (no IDs: all, or those Search matches)",
            "parameters": [_query("search", "Search whose matches to mark, when no IDs")],
            "requestBody": _body(
                {
                    "type": "object",
                    "properties": {
                        "IDs": {"type": "array", "items": {"type": "string"}},
                        "Read": {"type": "boolean"},
                        "Search": {"type": "string"},
                    },
                }
            ),
            "responses": {"200": _OK, "400": _BAD},
        },
        "delete": {
            "summary": "Delete messages by ID (no IDs: every message)",
            "requestBody": _body(_IDS),
            "responses": {"200": _OK, "400": _BAD},
        },
    },
    "/api/v1/search": {
        "get": {
            "summary": "Messages a search matches, newest first",
            "parameters": [
                _query("query", "Search (docs/api.md)", required=True),
                *_PAGING,
                _MAILBOX,
            ],
            "responses": {"200": _json(MESSAGES_SUMMARY.ref), "400": _BAD},
        },
        "delete": {
            "summary": "Delete every message a search matches",
            "parameters": [_query("query", "Search (docs/api.md)", required=True), _MAILBOX],
            "responses": {"200": _OK, "400": _BAD},
        },
    },
    "/api/v1/message/{ID}": {
        "get": {
            "summary": "One message with bodies and parts; marks it read",
            "parameters": [_id()],
            "responses": {"200": _json(MESSAGE.ref), "404": _NOT_FOUND},
        },
    },
    "/api/v1/message/{ID}/headers": {
        "get": {
            "summary": "Headers as {Name: [values]}",
            "parameters": [_id()],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    }
                ),
                "404": _NOT_FOUND,
            },
        },
    },
    "/api/v1/message/{ID}/raw": {
        "get": {
            "summary": "The message as stored",
            "parameters": [_id()],
            "responses": {"200": _text("Raw message"), "404": _NOT_FOUND},
        },
    },
    "/api/v1/message/{ID}/part/{PartID}": {
        "get": {
            "summary": "One attachment or inline part",
            "parameters": [
                _id(),
                {
                    "name": "PartID",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "PartID from the message's parts",
                },
            ],
            "responses": {"200": _text("The part", "application/octet-stream"), "404": _NOT_FOUND},
        },
    },
    "/api/v1/message/{ID}/release": {
        "post": {
            "summary": "Queue a stored message for delivery to these addresses",
            "parameters": [_id()],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["To"],
                    "properties": {"To": {"type": "array", "items": {"type": "string"}}},
                },
                required=True,
            ),
            "responses": {
                "200": _OK,
                "400": _BAD,
                "404": _NOT_FOUND,
            },
        },
    },
    "/api/v1/send": {
        "post": {
            "summary": "Store a message given as JSON, routed like SMTP mail",
            "requestBody": _body(_ref("SendRequest"), required=True),
            "responses": {
                "200": _json({"type": "object", "properties": {"ID": {"type": "string"}}}),
                "400": _BAD,
                "415": _error("The body is not application/json"),
            },
        },
    },
    "/api/v1/wait": {
        "get": {
            "summary": "Wait until a message matching a search is stored (long poll)",
            "parameters": [
                _query("query", "Search (docs/api.md); empty: any message"),
                _query("timeout", "Seconds to wait (default 30, at most 300)", "number"),
                _query("after", "Only messages stored after this message ID"),
                _MAILBOX,
            ],
            "responses": {
                "200": _json(MESSAGE_SUMMARY.ref),
                "400": _BAD,
                "408": _error("No matching message within the timeout"),
            },
        },
    },
    "/api/v1/openapi.json": {
        "get": {"summary": "This document", "responses": {"200": _json({"type": "object"})}},
    },
    "/view/{ID}.html": {
        "get": {
            "summary": "The HTML body alone, under a strict CSP",
            "parameters": [_id(), _query("embed", "1: links open in a new tab")],
            "responses": {"200": _text("HTML body", "text/html"), "404": _NOT_FOUND},
        },
    },
    "/view/{ID}.txt": {
        "get": {
            "summary": "The text body alone",
            "parameters": [_id()],
            "responses": {"200": _text("Text body"), "404": _NOT_FOUND},
        },
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (text format)",
            "responses": {"200": _text("Metrics")},
        },
    },
    "/readyz": {
        "get": {
            "summary": "Ready: database reachable and every listener accepting",
            "responses": {
                "200": _json({"type": "object"}, "Ready"),
                "503": _json({"type": "object"}, "Not ready: the problems say why"),
            },
        },
    },
    "/healthz": {
        "get": {"summary": "Alive", "responses": {"200": _text('"ok"')}},
    },
}

DOCUMENT: JSON = {
    "openapi": "3.0.3",
    "info": {
        "title": "relay API",
        "version": __version__,
        "description": "Mailpit-compatible message API of relay, with its own additions"
        " (wait for a message, the delivery queue, searches on check results)."
        " docs/api.md lists every difference from Mailpit.",
    },
    "paths": {
        **PATHS,
        **openapi_checks.PATHS,
        **openapi_queue.PATHS,
        **openapi_chaos.PATHS,
        **openapi_hooks.PATHS,
    },
    "components": {
        "schemas": {
            **SCHEMAS,
            **openapi_checks.SCHEMAS,
            **openapi_queue.SCHEMAS,
            **openapi_chaos.SCHEMAS,
            **openapi_hooks.SCHEMAS,
        },
        "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "bearer": {"type": "http", "scheme": "bearer"},
        },
    },
    "security": [{}, {"basic": []}, {"bearer": []}],
}


async def openapi(request: Request) -> Response:
    """GET /api/v1/openapi.json."""
    return JSONResponse(DOCUMENT)
