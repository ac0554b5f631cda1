"""Claims for suppressed addresses (relay.store.suppressions): found by the claim itself (in
its transaction), then failed at once or held by the worker, without the upstream hearing
of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from relay import address
from relay.delivery import retry
from relay.delivery.retry import Reply
from relay.store import Claim, Suppressed

NOT_AUTHORIZED = "5.7.1"
"""The enhanced code of a suppressed recipient's failure when its entry has none (an
operator added it): delivery not authorized."""


def reply(entry: Suppressed) -> Reply:
    """The permanent failure a suppressed recipient gets: "suppressed since … because …"."""
    return retry.local(entry.why, entry.enhanced or NOT_AUTHORIZED, transient=False)


class Screen:
    """The suppressed recipients among the worker's claims."""

    def __init__(self) -> None:
        self.listed: dict[int, Suppressed] = {}

    def note(self, claims: Sequence[Claim], found: Mapping[str, Suppressed]) -> int:
        """Note which of `claims` are for suppressed addresses, from `found` (the entries
        their claim read, by dedup key: relay.store.queue.Batch.suppressed); how many."""
        if not found:
            return 0
        for claim in claims:
            entry = found.get(address.dedup_key(claim.address))
            if entry is not None:
                self.listed[claim.id] = entry
        return len(found)

    def split(self, chunk: Sequence[Claim]) -> tuple[list[tuple[Claim, Suppressed]], list[Claim]]:
        """`chunk`'s suppressed claims (with their entries; forgotten here), and the rest."""
        if not self.listed:
            return [], list(chunk)
        listed = [(c, self.listed.pop(c.id)) for c in chunk if c.id in self.listed]
        taken = {c.id for c, _ in listed}
        return listed, [c for c in chunk if c.id not in taken]

    def forget(self, claims: Sequence[Claim]) -> None:
        """Drop what is known of `claims` (given back, or gone)."""
        for claim in claims:
            self.listed.pop(claim.id, None)
