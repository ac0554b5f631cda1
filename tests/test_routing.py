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
