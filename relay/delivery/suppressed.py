"""Claims for suppressed addresses (relay.store.suppressions): found once per claim, then
failed at once or held by the worker, without the upstream hearing of them."""

from __future__ import annotations

from collections.abc import Sequence

from relay import address
from relay.delivery import retry
from relay.delivery.retry import Reply
from relay.store import Claim, Store, Suppressed

NOT_AUTHORIZED = "5.7.1"
"""The enhanced code of a suppressed recipient's failure when its entry has none (an
operator added it): delivery not authorized."""


def reply(entry: Suppressed) -> Reply:
    """The permanent failure a suppressed recipient gets: "suppressed since … because …"."""
    return retry.local(entry.why, entry.enhanced or NOT_AUTHORIZED, transient=False)


class Screen:
    """The suppressed recipients among the worker's claims."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.listed: dict[int, Suppressed] = {}

    async def look(self, claims: Sequence[Claim], now: float) -> int:
        """Find which of `claims` are for suppressed addresses (one query); how many."""
        if not claims:
            return 0
        found = await self.store.suppressions.lookup([c.address for c in claims], now)
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
