"""The aiosmtpd handler: decide on each recipient, store the message, then answer.

250 is sent only after the transaction that stores the message has committed; when the
store fails the client gets a 4xx and may try again, and the server keeps serving.
"""

from __future__ import annotations

import logging
import time

from aiosmtpd.smtp import SMTP, Envelope, Session

from relay.address import sendable
from relay.config import Config, ListenerConfig
from relay.ingest import Origin, protocol, submit
from relay.smtp import replies
from relay.smtp.chaos import StageChaos, auth_user
from relay.smtp.fixups import missing_headers
from relay.smtp.policy import RecipientPolicy
from relay.store import Store

log = logging.getLogger(__name__)


def peer_ip(session: Session) -> str:
    """The client's IP address as text."""
    peer = session.peer
    if isinstance(peer, (tuple, list)) and peer:
        return str(peer[0])
    return str(peer or "unknown")


_HOOK_NAMES: dict[tuple[type, tuple[str, ...]], list[str]] = {}


def hook_names(cls: type, prefixes: tuple[str, ...]) -> list[str]:
    """The attributes of `cls` that start with one of `prefixes` (looked up once).

    aiosmtpd's SMTP.__init__ searches dir() of every new session and of its handler for
    its smtp_, auth_ and handle_ methods; a __dir__ that lists only those saves going
    through every member on each connection.
    """
    key = (cls, prefixes)
    names = _HOOK_NAMES.get(key)
    if names is None:
        names = _HOOK_NAMES[key] = sorted(n for n in dir(cls) if n.startswith(prefixes))
    return names


class Handler:
    """Stores every accepted message of one listener."""

    def __dir__(self) -> list[str]:
        """The hooks aiosmtpd looks for (see `hook_names`)."""
        return hook_names(type(self), ("handle_", "auth_"))

    def __init__(
        self,
        config: Config,
        listener: ListenerConfig,
        store: Store,
        chaos: StageChaos | None = None,
    ) -> None:
        self.config = config
        self.chaos = chaos  # None when chaos is off
        self.listener = listener
        self.hostname = config.server.host_name
        self.store = store
        self.policy = RecipientPolicy(listener, config.route)
        self.fix_up = listener.kind in ("submission", "smtps")  # RFC 6409 §8

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Accept the sender unless it holds characters no address may hold."""
        if not sendable(address):
            return replies.BAD_SENDER
        if self.chaos is not None and (reply := await self.chaos.at(server, "mail", address)):
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.MAIL_OK

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept the recipient unless it is no address or the policy refuses it
        (relay.smtp.policy)."""
        if not sendable(address):
            return replies.BAD_RECIPIENT
        if self.chaos is not None and (
            reply := await self.chaos.at(server, "rcpt", envelope.mail_from, (address,))
        ):
            return reply
        verdict = self.policy.check(
            address, peer_ip(session), bool(session.authenticated), len(envelope.rcpt_tos)
        )
        if verdict.refusal is not None:
            return verdict.refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return replies.RCPT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Add a missing Message-ID and Date on submission, then store the message through
        relay.ingest (Received header, routes, commit) and only then answer 250."""
        tls = session.ssl is not None
        authenticated = bool(session.authenticated)
        origin = Origin(
            listener=self.listener.name,
            peer=peer_ip(session),
            helo=session.host_name or "",
            auth_user=auth_user(session),
            tls=tls,
            protocol=protocol(session.extended_smtp, tls, authenticated, envelope.smtp_utf8),
            may_relay=True,  # the recipient policy has already judged each RCPT
        )
        try:
            message_id = await submit(
                self.store,
                self.config,
                envelope.mail_from or "",
                envelope.rcpt_tos,
                self._taken_content(envelope),
                origin,
            )
        except Exception:
            log.exception("could not store message from %s: answered 451", origin.peer)
            return replies.STORE_FAILED
        return replies.QUEUED.format(id=message_id)

    def _taken_content(self, envelope: Envelope) -> bytes:
        """The message, taken out of the envelope (so that the store holds the only copy of
        a large message while it commits it), with a missing Message-ID and Date added on
        submission."""
        content = envelope.original_content
        assert isinstance(content, bytes)
        envelope.content = envelope.original_content = None
        if self.fix_up:
            content = missing_headers(content, self.hostname, time.time()) + content
        return content
