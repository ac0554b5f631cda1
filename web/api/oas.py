"""Building blocks of the OpenAPI document: schema references, responses, parameters, and
`Shape`, the one description of a JSON object the API answers with, from which both the
object (for a value) and its schema (for the document) are made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

JSON = dict[str, Any]
S = TypeVar("S", contravariant=True)
"""What a shape is made from (a field that reads a base class serves its subclasses)."""

STRING: JSON = {"type": "string"}
INTEGER: JSON = {"type": "integer"}
NUMBER: JSON = {"type": "number"}
BOOLEAN: JSON = {"type": "boolean"}
TIME: JSON = {"type": "string", "format": "date-time"}
NULLABLE_TIME: JSON = {**TIME, "nullable": True}
NULLABLE_INT: JSON = {**INTEGER, "nullable": True}
NULLABLE_TEXT: JSON = {**STRING, "nullable": True}
STRINGS: JSON = {"type": "array", "items": STRING}
COUNTS: JSON = {"type": "object", "additionalProperties": INTEGER}


def array(items: JSON) -> JSON:
    """The schema of a list of `items`."""
    return {"type": "array", "items": items}


def described(schema: JSON, description: str) -> JSON:
    """`schema` with a description."""
    return {**schema, "description": description}


@dataclass(frozen=True)
class Field(Generic[S]):
    """One field of a shape: its name, its schema, and how its value is read from `S`."""

    name: str
    schema: JSON
    value: Callable[[S], Any]


@dataclass(frozen=True)
class Shape(Generic[S]):
    """A JSON object the API answers with, made from a value of type `S`: its fields in
    order, named `name` among the document's schemas."""

    name: str
    fields: tuple[Field[S], ...]

    def __call__(self, source: S) -> JSON:
        """The object for `source`."""
        return {f.name: f.value(source) for f in self.fields}

    @property
    def schema(self) -> JSON:
        """The object's schema."""
        return {"type": "object", "properties": {f.name: f.schema for f in self.fields}}

    @property
    def ref(self) -> JSON:
        """A reference to the object's schema."""
        return ref(self.name)


def schemas(*shapes: Shape[Any]) -> JSON:
    """The document's schemas of `shapes`, by name."""
    return {shape.name: shape.schema for shape in shapes}


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
