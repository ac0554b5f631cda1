"""The OpenAPI description of the chaos routes (web/api/chaos.py), merged into the
document by web/api/openapi.py."""

from __future__ import annotations

from web.api.chaos import CHAOS_RULE, CHAOS_RULES, MATCH_KEYS
from web.api.oas import (
    INTEGER,
    JSON,
    NOT_JSON,
    NUMBER,
    OK,
    STRING,
    body,
    error_response,
    json_response,
    path_param,
    ref,
    schemas,
)

_OFF_OR_BAD = error_response('"Chaos is not enabled", or the body is refused: the error says why')
_TRIGGER: JSON = {
    "type": "object",
    "properties": {
        "ErrorCode": {**INTEGER, "description": "Reply code, 400 to 599 (0 or absent: default)"},
        "Probability": {**INTEGER, "description": "Chance in percent, 0 to 100"},
    },
}
_RULE_REQUEST: JSON = {
    "type": "object",
    "description": "The keys of a [[chaos.rule]] table of relay.toml (docs/api.md)",
    "properties": {
        "leg": STRING,
        "stage": STRING,
        "match": {"type": "object", "properties": dict.fromkeys(MATCH_KEYS, STRING)},
        "action": STRING,
        "code": INTEGER,
        "enhanced": STRING,
        "text": STRING,
        "delay": NUMBER,
        "first": INTEGER,
        "every": INTEGER,
        "probability": NUMBER,
        "seed": INTEGER,
        "limit": INTEGER,
    },
}

SCHEMAS: JSON = {
    "ChaosTrigger": _TRIGGER,
    "ChaosTriggers": {
        "type": "object",
        "properties": {
            "Sender": ref("ChaosTrigger"),
            "Recipient": ref("ChaosTrigger"),
            "Authentication": ref("ChaosTrigger"),
        },
    },
    "ChaosRuleRequest": _RULE_REQUEST,
    **schemas(CHAOS_RULE, CHAOS_RULES),
}

_TRIGGERS = json_response(ref("ChaosTriggers"), "The triggers")

PATHS: JSON = {
    "/api/v1/chaos": {
        "get": {
            "summary": "Mailpit's chaos triggers (Sender, Recipient, Authentication)",
            "responses": {"200": _TRIGGERS, "400": _OFF_OR_BAD},
        },
        "put": {
            "summary": "Set Mailpit's chaos triggers; an omitted one resets, {} resets all",
            "requestBody": body(ref("ChaosTriggers")),
            "responses": {"200": _TRIGGERS, "400": _OFF_OR_BAD},
        },
    },
    "/api/v1/chaos/rules": {
        "get": {
            "summary": "Every chaos rule, in the order they are tried, with its hits",
            "responses": {"200": json_response(CHAOS_RULES.ref), "400": _OFF_OR_BAD},
        },
        "post": {
            "summary": "Add a chaos rule after the others",
            "requestBody": body(ref("ChaosRuleRequest"), required=True),
            "responses": {
                "201": json_response(CHAOS_RULE.ref, "The rule, with its id"),
                "400": _OFF_OR_BAD,
                "415": NOT_JSON,
            },
        },
        "delete": {
            "summary": "Remove every chaos rule (relay.toml's too)",
            "responses": {"200": OK, "400": _OFF_OR_BAD},
        },
    },
    "/api/v1/chaos/rules/{ID}": {
        "delete": {
            "summary": "Remove one chaos rule",
            "parameters": [path_param("ID", "Rule ID", "integer")],
            "responses": {
                "200": OK,
                "400": _OFF_OR_BAD,
                "404": error_response("No such rule"),
            },
        },
    },
}
