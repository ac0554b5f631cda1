"""Chaos on the way out, for drills: recipients that a delivery rule fires for get the
reply the rule stands for (a code, or a refused or timed-out connection) instead of being
sent. Nothing goes to the upstream for them; their attempt is recorded as injected, its
text starts with the rule that made it, and it is retried, failed or bounced as a real
reply would be, so that alerts, retries, bounces and the queue page can be checked
before a real outage does it.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay.chaos import DELIVERY, Chaos, Probe, Verdict
from relay.delivery import retry
from relay.delivery.retry import Reply
from relay.store import Claim

NOTHING_SENT = "injected reply, nothing was sent"


def split(chaos: Chaos, claims: Sequence[Claim]) -> tuple[list[tuple[Claim, Reply]], list[Claim]]:
    """The claims a delivery rule fires for, each with its injected reply, and the rest
    (to be sent for real). A delay rule has nothing to do on this leg."""
    drilled: list[tuple[Claim, Reply]] = []
    rest: list[Claim] = []
    for claim in claims:
        probe = Probe(
            sender=claim.mail_from,
            recipients=(claim.address,),
            destination=str(claim.destination),
        )
        verdict = chaos.fire(DELIVERY, probe)
        if verdict is None or verdict.action == "delay":
            rest.append(claim)
        else:
            drilled.append((claim, injected_reply(verdict)))
    return drilled, rest


def injected_reply(verdict: Verdict) -> Reply:
    """The reply a verdict stands for, its text marked with the rule that made it."""
    mark = f"[chaos rule {verdict.rule}]"
    if verdict.action == "refused":
        text = f"{mark} cannot connect: Connection refused ({NOTHING_SENT})"
        return retry.local(text, retry.NO_ANSWER)
    if verdict.action == "timeout":
        text = f"{mark} timed out: no answer from the upstream ({NOTHING_SENT})"
        return retry.local(text, retry.NO_ANSWER)
    text = f"{mark} {verdict.text or NOTHING_SENT}"
    return Reply(verdict.code, retry.printable(text), verdict.enhanced, verdict.code < 500)
