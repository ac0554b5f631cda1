"""[mailboxes] and [[mailbox]]: which mailbox each new message lands in, for POP3 and for
the scoped web UI and API (relay/mailboxes.py applies them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from relay.config.settings import setting
from relay.config.values import check_pattern

DEFAULT_MAILBOX = "default"
"""The mailbox of mail no rule and no user claims."""


def check_mailbox_name(value: str) -> str | None:
    """A check: a mailbox name (letters, digits, '-', '_', '.', '@'; at most 255)."""
    good = value and len(value) <= 255 and all(c.isalnum() or c in "-_.@+" for c in value)
    return None if good else "a name of letters, digits, '-', '_', '.', '@' or '+'"


def check_patterns(value: tuple[str, ...]) -> str | None:
    """A check: a non-empty list of recipient patterns."""
    if not value:
        return "a list of at least one recipient pattern (*@tenant-a.test, example.com)"
    for pattern in value:
        if problem := check_pattern(pattern):
            return f"{problem} (bad: {pattern!r})"
    return None


@dataclass(frozen=True)
class MailboxesConfig:
    """[mailboxes]: one mailbox for everyone, or one per user."""

    mode: Literal["shared", "per-user"] = setting(
        "shared",
        "shared: every POP3 and web user reads every message (one mailbox, as before);"
        " per-user: mail an authenticated SMTP user sends goes to the mailbox of that"
        " name, and each POP3 user and non-admin [web.users] user reads only the mailbox"
        " of their own name.",
    )


@dataclass(frozen=True)
class MailboxRule:
    """[[mailbox]]: mail for matching recipients lands in the mailbox `name` (first rule wins)."""

    name: str = setting(
        DEFAULT_MAILBOX,
        "The mailbox; in per-user mode the [auth.users] or [web.users] user of that name reads it.",
        check_mailbox_name,
    )
    match: tuple[str, ...] = setting(
        (),
        "Recipient patterns, as [[route]] match takes them (*@tenant-a.test, example.com,"
        " *.example.com); a message goes to the first rule one of its recipients matches,"
        ' else to "default".',
        check_patterns,
    )
