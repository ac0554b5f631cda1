"""[chaos] and [[chaos.rule]]: failures made on purpose, on the way in (SMTP) and out
(delivery), for test suites and drills.

A rule is the same table in relay.toml and in the chaos API's JSON (`rule_problem` checks
what the types alone cannot, for both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from relay.config.settings import build, setting
from relay.config.values import check_pattern, non_negative
from relay.errors import ConfigError


def _pattern(value: str) -> str | None:
    """A check: empty, or a route pattern."""
    return None if not value else check_pattern(value)


SMTP_STAGES: tuple[str, ...] = ("connect", "helo", "auth", "mail", "rcpt", "data", "data-end")
"""The SMTP stages, in the order a session meets them."""
SMTP_ACTIONS = ("reply", "delay", "disconnect")
DELIVERY_ACTIONS = ("reply", "refused", "timeout")

# Which match keys can hold at which stage: what is known by then.
_KNOWN_FROM = {
    "user": "auth",
    "sender": "mail",
    "recipient": "rcpt",
    "header": "data-end",
}
_DELIVERY_KEYS = ("sender", "recipient", "destination")


@dataclass(frozen=True)
class ChaosMatch:
    """[chaos.rule.match]: what must hold for a rule to apply (every key given)."""

    sender: str = setting(
        "", "Envelope sender pattern, as in routes (*@example.com, example.com, *).", _pattern
    )
    recipient: str = setting(
        "",
        "Recipient pattern, as in routes; at data and data-end any recipient of the"
        " message may match.",
        _pattern,
    )
    user: str = setting("", "Authenticated user (glob, case-insensitive).")
    listener: str = setting("", "Listener name (glob, case-insensitive).")
    header: str = setting(
        "", 'A header of the message, "Name: pattern" (glob on the value; data-end only).'
    )
    destination: str = setting(
        "",
        'Delivery leg: the destination, as the queue names it (glob: "relay:smarthost",'
        ' "relay:mx:*").',
    )

    def given(self) -> dict[str, str]:
        """The keys that are set, with their values."""
        keys = ("sender", "recipient", "user", "listener", "header", "destination")
        return {key: getattr(self, key) for key in keys if getattr(self, key)}


@dataclass(frozen=True)
class ChaosRuleConfig:
    """[[chaos.rule]]: at which stage, for what, what happens, and when."""

    leg: Literal["smtp", "delivery"] = setting(
        "smtp", "smtp: on the way in; delivery: on the way out, for drills."
    )
    stage: Literal["", "connect", "helo", "auth", "mail", "rcpt", "data", "data-end"] = setting(
        "",
        "SMTP leg: connect, helo, auth, mail, rcpt, data (the DATA command) or data-end"
        " (after the final dot, before storing); empty on the delivery leg.",
    )
    match: ChaosMatch = ChaosMatch()
    action: Literal["reply", "delay", "disconnect", "refused", "timeout"] = setting(
        "reply",
        "reply: answer code (SMTP), or act as if the upstream had (delivery); delay: wait"
        " `delay` seconds, then carry on (SMTP); disconnect: close without a reply (SMTP);"
        " refused, timeout: act as if the upstream's connection was refused or timed out"
        " (delivery).",
    )
    code: int = setting(451, "The reply code, 400 to 599.")
    enhanced: str = setting(
        "", 'The enhanced status code (RFC 3463, "4.3.0"); empty: X.0.0 of the code\'s class.'
    )
    text: str = setting("", "The reply text; empty: one that names the rule.")
    delay: float = setting(0.0, "Seconds a delay rule waits.", non_negative)
    first: int = setting(0, "Fire on the first N matches only (0: not this mode).", non_negative)
    every: int = setting(
        0, "Fire on every Nth match: the Nth, 2Nth... (0: not this mode).", non_negative
    )
    probability: float | None = setting(
        None,
        "Fire on this percentage of matches, 0 to 100, drawn from `seed`. None of first,"
        " every, probability: fire on every match.",
    )
    seed: int | None = setting(
        None, "The seed of `probability`: the same seed, the same sequence (unset: a random one)."
    )
    limit: int = setting(0, "Stop firing after this many hits (0: no limit).", non_negative)


@dataclass(frozen=True)
class ChaosConfig:
    """[chaos]: failures on purpose; off unless enabled here or by `relay serve --chaos`."""

    enabled: bool = setting(
        False,
        "Let rules fire and answer the chaos API; off, the API answers 400 and nothing fires."
        " Needs smtp_processes = 1 (rules and their counters live in one process).",
    )
    rule: tuple[ChaosRuleConfig, ...] = setting(
        (), "Rules, tried in order; the chaos API adds more at run time."
    )


def parse_rule(data: Mapping[str, Any], source: str) -> ChaosRuleConfig:
    """A rule from a table (the chaos API's JSON); raises ConfigError naming the key."""
    rule = build(ChaosRuleConfig, data, source)
    check_rule(rule, source)
    return rule


def check_rule(rule: ChaosRuleConfig, source: str, prefix: str = "") -> None:
    """Raise ConfigError (its key after `prefix`) when `rule` is wrong beyond its types."""
    problem = rule_problem(rule)
    if problem is not None:
        key, expected, got = problem
        raise ConfigError(source, prefix + key, expected, got)


def rule_problem(rule: ChaosRuleConfig) -> tuple[str, str, object] | None:
    """(key, what was expected, the value given) for what is wrong with `rule` beyond its
    types; None when it is good."""
    found = _problem(rule)
    if found is None:
        return None
    key, expected = found
    holder: object = rule.match if key.startswith("match.") else rule
    return key, expected, getattr(holder, key.removeprefix("match."))


def _problem(rule: ChaosRuleConfig) -> tuple[str, str] | None:
    if not 400 <= rule.code <= 599:
        return "code", "a reply code from 400 to 599"
    if rule.enhanced and rule.enhanced.split(".")[0] != str(rule.code)[0]:
        return "enhanced", f"an enhanced code of the reply code's class ({str(rule.code)[0]}.x.x)"
    if rule.probability is not None and not 0 <= rule.probability <= 100:
        return "probability", "a percentage from 0 to 100"
    modes = [rule.first > 0, rule.every > 0, rule.probability is not None]
    if sum(modes) > 1:
        return "first", "at most one of first, every and probability"
    if rule.leg == "delivery":
        return _delivery_problem(rule)
    return _smtp_problem(rule)


def _smtp_problem(rule: ChaosRuleConfig) -> tuple[str, str] | None:
    if rule.stage not in SMTP_STAGES:
        return "stage", "one of " + ", ".join(SMTP_STAGES)
    if rule.action not in SMTP_ACTIONS:
        return "action", "one of " + ", ".join(SMTP_ACTIONS) + " on the smtp leg"
    if rule.action == "delay" and rule.delay <= 0:
        return "delay", "seconds greater than 0 for a delay rule"
    if rule.match.destination:
        return "match.destination", "no destination on the smtp leg"
    stage = SMTP_STAGES.index(rule.stage)
    for key, known_from in _KNOWN_FROM.items():
        if getattr(rule.match, key) and stage < SMTP_STAGES.index(known_from):
            return f"match.{key}", f"a stage from {known_from} on (stage is {rule.stage})"
    name, colon, _ = rule.match.header.partition(":")
    if rule.match.header and (not colon or not name.strip()):
        return "match.header", '"Name: pattern"'
    return None


def _delivery_problem(rule: ChaosRuleConfig) -> tuple[str, str] | None:
    if rule.stage:
        return "stage", "no stage on the delivery leg"
    if rule.action not in DELIVERY_ACTIONS:
        return "action", "one of " + ", ".join(DELIVERY_ACTIONS) + " on the delivery leg"
    for key in rule.match.given():
        if key not in _DELIVERY_KEYS:
            return f"match.{key}", "sender, recipient or destination on the delivery leg"
    return None
