"""One chaos rule at run time: what it matches, when it fires, and what it did so far.

A rule fires on a match according to its mode: every time; the first N matches; every
Nth match; or with a probability drawn from its own generator, seeded, so that the same
seed gives the same sequence of hits and misses in every run. A `limit` stops it after
that many hits. `matched` counts the matches, `hits` the times it fired.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from fnmatch import fnmatchcase
from functools import cached_property

from relay.config import ChaosRuleConfig
from relay.routing import matches as route_matches

DELIVERY = "delivery"
"""The stage name of the delivery leg (its rules have no stage of their own)."""


class Probe:
    """What is known of a session or a delivery at the stage being checked."""

    def __init__(
        self,
        listener: str = "",
        user: str | None = None,
        sender: str | None = None,
        recipients: tuple[str, ...] = (),
        content: bytes | None = None,
        destination: str = "",
    ) -> None:
        self.listener = listener
        self.user = user
        self.sender = sender
        self.recipients = recipients
        self.content = content
        self.destination = destination

    @cached_property
    def headers(self) -> Message:
        """The message's header section, parsed once when a rule asks for a header."""
        head = (self.content or b"").split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        return BytesHeaderParser(policy=default_policy).parsebytes(head)


@dataclass(frozen=True)
class Verdict:
    """What a stage must do: wait `delay` seconds, then `action` (delay: carry on; reply:
    answer `reply`; disconnect: close without a word; refused, timeout: act as if the
    upstream's connection was refused or timed out). `rule` names who decided."""

    action: str
    code: int = 0
    enhanced: str = ""
    text: str = ""
    delay: float = 0.0
    rule: str = ""

    @property
    def reply(self) -> str:
        """The SMTP reply line: code, enhanced code, text (by default, naming the rule)."""
        text = self.text or f"Chaos: failure injected by rule {self.rule}"
        return f"{self.code} {self.enhanced} {text}"


def _glob(pattern: str, value: str | None) -> bool:
    return value is not None and fnmatchcase(value.lower(), pattern)


class Rule:
    """A rule with its id, its counters and (for `probability`) its seeded generator."""

    def __init__(self, rule_id: int, config: ChaosRuleConfig, source: str) -> None:
        self.id = rule_id
        self.config = config
        self.source = source
        self.stage = config.stage or DELIVERY
        self.matched = 0
        self.hits = 0
        self.seed: int | None = None
        self._draws: random.Random | None = None
        if config.probability is not None:
            self.seed = config.seed if config.seed is not None else secrets.randbits(32)
            self._draws = random.Random(self.seed)
        match = config.match
        self._listener = match.listener.lower()
        self._user = match.user.lower()
        self._destination = match.destination.lower()
        name, _, pattern = match.header.partition(":")
        self._header = (name.strip(), pattern.strip().lower()) if match.header else None

    @property
    def label(self) -> str:
        """The rule's name in replies, metrics and logs."""
        return str(self.id)

    def matches(self, probe: Probe) -> bool:
        """Whether every match key given holds for `probe`."""
        match = self.config.match
        if self._listener and not _glob(self._listener, probe.listener):
            return False
        if self._user and not _glob(self._user, probe.user):
            return False
        if self._destination and not _glob(self._destination, probe.destination):
            return False
        if match.sender and (probe.sender is None or not route_matches(match.sender, probe.sender)):
            return False
        if match.recipient and not any(route_matches(match.recipient, r) for r in probe.recipients):
            return False
        if self._header is not None:
            name, pattern = self._header
            values = probe.headers.get_all(name) or []
            return any(fnmatchcase(str(v).lower(), pattern) for v in values)
        return True

    def fires(self) -> bool:
        """Count a match; whether the rule fires on it (counted as a hit when it does)."""
        self.matched += 1
        config = self.config
        if config.limit and self.hits >= config.limit:
            return False
        if config.first:
            fire = self.matched <= config.first
        elif config.every:
            fire = self.matched % config.every == 0
        elif self._draws is not None and config.probability is not None:
            fire = self._draws.random() * 100 < config.probability
        else:
            fire = True
        if fire:
            self.hits += 1
        return fire

    def verdict(self) -> Verdict:
        """What this rule makes happen when it fires."""
        config = self.config
        if config.action == "delay":
            return Verdict("delay", delay=config.delay, rule=self.label)
        enhanced = config.enhanced or f"{config.code // 100}.0.0"
        return Verdict(config.action, config.code, enhanced, config.text, rule=self.label)
