"""What the delivery worker handles: claims grouped into SMTP transactions, the end of a
round of claims, the results it records and the bounces it stores
(relay.delivery.worker)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from relay import ingest
from relay.config import Config
from relay.delivery import dsn, retry
from relay.delivery.retry import Reply
from relay.routing import Destination
from relay.status import Status
from relay.store import Claim, Result, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Group:
    """Recipients of one message for one destination: one SMTP transaction (or a few)."""

    destination: Destination
    claims: tuple[Claim, ...]

    @property
    def first(self) -> Claim:
        """The first claim: message, sender and route are the same for all."""
        return self.claims[0]


@dataclass(frozen=True)
class Looked:
    """The end of a round of claims: when the queue was last looked at; with `last`, the
    last claim took all it found and said when the queue next needs a look (`next_due`,
    None: nothing waits), else that is still to ask."""

    at: float
    last: bool = False
    next_due: float | None = None


def group(claims: Sequence[Claim]) -> list[Group]:
    """Claims grouped per message per destination, in claim order."""
    groups: dict[tuple[str, Destination], list[Claim]] = {}
    for claim in claims:
        groups.setdefault((claim.message_id, claim.destination), []).append(claim)
    return [Group(dest, tuple(members)) for (_, dest), members in groups.items()]


def chunks(claims: Sequence[Claim], size: int) -> Iterator[Sequence[Claim]]:
    for start in range(0, len(claims), size):
        yield claims[start : start + size]


def result_of(
    claim: Claim,
    verdict: retry.Verdict,
    reply: Reply,
    host: str,
    started: float,
    duration: float,
    injected: bool,
) -> Result:
    """The result to record for `claim`: its reply and the verdict on it."""
    return Result(
        recipient_id=claim.id,
        message_id=claim.message_id,
        status=verdict.status,
        next_attempt_at=verdict.next_attempt_at,
        code=reply.code,
        enhanced=reply.enhanced,
        text=reply.text,
        host=host,
        started_at=started,
        duration=duration,
        injected=injected,
        address=claim.address,
    )


def bounced(result: Result) -> Result:
    """A failed result whose sender was sent a bounce (its `bounced` event)."""
    return dataclasses.replace(result, bounced=result.status is Status.FAILED)


async def store_bounce(
    store: Store,
    config: Config,
    claim: Claim,
    raw: bytes,
    failures: Sequence[dsn.Failure],
    now: float,
) -> bool:
    """Store a DSN to the sender (relay.ingest): it is routed, and relayed or captured,
    like any mail. Whether one was stored."""
    data = dsn.build(
        original=raw, mail_from=claim.mail_from, failures=failures,
        hostname=config.server.host_name, received_at=claim.received_at, now=now,
    )  # fmt: skip
    bounce = await ingest.bounce(store, config, claim.mail_from, data, now)
    if bounce is None:
        log.info("%s: no bounce, the sender's route rejects it", claim.message_id)
        return False
    log.info("%s: bounce %s to <%s>", claim.message_id, bounce, claim.mail_from)
    return True
