"""One SMTP listener: an aiosmtpd server on the shared event loop, and its sessions.

The sessions themselves (limits, TLS, AUTH, DATA) are in relay.smtp.session.

On stop it drains: no new connections, idle sessions get 421 at once, a session in the
middle of a transaction may finish it (and gets 421 right after), and whatever is still
open when the shutdown timeout runs out is closed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from relay.config import ListenerConfig, ServerConfig
from relay.errors import StartupError, cannot_listen
from relay.logins import Authenticator
from relay.metrics import Metrics
from relay.smtp import replies
from relay.smtp.chaos import StageChaos
from relay.smtp.handler import Handler
from relay.smtp.session import Session, say_and_close

log = logging.getLogger(__name__)

BACKLOG = 1024
"""Connections the kernel queues before they are accepted (capped by net.core.somaxconn).
asyncio's default of 100 makes a burst of clients wait for SYN retries, seconds, even
those that are only to be told 421."""


class Refusal(asyncio.Protocol):
    """A connection over `max_connections`: told 421 4.7.0 at once, then closed."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Say 421 and hang up."""
        log.warning(
            "listener %s: %d sessions open, refused %s",
            self.listener.config.name,
            len(self.listener.sessions),
            transport.get_extra_info("peername"),
        )
        say_and_close(transport, replies.TOO_MANY_CONNECTIONS)


class Listener:
    """Binds one `[[listener]]` and runs its sessions."""

    def __init__(
        self,
        config: ListenerConfig,
        server: ServerConfig,
        handler: Handler,
        authenticator: Authenticator,
        metrics: Metrics | None = None,
        chaos: StageChaos | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.chaos = chaos  # its sessions' chaos; None when chaos is off
        self.server_config = server
        self.handler = handler
        self.authenticator = authenticator
        self.tls_context: ssl.SSLContext | None = None
        self.sessions: set[Session] = set()
        self.idle = asyncio.Event()
        self.idle.set()
        self.draining = False
        self._server: asyncio.base_events.Server | None = None
        self.hostname = server.host_name  # looked up once, not for every connection

    def _protocol(self) -> asyncio.Protocol:
        """A session for a new connection; at the limit, a mere refusal (building an
        aiosmtpd session costs about a millisecond, which a flood of clients should not
        get from us). Session.connection_made checks the limit again."""
        if len(self.sessions) >= self.config.max_connections:
            return Refusal(self)
        return self._session()

    def _session(self) -> Session:
        starttls = self.config.starttls != "off" and not self.config.implicit_tls
        return Session(
            self,
            self.handler,
            data_size_limit=self.config.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.hostname,
            ident="relay",
            tls_context=self.tls_context if starttls else None,
            require_starttls=self.config.starttls == "required",
            auth_required=self.config.auth == "required",
            timeout=self.config.command_timeout,
            loop=asyncio.get_running_loop(),
        )

    async def start(self, tls_context: ssl.SSLContext | None = None) -> None:
        """Bind the address; a failure is one sentence naming the listener and the address.

        `tls_context` serves STARTTLS, or every connection of an smtps listener.
        """
        if self.config.uses_tls and tls_context is None:
            raise StartupError(f"listener {self.config.name!r} needs a TLS certificate")
        self.tls_context = tls_context
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self._protocol,
                self.config.host,
                self.config.port,
                reuse_address=True,
                backlog=BACKLOG,
                reuse_port=True if self.config.reuse_port else None,
                ssl=tls_context if self.config.implicit_tls else None,
            )
        except OSError as exc:
            name = f"listener {self.config.name!r}"
            raise cannot_listen(name, self.config.address, exc) from None

    @property
    def bound(self) -> tuple[str, int]:
        """The address actually bound (the real port when 0 was asked for)."""
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def serving(self) -> bool:
        """Bound and accepting connections (not stopped, not draining)."""
        return self._server is not None and self._server.is_serving() and not self.draining

    async def stop(self, grace: float) -> None:
        """Stop accepting, let transactions in flight finish in `grace` seconds, close the rest."""
        if self._server is None:
            return
        self.draining = True
        self._server.close()
        for session in list(self.sessions):
            if session.idle:
                await session.close_with(replies.SHUTTING_DOWN)
        try:
            await asyncio.wait_for(self.idle.wait(), grace)
        except TimeoutError:
            log.warning(
                "listener %s: %d sessions still open after %.0fs, closing them",
                self.config.name,
                len(self.sessions),
                grace,
            )
            for session in list(self.sessions):
                if session.transport is not None:
                    session.transport.close()
        await self._server.wait_closed()
