"""Mailboxes (pure): which mailbox a new message lands in, and which one a user reads.

In "shared" mode every user reads every message, as before mailboxes existed; the
[[mailbox]] rules still name each message's mailbox, which an admin may filter by. In
"per-user" mode a message an authenticated SMTP user sends lands in the mailbox of that
user's name, and a user (POP3, or a non-admin [web.users] user) reads only the mailbox
of their own name.
"""

from __future__ import annotations

from collections.abc import Iterable

from relay import routing
from relay.config import DEFAULT_MAILBOX, Config

__all__ = ["DEFAULT_MAILBOX", "mailbox_for", "per_user", "scope_of"]


def per_user(config: Config) -> bool:
    """Whether each user reads only their own mailbox."""
    return config.mailboxes.mode == "per-user"


def mailbox_for(config: Config, auth_user: str | None, recipients: Iterable[str]) -> str:
    """The mailbox of a new message: its sender's in per-user mode when they logged in,
    else the first [[mailbox]] rule one of its recipients matches, else "default"."""
    if auth_user and per_user(config):
        return auth_user
    rcpts = list(recipients)
    for rule in config.mailbox:
        if any(routing.matches(p, r) for p in rule.match for r in rcpts):
            return rule.name
    return DEFAULT_MAILBOX


def scope_of(config: Config, user: str | None, admin: bool = False) -> str | None:
    """The one mailbox `user` may read, or None for every message (shared mode, an
    admin, or nobody logged in because no login is asked)."""
    if user is None or admin or not per_user(config):
        return None
    return user
