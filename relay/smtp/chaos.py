"""Chaos at the SMTP stages of one listener: ask `relay.chaos` what happens, then do it.

The session and the handler hold a `StageChaos` only when chaos is on (None otherwise:
one check per stage is all chaos costs when off). `at` returns the reply to give instead
of the command's own (None: carry on); a delay is waited here, and a disconnect closes
the connection and never returns (closing cancels the session's task).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from aiosmtpd.smtp import Envelope
from aiosmtpd.smtp import Session as AioSession

from relay.chaos import Chaos, Probe, Verdict
from relay.chaos.header import HeaderError, strip

log = logging.getLogger(__name__)

HANG_UP_WAIT = 5.0
"""Seconds a hang-up waits to be cancelled by the connection's loss (it always is)."""
BAD_HEADER = "554 5.6.0 {}"
"""The reply to a message whose X-Relay-Chaos header cannot be read."""


class Hangs(Protocol):
    """A session as chaos needs it: its state, and a way to close without a reply."""

    session: AioSession | None

    async def hang_up(self) -> None:
        """Close the connection without a reply."""


def auth_user(session: AioSession | None) -> str | None:
    """The name the session authenticated as, if it did."""
    if session is None or not session.authenticated:
        return None
    data: Any = session.auth_data
    login = getattr(data, "login", data)
    if login is None:
        return None
    return login.decode("utf-8", "replace") if isinstance(login, bytes) else str(login)


class StageChaos:
    """The chaos of one listener's sessions."""

    def __init__(self, chaos: Chaos, listener: str) -> None:
        self.chaos = chaos
        self.listener = listener

    async def at(
        self,
        session: Any,
        stage: str,
        sender: str | None = None,
        recipients: tuple[str, ...] = (),
        user: str | None = None,
    ) -> str | None:
        """The reply that replaces the command's at `stage` (None: carry on). `session`
        is a `Hangs` (aiosmtpd hands hooks its untyped SMTP); `user` stands for the
        session's at AUTH, where it is not authenticated yet."""
        probe = Probe(
            listener=self.listener,
            user=user if user is not None else auth_user(session.session),
            sender=sender,
            recipients=recipients,
        )
        verdict = self.chaos.fire(stage, probe)
        return None if verdict is None else await act(session, verdict)

    async def data_end(self, session: Hangs, envelope: Envelope) -> str | None:
        """At the end of DATA, before storing: the message's own X-Relay-Chaos, then the
        rules. The reply that replaces storing it, or None: store it, without the header."""
        content = envelope.original_content
        assert isinstance(content, bytes)
        try:
            present, asked = self.chaos.from_header(content)
        except HeaderError as exc:
            return BAD_HEADER.format(exc)
        if asked is not None and (reply := await act(session, asked)) is not None:
            return reply
        if present:
            content = envelope.content = envelope.original_content = strip(content)
        probe = Probe(
            listener=self.listener,
            user=auth_user(session.session),
            sender=envelope.mail_from,
            recipients=tuple(envelope.rcpt_tos),
            content=content,
        )
        verdict = self.chaos.fire("data-end", probe)
        return None if verdict is None else await act(session, verdict)


async def act(session: Hangs, verdict: Verdict) -> str | None:
    """Wait the verdict's delay, then: its reply, a hang-up, or None (carry on)."""
    if verdict.delay:
        await asyncio.sleep(verdict.delay)
    if verdict.action == "disconnect":
        log.info("chaos rule %s: hanging up", verdict.rule)
        await session.hang_up()
        return None
    if verdict.action == "delay":
        return None
    log.info("chaos rule %s: answered %s", verdict.rule, verdict.reply)
    return verdict.reply
