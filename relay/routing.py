"""Routing (pure): a recipient address → what happens to it.

`[[route]]` rules are tried in order and the first match wins; with no matching rule the
recipient is captured, so a staging box never leaks mail by default. SMTP asks at RCPT
(reject, or relay only for trusted clients), delivery asks which upstream, the web asks
to show where a release would go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from relay import address
from relay.config import RouteConfig

Action = Literal["relay", "capture", "reject"]

MX = "mx"
"""The upstream name that means: deliver to the recipient domain's MX hosts."""


@dataclass(frozen=True)
class Decision:
    """The route of one recipient: the action, the upstream (for relay), the rule index."""

    action: Action
    upstream: str = ""
    rule: int | None = None  # index into the [[route]] rules; None: the default (capture)

    @property
    def label(self) -> str:
        """How the route is stored and shown: "capture", "reject", "relay:NAME"."""
        return f"relay:{self.upstream}" if self.action == "relay" else self.action


CAPTURE = Decision("capture")


def matches(pattern: str, recipient: str) -> bool:
    """Whether a route pattern matches a recipient, case-insensitively.

    A pattern with "@" is a glob over the whole address; otherwise it names the domain:
    "example.com" exactly, "*.example.com" any subdomain of it, "*" every domain.
    """
    pattern = pattern.lower()
    if "@" in pattern:
        local, domain = address.split(recipient)
        full = f"{local}@{domain.rstrip('.')}".lower() if domain else local.lower()
        return fnmatchcase(full, pattern)
    domain = address.domain_of(recipient)
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return domain.endswith(pattern[1:])
    return domain == pattern.rstrip(".")


def route(recipient: str, rules: Sequence[RouteConfig]) -> Decision:
    """The decision of the first rule matching `recipient`, else capture."""
    for index, rule in enumerate(rules):
        if matches(rule.match, recipient):
            return Decision(rule.action, rule.upstream if rule.action == "relay" else "", index)
    return CAPTURE


def describe(rules: Sequence[RouteConfig]) -> str:
    """The rules in one line for the start-up log, e.g. "*@a.example: relay via smarthost;
    everything else: capture"."""
    if not rules:
        return "every message is kept, nothing is relayed"
    parts = []
    for rule in rules:
        what = _action_words(rule.action, rule.upstream)
        parts.append(f"{'everything' if rule.match == '*' else rule.match}: {what}")
    if rules[-1].match != "*":
        parts.append("everything else: capture")
    return "; ".join(parts)


def _action_words(action: str, upstream: str) -> str:
    if action == "relay":
        return "relay by MX" if upstream == MX else f"relay via {upstream}"
    return action


def explain(decision: Decision, rules: Sequence[RouteConfig]) -> str:
    """One recipient's route in words, with the rule that chose it, e.g.
    "relay via smarthost (rule 1: *@a.example)" or "capture (no rule matches)"."""
    what = _action_words(decision.action, decision.upstream)
    if decision.rule is None:
        return f"{what} (no rule matches)"
    return f"{what} (rule {decision.rule + 1}: {rules[decision.rule].match})"
