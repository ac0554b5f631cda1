"""/api/v1/openapi.json describes exactly the API routes the app has."""

from __future__ import annotations

from starlette.routing import Route

from relay.config import Config, StorageConfig
from relay.store import Store
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
