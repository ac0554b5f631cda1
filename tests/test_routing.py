"""Routing rules: first match wins, domain and address patterns, capture by default."""

from __future__ import annotations

import pytest

from relay import routing
from relay.config import RouteConfig

RULES = (
    RouteConfig(match="*@ourcompany.example", action="relay", upstream="smarthost"),
    RouteConfig(match="blocked.example", action="reject"),
    RouteConfig(match="*.mx.example", action="relay", upstream="mx"),
    RouteConfig(match="ops-*@other.example", action="relay", upstream="smarthost"),
)


@pytest.mark.parametrize(
    ("recipient", "label"),
    [
        ("alice@ourcompany.example", "relay:smarthost"),
        ("Alice@OurCompany.Example", "relay:smarthost"),
        ("bob@blocked.example", "reject"),
        ("bob@sub.blocked.example", "capture"),
        ("x@a.mx.example", "relay:mx"),
        ("x@mx.example", "capture"),
        ("ops-pager@other.example", "relay:smarthost"),
        ("dev@other.example", "capture"),
        ("someone@gmail.example", "capture"),
    ],
)
def test_first_matching_rule_decides(recipient: str, label: str) -> None:
    """Each recipient gets the label of the first rule that matches it, else capture."""
    assert routing.route(recipient, RULES).label == label


def test_no_rules_capture_everything() -> None:
    """With no [[route]] rules every recipient is captured."""
    assert routing.route("anyone@anywhere.example", ()) == routing.CAPTURE


def test_star_matches_every_domain_and_order_matters() -> None:
    """A catch-all after a capture rule only gets what the capture rule left."""
    rules = (
        RouteConfig(match="keep.example", action="capture"),
        RouteConfig(match="*", action="relay", upstream="mx"),
    )
    assert routing.route("a@keep.example", rules).action == "capture"
    assert routing.route("a@else.example", rules).label == "relay:mx"
    assert routing.route("a@else.example", rules).rule == 1


@pytest.mark.parametrize(
    ("rules", "line"),
    [
        ((), "every message is kept, nothing is relayed"),
        (
            (RouteConfig(match="*", action="relay", upstream="mx"),),
            "everything: relay by MX",
        ),
        (
            RULES[:2],
            "*@ourcompany.example: relay via smarthost; blocked.example: reject;"
            " everything else: capture",
        ),
    ],
)
def test_describe_sums_up_the_rules_for_the_start_up_log(
    rules: tuple[RouteConfig, ...], line: str
) -> None:
    """The mode line says what is relayed where and that the rest is captured."""
    assert routing.describe(rules) == line


@pytest.mark.parametrize(
    ("recipient", "words"),
    [
        ("alice@ourcompany.example", "relay via smarthost (rule 1: *@ourcompany.example)"),
        ("bob@blocked.example", "reject (rule 2: blocked.example)"),
        ("x@a.mx.example", "relay by MX (rule 3: *.mx.example)"),
        ("someone@gmail.example", "capture (no rule matches)"),
    ],
)
def test_explain_names_the_route_and_the_rule(recipient: str, words: str) -> None:
    """A recipient's route in words, with the rule that chose it (shown before a release)."""
    assert routing.explain(routing.route(recipient, RULES), RULES) == words


@pytest.mark.parametrize(
    ("route", "domain", "text", "mx", "upstream"),
    [
        ("relay:smarthost", "example.com", "relay:smarthost", False, "smarthost"),
        ("relay:mx", "example.com", "relay:mx:example.com", True, "mx"),
        ("relay:mx", "", "relay:mx:", True, "mx"),
        ("relay:mx-backup", "example.com", "relay:mx-backup", False, "mx-backup"),
    ],
)
def test_a_destination_has_one_text_form(
    route: str, domain: str, text: str, mx: bool, upstream: str
) -> None:
    """A recipient's stored route and domain make one destination, whose text form (the
    queue's group and filter key, the metrics' label) parses back to it."""
    destination = routing.Destination.stored(route, domain)
    assert (str(destination), destination.is_mx, destination.upstream) == (text, mx, upstream)
    assert destination.route == route
    assert routing.Destination.parse(text) == destination


def test_relay_mx_alone_is_every_mx_domain() -> None:
    """ "relay:mx" without a domain parses to the MX route for every domain (a filter), and
    is the route a relay-by-MX decision stores."""
    every = routing.Destination.parse("relay:mx")
    assert (every.is_mx, every.domain, str(every)) == (True, None, "relay:mx")
    assert routing.Destination.named(routing.MX) == every
    assert routing.Destination.mx("a.example") != every


def test_route_all_drops_duplicates_and_refuses_non_addresses() -> None:
    """Each address once (the domain's case aside: first spelling), with its decision; one
    holding a line break gets none, so that it is never routed anywhere."""
    routed = routing.route_all(
        ["alice@ourcompany.example", "alice@OURCOMPANY.example", "x\r\n@ourcompany.example"],
        RULES,
    )
    assert [(r.address, r.decision and r.decision.label) for r in routed] == [
        ("alice@ourcompany.example", "relay:smarthost"),
        ("x\r\n@ourcompany.example", None),
    ]
