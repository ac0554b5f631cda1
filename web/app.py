"""The Starlette application: routes, templates, static files, security, shared state."""

from __future__ import annotations

import functools
import hashlib
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from relay.chaos import Chaos
from relay.config import Config
from relay.metrics import Metrics
from relay.store import Store
from web import api, hooks, listing, live, message, pages, queue, release, scope, tags
from web.checks import CheckRuns
from web.ops import Readiness
from web.rendering import make_templates
from web.security import CsrfTokens, SecurityMiddleware
from web.structures import Structures

HERE = Path(__file__).parent


async def healthz(request: Request) -> PlainTextResponse:
    """Alive: the process answers HTTP."""
    return PlainTextResponse("ok\n")


async def http_error(request: Request, exc: Exception) -> Response:
    """An HTTP error as a small page (or plain text for non-page clients)."""
    assert isinstance(exc, HTTPException)
    wants_html = "text/html" in request.headers.get("accept", "")
    if not wants_html or not hasattr(request.state, "csrf"):
        return PlainTextResponse(f"{exc.detail}\n", status_code=exc.status_code)
    return pages.render(
        request,
        "error.html",
        {"status": exc.status_code, "detail": exc.detail, "params": {}},
        status=exc.status_code,
    )


def csrf_key(secret: str) -> bytes | None:
    """The CSRF signing key for `[web] secret`; None (a random key) when it is empty."""
    return hashlib.sha256(b"relay csrf\0" + secret.encode()).digest() if secret else None


def _security(config: Config) -> Middleware:
    """The security middleware: login, CSRF, headers, and each user's mailbox."""
    return Middleware(
        SecurityMiddleware,
        config=config.web,
        tokens=CsrfTokens(csrf_key(config.web.secret)),
        mailbox_of=functools.partial(scope.mailbox_of, config),
    )


def create_app(
    config: Config,
    store: Store,
    metrics: Metrics | None = None,
    ready: Readiness | None = None,
    chaos: Chaos | None = None,
) -> Starlette:
    """The web app for `config`, reading and acting on `store`; /metrics shows `metrics`
    and /readyz asks `ready` (without it: whether the database answers); the chaos API
    changes `chaos` (None: chaos is off, and the API says so)."""
    app = Starlette(
        routes=[
            Route("/", listing.message_list, name="list"),
            Route("/messages/action", listing.bulk_action, methods=["POST"], name="bulk"),
            Route("/live/rows", listing.live_rows, name="live_rows"),
            Route("/live/nav", listing.live_nav, name="live_nav"),
            Route("/events", live.events, name="events"),
            Route("/message/{id}", message.message_page, name="message"),
            Route(
                "/message/{id}/action",
                message.message_action,
                methods=["POST"],
                name="message_action",
            ),
            Route("/message/{id}/deliveries", message.message_deliveries, name="deliveries"),
            Route("/message/{id}/tags", tags.tags_action, methods=["POST"], name="message_tags"),
            Route(
                "/message/{id}/release",
                release.release_page,
                methods=["GET", "POST"],
                name="release",
            ),
            Route("/message/{id}/source.eml", message.message_source, name="source"),
            Route("/message/{id}/body.html", message.message_html, name="html_body"),
            Route("/message/{id}/part/{part_id}", message.message_part, name="part"),
            Route("/queue", queue.queue_page, name="queue"),
            Route("/queue/action", queue.queue_action, methods=["POST"], name="queue_action"),
            Route("/queue/live", queue.queue_live, name="queue_live"),
            *hooks.routes(),
            Route("/healthz", healthz, name="healthz"),
            *api.routes(),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[_security(config)],
        exception_handlers={HTTPException: http_error},
    )
    app.state.config = config
    app.state.store = store
    app.state.metrics = metrics or Metrics()
    app.state.ready = ready
    app.state.chaos = chaos
    app.state.started = time.monotonic()
    app.state.templates = make_templates(HERE / "templates")
    app.state.structures = Structures()
    app.state.checks = CheckRuns()
    return app
