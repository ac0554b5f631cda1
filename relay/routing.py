"""Routing (pure): a recipient address → what happens to it.

`[[route]]` rules are tried in order and the first match wins; with no matching rule the
recipient is captured, so a staging box never leaks mail by default. SMTP asks at RCPT
(reject, or relay only for trusted clients), delivery asks which upstream, the web asks
to show where a release would go.

A relayed recipient goes to a `Destination`: a named upstream, or the MX hosts of its
domain. Its one text form is what the store groups and filters the queue by, and what
the API, the CLI, the web and the metrics show.
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
_RELAY = "relay:"
MX_ROUTE = _RELAY + MX
"""The route stored on every recipient delivered to its domain's MX hosts."""
MX_PREFIX = MX_ROUTE + ":"
"""How the text form of an MX destination starts: "relay:mx:" and the domain."""
NOT_AN_ADDRESS = "not a valid address"
"""Why an address that holds characters no address may (CR, LF, NUL...) is not routed."""


@dataclass(frozen=True)
class Destination:
    """Where relayed mail goes: a named upstream, or the MX hosts of one domain.

    The store keeps it as two columns of each recipient, its route ("relay:NAME", or
    "relay:mx" for every MX domain) and its domain; its one text form (`str`, `parse`)
    is the route for an upstream ("relay:smarthost") and the route and domain for MX
    ("relay:mx:example.com"). A destination parsed from "relay:mx" alone (`domain`
    None) stands for every MX domain at once, as a queue filter.
    """

    route: str
    domain: str | None = None

    @classmethod
    def named(cls, upstream: str) -> Destination:
        """The destination of a relay route naming `upstream` (MX: every domain's)."""
        return cls(_RELAY + upstream)

    @classmethod
    def mx(cls, domain: str) -> Destination:
        """Direct delivery to the MX hosts of `domain`."""
        return cls(MX_ROUTE, domain)

    @classmethod
    def stored(cls, route: str, domain: str) -> Destination:
        """The destination of a recipient stored with `route` and `domain`."""
        return cls(route, domain) if route == MX_ROUTE else cls(route)

    @classmethod
    def parse(cls, text: str) -> Destination:
        """The destination whose text form is `text` (a route for any other text)."""
        if text.startswith(MX_PREFIX):
            return cls.mx(text.removeprefix(MX_PREFIX))
        return cls(text)

    @property
    def is_mx(self) -> bool:
        """Whether this is direct delivery to MX hosts."""
        return self.route == MX_ROUTE

    @property
    def upstream(self) -> str:
        """The name of its [upstream.NAME] ("mx" for MX delivery)."""
        return self.route.removeprefix(_RELAY)

    @property
    def relays(self) -> bool:
        """Whether its route is a relay route at all ("relay:...")."""
        return self.route.startswith(_RELAY)

    def __str__(self) -> str:
        return self.route if self.domain is None else f"{self.route}:{self.domain}"


@dataclass(frozen=True)
class Decision:
    """The route of one recipient: the action, the upstream (for relay), the rule index."""

    action: Action
    upstream: str = ""
    rule: int | None = None  # index into the [[route]] rules; None: the default (capture)

    @property
    def label(self) -> str:
        """How the route is stored and shown: "capture", "reject", "relay:NAME"."""
        return Destination.named(self.upstream).route if self.action == "relay" else self.action


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


@dataclass(frozen=True)
class Routed:
    """An address with the decision of the rules for it, or None when it is no address
    mail may be sent to."""

    address: str
    decision: Decision | None


def route_all(addresses: Sequence[str], rules: Sequence[RouteConfig]) -> list[Routed]:
    """Each of `addresses` (duplicates dropped, the first spelling kept) with its route;
    an address that holds characters no address may (they could smuggle commands or
    headers) gets none."""
    return [
        Routed(rcpt, route(rcpt, rules) if address.sendable(rcpt) else None)
        for rcpt in address.dedupe(list(addresses))
    ]


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
