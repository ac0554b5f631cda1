"""The raw bytes of mail just accepted for delivery, kept in memory for the delivery worker.

A message with recipients to relay is usually claimed within milliseconds of its 250; its
bytes are still in memory then, and reading them back from the database would cost the
delivery a query and its hops between threads. This keeps the most recent ones, up to a
total size (the oldest are dropped first, and a message larger than `MAX_ONE` is never
kept). The first delivery of a message takes its bytes, so that what is kept is mail
still waiting to go out; a message that is not here (a retry, a release, a restart, a
second destination) is read from the database.
What is kept is exactly what was stored, and a message deleted through this process's
store is dropped at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

MAX_TOTAL = 16 * 1024 * 1024
"""Bytes kept at most, over all messages."""
MAX_ONE = 1024 * 1024
"""Larger messages are never kept: they are read from the database when sent."""


class FreshRaw:
    """A bounded map from message id to raw bytes, oldest dropped first."""

    def __init__(self, max_total: int = MAX_TOTAL, max_one: int = MAX_ONE) -> None:
        self.max_total = max_total
        self.max_one = max_one
        self.size = 0
        self._raw: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._raw)

    def put(self, message_id: str, raw: bytes) -> None:
        """Keep `raw` for `message_id`, dropping the oldest entries beyond the total."""
        if len(raw) > self.max_one:
            return
        self.drop([message_id])
        self._raw[message_id] = raw
        self.size += len(raw)
        while self.size > self.max_total:
            _, old = self._raw.popitem(last=False)
            self.size -= len(old)

    def get(self, message_id: str) -> bytes | None:
        """The bytes kept for `message_id`, or None."""
        return self._raw.get(message_id)

    def take(self, message_id: str) -> bytes | None:
        """The bytes kept for `message_id`, forgotten here; None if none were kept."""
        raw = self._raw.pop(message_id, None)
        if raw is not None:
            self.size -= len(raw)
        return raw

    def drop(self, message_ids: Iterable[str]) -> None:
        """Forget these messages (deleted)."""
        for message_id in message_ids:
            old = self._raw.pop(message_id, None)
            if old is not None:
                self.size -= len(old)
