"""Release a stored message to addresses of the user's choice, showing first the route each
address will take: GET previews (changes nothing), POST releases (with the CSRF token)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from relay import address, routing
from relay.config import Config
from relay.status import Status
from relay.store import MessageRow
from web.pages import config_of, navigation, render, store_of
from web.security import check_post

MAX_ADDRESSES = 100
_SEPARATORS = re.compile(r"[,;\s]+")


@dataclass(frozen=True)
class Plan:
    """What releasing to one address would do: its route in words and where it leads."""

    address: str
    action: str
    route: str
    target: str
    sends: bool
    note: str


def parse_addresses(value: str) -> tuple[list[str], list[str]]:
    """The addresses in a comma-, semicolon- or space-separated list (`<a@b>` is taken as
    `a@b`), and what is wrong with it (line breaks, malformed addresses, too many), in words."""
    if "\r" in value or "\n" in value:
        return [], ["the addresses must not contain line breaks (CR or LF)"]
    items = [a[1:-1] if a[:1] == "<" and a[-1:] == ">" else a for a in _SEPARATORS.split(value)]
    found = address.dedupe([a for a in items if a])
    problems = [f"“{a}” {why}" for a in found if (why := address.problem(a)) is not None]
    if not found:
        problems.append("give at least one address, like name@example.com")
    if len(found) > MAX_ADDRESSES:
        problems.append(f"at most {MAX_ADDRESSES} addresses at a time")
    return found, problems


def _target(decision: routing.Decision, rcpt: str, config: Config) -> str:
    if decision.action != "relay":
        return ""
    if decision.upstream == routing.MX:
        return f"the MX hosts of {address.domain_of(rcpt)}"
    upstream = config.upstream.get(decision.upstream)
    return f"{upstream.host}:{upstream.port}" if upstream else "an upstream not configured"


def plan(addresses: list[str], row: MessageRow, config: Config) -> list[Plan]:
    """Where each address would go, and whether releasing would send to it."""
    current = {address.dedup_key(r.address): r.status for r in row.recipients}
    plans = []
    for rcpt in addresses:
        decision = routing.route(rcpt, config.route)
        status = current.get(address.dedup_key(rcpt))
        sends = decision.action == "relay" and status in (None, Status.CAPTURED.value)
        if decision.action == "capture":
            note = "kept here, not sent"
        elif decision.action == "reject":
            note = "refused by the routes, not sent"
        elif not sends:
            note = f"already {status}: left alone"
        else:
            note = "a new recipient: queued" if status is None else "queued"
        plans.append(
            Plan(
                rcpt,
                decision.action,
                routing.explain(decision, config.route),
                _target(decision, rcpt, config),
                sends,
                note,
            )
        )
    return plans


async def release_page(request: Request) -> Response:
    """GET: the form and, for the addresses given, the route each will take.
    POST: release the message to them (400 with the reasons if any is malformed)."""
    store = store_of(request)
    row = await store.messages.get(request.path_params["id"])
    if row is None:
        raise HTTPException(404, "no such message")
    config = config_of(request)
    posted = request.method == "POST"
    if posted:
        form = await request.form()
        check_post(request, form)
        given = form.get("addresses")
        value = given if isinstance(given, str) else ""
    elif "addresses" in request.query_params:
        value = request.query_params["addresses"]
    else:  # first visit: the captured recipients, to release as they are
        value = ", ".join(r.address for r in row.recipients if r.status == Status.CAPTURED.value)
    asked = posted or "addresses" in request.query_params
    addresses, problems = parse_addresses(value) if value or asked else ([], [])
    context = {
        "message": row,
        "value": value.replace("\r", " ").replace("\n", " "),
        "problems": problems,
        "plans": [] if problems else plan(addresses, row, config),
        "released": None,
        "params": {},
        **await navigation(request),
    }
    if problems:
        return render(request, "release.html", context, status=400)
    if posted:
        routed = routing.route_all(addresses, config.route)
        released = await store.actions.release_captured(row.id, routed, time.time())
        if released is None:
            raise HTTPException(404, "no such message")
        context["released"] = released
    return render(request, "release.html", context)
