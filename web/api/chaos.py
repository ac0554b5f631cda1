"""The chaos API: Mailpit's triggers (GET and PUT /api/v1/chaos, unchanged) and relay's
rules (GET, POST and DELETE /api/v1/chaos/rules, DELETE /api/v1/chaos/rules/{ID}).

With chaos off every route answers 400 {"Error": "Chaos is not enabled"}, as Mailpit's do.
A rule in JSON has the keys of a [[chaos.rule]] table in relay.toml; the answer adds its
id, where it came from, the seed it draws from, and its counters.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay.chaos import Chaos, Rule
from relay.chaos.mailpit import TriggerError
from relay.config import parse_rule
from relay.errors import ConfigError
from web.api.common import ApiError, endpoint, guard_change, json_body, ok
from web.api.oas import INTEGER, NULLABLE_INT, NUMBER, STRING, Field, Shape, array

NOT_ENABLED = "Chaos is not enabled"
NULLABLE_NUMBER = {**NUMBER, "nullable": True}
MATCH_KEYS = ("sender", "recipient", "user", "listener", "header", "destination")

CHAOS_RULE: Shape[Rule] = Shape(
    "ChaosRule",
    (
        Field("id", INTEGER, lambda r: r.id),
        Field("source", STRING, lambda r: r.source),
        Field("leg", STRING, lambda r: r.config.leg),
        Field("stage", STRING, lambda r: r.config.stage),
        Field(
            "match",
            {"type": "object", "properties": dict.fromkeys(MATCH_KEYS, STRING)},
            lambda r: {key: getattr(r.config.match, key) for key in MATCH_KEYS},
        ),
        Field("action", STRING, lambda r: r.config.action),
        Field("code", INTEGER, lambda r: r.config.code),
        Field("enhanced", STRING, lambda r: r.config.enhanced),
        Field("text", STRING, lambda r: r.config.text),
        Field("delay", NUMBER, lambda r: r.config.delay),
        Field("first", INTEGER, lambda r: r.config.first),
        Field("every", INTEGER, lambda r: r.config.every),
        Field("probability", NULLABLE_NUMBER, lambda r: r.config.probability),
        Field("seed", NULLABLE_INT, lambda r: r.seed),
        Field("limit", INTEGER, lambda r: r.config.limit),
        Field("matched", INTEGER, lambda r: r.matched),
        Field("hits", INTEGER, lambda r: r.hits),
    ),
)
"""A chaos rule: its settings (those of [[chaos.rule]]), the seed its probability draws
from (the one given, or the one picked), and how often it matched and fired."""

CHAOS_RULES: Shape[list[Rule]] = Shape(
    "ChaosRules",
    (Field("rules", array(CHAOS_RULE.ref), lambda rules: [CHAOS_RULE(r) for r in rules]),),
)
"""Every rule, in the order they are tried."""


def chaos_of(request: Request) -> Chaos:
    """The relay's chaos; 400 when it is off."""
    chaos: Chaos | None = request.app.state.chaos
    if chaos is None:
        raise ApiError(400, NOT_ENABLED)
    return chaos


@endpoint
async def get_triggers(request: Request) -> Response:
    """Mailpit's GET /api/v1/chaos: the three triggers."""
    return JSONResponse(chaos_of(request).triggers.as_json())


@endpoint
async def set_triggers(request: Request) -> Response:
    """Mailpit's PUT /api/v1/chaos: set all three (omitted ones reset); answers them."""
    chaos = chaos_of(request)
    guard_change(request)
    try:
        chaos.triggers.set(await json_body(request))
    except TriggerError as exc:
        raise ApiError(400, str(exc)) from None
    return JSONResponse(chaos.triggers.as_json())


@endpoint
async def list_rules(request: Request) -> Response:
    """GET /api/v1/chaos/rules: every rule with its counters."""
    return JSONResponse(CHAOS_RULES(chaos_of(request).rules))


@endpoint
async def add_rule(request: Request) -> Response:
    """POST /api/v1/chaos/rules: add a rule after the others; 201 with the rule."""
    chaos = chaos_of(request)
    guard_change(request)
    try:
        config = parse_rule(await json_body(request), "rule")
    except ConfigError as exc:
        got = "" if exc.got is None else f", got {exc.got!r}"
        raise ApiError(400, f"{exc.key}: expected {exc.expected}{got}") from None
    return JSONResponse(CHAOS_RULE(chaos.add(config)), status_code=201)


@endpoint
async def delete_rule(request: Request) -> Response:
    """DELETE /api/v1/chaos/rules/{ID}: remove one rule; 404 when there is none."""
    chaos = chaos_of(request)
    guard_change(request)
    try:
        rule_id = int(request.path_params["ID"])
    except ValueError:
        raise ApiError(404, "no such rule") from None
    if not chaos.remove(rule_id):
        raise ApiError(404, "no such rule")
    return ok()


@endpoint
async def delete_rules(request: Request) -> Response:
    """DELETE /api/v1/chaos/rules: remove every rule (relay.toml's too)."""
    chaos = chaos_of(request)
    guard_change(request)
    chaos.clear()
    return ok()
