"""Building blocks of the OpenAPI document: schema references, responses, parameters."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]


def ref(name: str) -> JSON:
    """A reference to a schema in components."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: JSON, description: str = "OK") -> JSON:
    """A JSON response with `schema`."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def text_response(description: str, media: str = "text/plain") -> JSON:
    """A response whose body is a string of `media` type."""
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


def error_response(description: str) -> JSON:
    """An {"Error": ...} response."""
    return json_response(ref("Error"), description)


def path_param(name: str, description: str, kind: str = "string", **schema: Any) -> JSON:
    """A required path parameter."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": kind, **schema},
        "description": description,
    }


def message_id(description: str = 'Message ID, or "latest" for the newest message') -> JSON:
    """The {ID} path parameter."""
    return path_param("ID", description)


def query_param(name: str, description: str, kind: str = "string", required: bool = False) -> JSON:
    """A query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": {"type": kind},
        "description": description,
    }


def body(schema: JSON, required: bool = False) -> JSON:
    """A JSON request body."""
    return {"required": required, "content": {"application/json": {"schema": schema}}}


OK = text_response('Plain text "ok"')
NOT_FOUND = error_response("No such message (or part)")
BAD = error_response("Bad request: the error says what")
NOT_JSON = error_response("The body is not application/json")
