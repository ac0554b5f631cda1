"""/api/v1/openapi.json describes exactly the API routes the app has, and the shapes of
what they answer."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from relay.config import Config, StorageConfig
from relay.store import Store
from tests.queue_seed import seed_queue
from tests.webkit import web_client
from web import create_app
from web.api.openapi import DOCUMENT

DESCRIBED_PREFIXES = ("/api/", "/view/", "/metrics", "/readyz", "/healthz")
METHODS = {"get", "put", "post", "delete", "patch"}


def app_routes() -> set[tuple[str, str]]:
    """(path, method) of every API route the Starlette app serves (HEAD left out)."""
    unopened = Store(StorageConfig(url="sqlite+aiosqlite:///never-opened.db"))
    app = create_app(Config(), unopened)
    found = set()
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith(DESCRIBED_PREFIXES):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((route.path, method.lower()))
    return found


def described() -> set[tuple[str, str]]:
    """(path, method) of every operation in the OpenAPI document."""
    return {
        (path, method)
        for path, operations in DOCUMENT["paths"].items()
        for method in operations
        if method in METHODS
    }


def test_every_route_is_described_and_every_description_is_a_route() -> None:
    """The document and the routes list the same (path, method) pairs."""
    routes = app_routes()
    assert len(routes) > 15
    assert routes - described() == set(), "routes missing from the OpenAPI document"
    assert described() - routes == set(), "described routes the app does not have"


def test_path_parameters_are_declared() -> None:
    """Every {param} in a described path is declared as a path parameter of each operation."""
    for path, operations in DOCUMENT["paths"].items():
        wanted = {part.strip("{}").split("}")[0] for part in path.split("/") if "{" in part}
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == wanted, f"{method.upper()} {path}"


def test_references_resolve() -> None:
    """Every $ref in the document names a schema it defines."""
    schemas = DOCUMENT["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(DOCUMENT):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


async def test_document_is_served(sqlite_store: Store) -> None:
    """GET /api/v1/openapi.json returns the document as JSON."""
    async with web_client(sqlite_store) as web:
        response = await web.get("/api/v1/openapi.json")
    assert response.json()["openapi"].startswith("3.") and response.json() == DOCUMENT


SCALARS = {"string": str, "integer": int, "number": (int, float), "boolean": bool}


def problems(value: object, schema: dict[str, Any], where: str = "") -> list[str]:
    """Where `value` differs from `schema` of the document: an object's keys other than its
    properties, a value of another type, a null that may not be (empty: it conforms)."""
    if "$ref" in schema:
        named = DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        schema = {**named, **{k: v for k, v in schema.items() if k != "$ref"}}
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null"]
    kind = schema.get("type")
    if kind == "array":
        assert isinstance(value, list), where
        return [
            p for i, v in enumerate(value) for p in problems(v, schema["items"], f"{where}[{i}]")
        ]
    if kind == "object":
        assert isinstance(value, dict), where
        if "properties" in schema:
            if set(value) != set(schema["properties"]):
                return [f"{where}: {sorted(set(value) ^ set(schema['properties']))}"]
            fields = schema["properties"]
            return [p for k, v in value.items() for p in problems(v, fields[k], f"{where}.{k}")]
        inner = schema.get("additionalProperties", {})
        return [p for k, v in value.items() for p in problems(v, inner, f"{where}.{k}")]
    expected = SCALARS[kind]
    wrong = not isinstance(value, expected) or (kind != "boolean" and isinstance(value, bool))
    return [f"{where}: {value!r} is no {kind}"] if wrong else []


async def test_answers_have_the_shapes_the_document_gives(sqlite_store: Store) -> None:
    """What the read routes answer, on a queue with failures, retries and attempts, has
    exactly the fields and types of the document's 200 schema (nothing more, nothing less)."""
    message_ids = await seed_queue(sqlite_store)
    first = message_ids[0]
    paths = [
        "/api/v1/info",
        "/api/v1/messages",
        "/api/v1/search?query=receipt",
        f"/api/v1/message/{first}",
        f"/api/v1/message/{first}/deliveries",
        "/api/v1/queue",
        "/api/v1/queue/groups?by=destination",
        "/api/v1/queue/groups?by=error",
        "/api/v1/queue/shape",
        "/api/v1/queue/shape?status=held&status=deferred",
    ]
    async with web_client(sqlite_store) as web:
        for path in paths:
            response = await web.get(path)
            assert response.status_code == 200, path
            template = path.split("?")[0].replace(first, "{ID}")
            answer = DOCUMENT["paths"][template]["get"]["responses"]["200"]
            schema = answer["content"]["application/json"]["schema"]
            assert problems(response.json(), schema, path) == []
