"""Chaos: failures made on purpose, at a stage the rule picks, for what it matches, when
its mode says (always, the first N, every Nth, or a seeded probability).

    rules.py    one rule at run time: what it matches, when it fires, its counters
    engine.py   `Chaos`: the rules of one relay, tried in order at each stage
    mailpit.py  Mailpit's three random triggers (GET/PUT /api/v1/chaos), beside the rules
    header.py   X-Relay-Chaos: a message that asks for its own failure at data-end

The SMTP session (relay/smtp/chaos.py) and the delivery worker (relay/delivery/drills.py)
ask `Chaos.fire` at their stages and act on its `Verdict`; the web API changes the rules.
With chaos off there is no `Chaos` at all: each stage checks for None, and that is all.
"""

from __future__ import annotations

from relay.chaos.engine import Chaos
from relay.chaos.rules import DELIVERY, Probe, Rule, Verdict

__all__ = ["DELIVERY", "Chaos", "Probe", "Rule", "Verdict"]
