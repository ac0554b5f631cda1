"""A value read from the database, kept until the database changes.

The navigation's counts walk indexes of every stored message (tens of milliseconds with
100,000 of them) although, on a capture box, nothing changes between most page loads.
A `Memo` asks `Database.change_token` before each use: while the token is the one read
before the value was computed, no transaction has committed since, and the kept value is
exact. Any commit, by this process or another (`relay queue`, a second `relay serve`),
changes the token, so the next use computes afresh.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from relay.store.database import Database

T = TypeVar("T")


class Memo(Generic[T]):
    """`compute()`'s last value while the database is unchanged since it was computed."""

    def __init__(self, db: Database, compute: Callable[[], Awaitable[T]]) -> None:
        self.db = db
        self.compute = compute
        self._kept: tuple[object, T] | None = None
        self.computed = 0
        """How many times the value was computed (rather than kept)."""

    async def get(self) -> T:
        """The value as the database holds it now."""
        token = await self.db.change_token()  # read before: a commit after it is seen later
        if token is not None and self._kept is not None and self._kept[0] == token:
            return self._kept[1]
        value = await self.compute()
        self.computed += 1
        self._kept = None if token is None else (token, value)
        return value
