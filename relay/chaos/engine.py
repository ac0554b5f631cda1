"""`Chaos`: the rules of one relay (from relay.toml, and added over the API), Mailpit's
triggers beside them, and the one question every stage asks: `fire(stage, probe)`.

Rules are tried in the order they were added. A delay that fires adds its seconds and
lets the rules after it be tried; the first reply, disconnect, refusal or timeout that
fires decides, and the rules after it are not asked (their counters do not move).
Everything runs on the event loop of the process that owns the listeners and the worker,
so no lock is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from relay.chaos import header
from relay.chaos.mailpit import TRIGGERS, Triggers
from relay.chaos.rules import DELIVERY, Probe, Rule, Verdict
from relay.config import ChaosConfig, ChaosRuleConfig

log = logging.getLogger(__name__)

CONFIG = "config"
API = "api"
"""Where a rule came from: relay.toml, or the chaos API."""


class Chaos:
    """The chaos of one relay: rules by stage, Mailpit's triggers, the header's hits."""

    def __init__(self, config: ChaosConfig) -> None:
        self._rules: dict[int, Rule] = {}
        self._by_stage: dict[str, tuple[Rule, ...]] = {}
        self._next_id = 1
        self.triggers = Triggers()
        self.header_hits = 0
        for rule in config.rule:
            self.add(rule, CONFIG)

    # --- the rules ------------------------------------------------------------------

    def add(self, config: ChaosRuleConfig, source: str = API) -> Rule:
        """Add a rule (checked already) after the others; return it with its id."""
        rule = Rule(self._next_id, config, source)
        self._next_id += 1
        self._rules[rule.id] = rule
        self._index()
        log.info("chaos: rule %d added (%s): %s", rule.id, source, _words(rule))
        return rule

    def get(self, rule_id: int) -> Rule | None:
        """The rule with this id, if there is one."""
        return self._rules.get(rule_id)

    def remove(self, rule_id: int) -> bool:
        """Remove one rule; whether it was there."""
        gone = self._rules.pop(rule_id, None) is not None
        if gone:
            self._index()
            log.info("chaos: rule %d removed", rule_id)
        return gone

    def clear(self) -> int:
        """Remove every rule (relay.toml's too); how many there were."""
        count = len(self._rules)
        self._rules.clear()
        self._index()
        log.info("chaos: every rule removed (%d)", count)
        return count

    @property
    def rules(self) -> list[Rule]:
        """The rules, in the order they are tried."""
        return list(self._rules.values())

    def _index(self) -> None:
        stages: dict[str, list[Rule]] = {}
        for rule in self._rules.values():
            stages.setdefault(rule.stage, []).append(rule)
        self._by_stage = {stage: tuple(rules) for stage, rules in stages.items()}

    # --- firing ---------------------------------------------------------------------

    def fire(self, stage: str, probe: Probe) -> Verdict | None:
        """What happens at `stage` (an SMTP stage, or DELIVERY) for `probe`; None: nothing."""
        delay, rules = 0.0, []
        for rule in self._by_stage.get(stage, ()):
            if not rule.matches(probe) or not rule.fires():
                continue
            verdict = rule.verdict()
            rules.append(verdict.rule)
            if verdict.action != "delay":
                return _after(verdict, delay)
            delay += verdict.delay
        if stage in self.triggers.stages and (triggered := self.triggers.fire(stage)):
            return _after(triggered, delay)
        return Verdict("delay", delay=delay, rule=",".join(rules)) if delay else None

    def from_header(self, content: bytes) -> tuple[bool, Verdict | None]:
        """Whether the message has X-Relay-Chaos headers, and what they ask for; raises
        header.HeaderError when one cannot be read."""
        requests = header.requests(content)
        if not requests:
            return False, None
        verdict = header.verdict(requests)
        self.header_hits += 1
        return True, verdict

    def hits(self) -> Iterator[tuple[str, str, str, int]]:
        """(rule, leg, stage, hits) of every rule, trigger and the header, for /metrics."""
        for rule in self._rules.values():
            yield rule.label, rule.config.leg, rule.stage, rule.hits
        for name, (stage, _) in TRIGGERS.items():
            yield f"mailpit-{name.lower()}", "smtp", stage, self.triggers.hits[name]
        yield header.RULE, "smtp", "data-end", self.header_hits


def _after(verdict: Verdict, delay: float) -> Verdict:
    """`verdict` after the delays of the rules before it."""
    if not delay:
        return verdict
    return Verdict(
        verdict.action, verdict.code, verdict.enhanced, verdict.text, delay, verdict.rule
    )


def _words(rule: Rule) -> str:
    """A rule in one line, for the log."""
    config = rule.config
    where = "delivery" if rule.stage == DELIVERY else f"at {rule.stage}"
    match = " ".join(f"{k}={v}" for k, v in config.match.given().items()) or "everything"
    what = config.action if config.action != "reply" else f"reply {config.code}"
    return f"{where}, {match}: {what}"
