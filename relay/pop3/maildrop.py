"""The maildrop of one POP3 session: the messages it had at login, numbered from 1
(oldest first), and those marked for deletion, which go only at QUIT."""

from __future__ import annotations

from collections.abc import Sequence

from relay.pop3 import replies
from relay.store import Entry


class NoSuchMessage(Exception):
    """A message number that names no message (or a deleted one); carries the reply."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        super().__init__(reply)


class Maildrop:
    """The numbered messages of one session and its marks."""

    def __init__(self, name: str | None, entries: Sequence[Entry]) -> None:
        self.name = name
        """The mailbox (None: the shared one, every message in some mailbox)."""
        self.entries = list(entries)
        self.deleted: set[int] = set()

    def live(self) -> list[tuple[int, Entry]]:
        """The messages not marked, with their numbers."""
        return [(n, e) for n, e in enumerate(self.entries, 1) if n not in self.deleted]

    def totals(self) -> tuple[int, int]:
        """How many messages are not marked, and their octets."""
        kept = self.live()
        return len(kept), sum(e.size for _, e in kept)

    def entry(self, argument: str) -> tuple[int, Entry]:
        """The message an argument numbers; NoSuchMessage when there is none."""
        if not argument.isdigit() or len(argument) > 9:
            raise NoSuchMessage(replies.NO_SUCH_MESSAGE)
        number = int(argument)
        if not 1 <= number <= len(self.entries):
            raise NoSuchMessage(replies.NO_SUCH_MESSAGE)
        if number in self.deleted:
            raise NoSuchMessage(replies.ALREADY_DELETED % number)
        return number, self.entries[number - 1]

    def delete(self, argument: str) -> int:
        """Mark a message for deletion; its number."""
        number, _ = self.entry(argument)
        self.deleted.add(number)
        return number

    def reset(self) -> None:
        """Unmark every message (RSET)."""
        self.deleted.clear()

    def marked_ids(self) -> list[str]:
        """The ids of the messages marked for deletion."""
        return [self.entries[n - 1].id for n in sorted(self.deleted)]
