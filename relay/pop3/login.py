"""Logging in over POP3: USER/PASS and AUTH PLAIN (RFC 5034) against [auth.users], through
the `Authenticator` SMTP AUTH uses (one throttle of failures per client address for
both), then the user's mailbox locked for the session and listed."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging

from relay import mailboxes
from relay.config import Config
from relay.logins import Authenticator
from relay.pop3 import replies
from relay.pop3.maildrop import Maildrop
from relay.store import InUse, Store
from relay.store.mailboxes import SHARED_LOCK

log = logging.getLogger(__name__)


def plain_credentials(response: str) -> tuple[bytes, bytes] | None:
    """The user name and password of an AUTH PLAIN response (base64 of
    "authzid NUL authcid NUL password"), or None when it is malformed or asks to act
    as another user."""
    try:
        decoded = base64.b64decode(response.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    parts = decoded.split(b"\x00")
    if len(parts) != 3 or not parts[1]:
        return None
    authzid, authcid, password = parts
    if authzid and authzid != authcid:
        return None
    return authcid, password


class Login:
    """Turns credentials into a locked, listed maildrop for one session."""

    def __init__(self, config: Config, store: Store, authenticator: Authenticator) -> None:
        self.config = config
        self.store = store
        self.authenticator = authenticator
        self.held = contextlib.AsyncExitStack()
        """The session's mailbox lock, released when the session ends (`release`)."""

    async def log_in(self, name: bytes, password: bytes, peer: str) -> Maildrop | str:
        """The user's maildrop, locked; else the -ERR reply to send."""
        user = await self.authenticator.check(name, password, peer, "POP3 login")
        if user is None:
            return replies.BAD_LOGIN
        scope = mailboxes.scope_of(self.config, user)
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(self.store.mailboxes.lock(scope or SHARED_LOCK))
            entries = await self.store.mailboxes.entries(scope)
        except InUse:
            await stack.aclose()
            log.info("POP3: mailbox %s of %r in use, %s refused", scope or "(shared)", user, peer)
            return replies.IN_USE
        except Exception:
            await stack.aclose()
            log.exception("POP3: cannot open the mailbox of %r", user)
            return replies.STORE_FAILED
        self.held = stack
        return Maildrop(scope, entries)

    async def release(self) -> None:
        """Give the mailbox lock back."""
        await self.held.aclose()
