"""One POP3 listener (`[[listener]] kind = "pop3"` or `"pop3s"`): an asyncio stream server
on the shared event loop, its sessions and their limit, and a clean stop.

On stop no new connection is taken and every session is closed at once: its deletions
are not made (a POP3 session that does not end with QUIT changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from relay.config import Config, ListenerConfig
from relay.errors import StartupError, cannot_listen
from relay.logins import Authenticator
from relay.metrics import Metrics
from relay.pop3 import replies
from relay.pop3.session import Session
from relay.store import Store

log = logging.getLogger(__name__)

STREAM_LIMIT = 64 * 1024
"""Bytes a line may reach before the stream gives up on it (a longer one is skipped)."""


class Pop3Listener:
    """Binds one POP3 `[[listener]]` and runs its sessions."""

    def __init__(
        self,
        config: ListenerConfig,
        root: Config,
        store: Store,
        authenticator: Authenticator,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.root = root
        self.store = store
        self.authenticator = authenticator
        self.metrics = metrics or Metrics()
        self.tls_context: ssl.SSLContext | None = None
        self.sessions: dict[Session, asyncio.Task[None]] = {}
        self.metrics.watch_pop3_sessions(config.name, self.sessions.__len__)
        self._server: asyncio.Server | None = None

    async def start(self, tls_context: ssl.SSLContext | None = None) -> None:
        """Bind the address; `tls_context` serves STLS, or every connection of pop3s."""
        if self.config.uses_tls and tls_context is None:
            raise StartupError(f"listener {self.config.name!r} needs a TLS certificate")
        self.tls_context = tls_context
        try:
            self._server = await asyncio.start_server(
                self._accept,
                self.config.host,
                self.config.port,
                limit=STREAM_LIMIT,
                reuse_address=True,
                ssl=tls_context if self.config.implicit_tls else None,
            )
        except OSError as exc:
            name = f"listener {self.config.name!r}"
            raise cannot_listen(name, self.config.address, exc) from None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.sessions) >= self.config.max_connections:
            log.warning("pop3 listener %s: session limit reached, refused", self.config.name)
            with contextlib.suppress(OSError):
                writer.write(replies.TOO_MANY.encode() + b"\r\n")
                await writer.drain()
            writer.close()
            return
        session = Session(self, reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self.sessions[session] = task
        try:
            await session.run()
        finally:
            self.sessions.pop(session, None)

    @property
    def bound(self) -> tuple[str, int]:
        """The address actually bound (the real port when 0 was asked for)."""
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def serving(self) -> bool:
        """Bound and accepting connections."""
        return self._server is not None and self._server.is_serving()

    async def stop(self, grace: float) -> None:
        """Stop accepting; tell each session the server is going and close it (nothing it
        marked is deleted). `grace` bounds the wait for them to end."""
        if self._server is None:
            return
        self._server.close()
        for session, task in list(self.sessions.items()):
            session.stopping = True
            if session.waiting:
                task.cancel()
        if self.sessions:
            await asyncio.wait(list(self.sessions.values()), timeout=grace)
        for task in list(self.sessions.values()):
            task.cancel()
        await self._server.wait_closed()
