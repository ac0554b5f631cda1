"""Mailpit's chaos triggers, as its API sets them (GET and PUT /api/v1/chaos).

Three triggers, each a reply code and a whole-number probability: Sender fails MAIL FROM,
Recipient fails RCPT TO, Authentication fails AUTH. Defaults 451, 451 and 535, probability
0 (off). A PUT sets all three: an omitted trigger goes back to its default, `{}` resets
them all; a code outside 400-599 or a probability outside 0-100 is refused (and, unlike
Mailpit, nothing is changed then). They are random, as in Mailpit, and sit beside the
rules (tried after them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from relay.chaos.rules import Verdict

TRIGGERS = {"Sender": ("mail", 451), "Recipient": ("rcpt", 451), "Authentication": ("auth", 535)}
"""Each trigger's name, its stage and its default code."""
_WORDS = {"Sender": "sender", "Recipient": "recipient", "Authentication": "authentication"}


class TriggerError(ValueError):
    """A PUT body Mailpit would refuse; the message is Mailpit's words."""


@dataclass(frozen=True)
class Trigger:
    """One trigger: the code it answers and how often, in percent."""

    error_code: int
    probability: int


def _number(value: Any, name: str, key: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TriggerError(f"{name}.{key} must be a whole number")
    return value


def _trigger(name: str, value: Any) -> Trigger:
    """The trigger `name` from a PUT body's value (absent: the default, off)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise TriggerError(f"{name} must be an object")
    code = _number(value.get("ErrorCode"), name, "ErrorCode") or TRIGGERS[name][1]
    probability = _number(value.get("Probability"), name, "Probability")
    if not 400 <= code <= 599:
        raise TriggerError("error code must be between 400 and 599")
    if not 0 <= probability <= 100:
        raise TriggerError("probability must be between 0 and 100")
    return Trigger(code, probability)


class Triggers:
    """The three triggers of one relay, and their hits."""

    def __init__(self) -> None:
        self._draws = random.Random()
        self.triggers = {name: Trigger(code, 0) for name, (_, code) in TRIGGERS.items()}
        self.hits = dict.fromkeys(TRIGGERS, 0)
        self.stages: frozenset[str] = frozenset()

    def as_json(self) -> dict[str, dict[str, int]]:
        """Mailpit's ChaosTriggers object."""
        return {
            name: {"ErrorCode": t.error_code, "Probability": t.probability}
            for name, t in self.triggers.items()
        }

    def set(self, body: dict[str, Any]) -> None:
        """Set all three from a PUT body; raises TriggerError (changing nothing)."""
        new = {name: _trigger(name, body.get(name)) for name in TRIGGERS}
        self.triggers = new
        self.stages = frozenset(TRIGGERS[n][0] for n, t in new.items() if t.probability)

    def fire(self, stage: str) -> Verdict | None:
        """The failure of the trigger at `stage`, when its draw says so."""
        for name, (at, _) in TRIGGERS.items():
            trigger = self.triggers[name]
            if at == stage and self._draws.randrange(100) < trigger.probability:
                self.hits[name] += 1
                code = trigger.error_code
                text = f"Chaos {_WORDS[name]} error"
                return Verdict(
                    "reply", code, f"{code // 100}.0.0", text, rule=f"mailpit-{_WORDS[name]}"
                )
        return None
