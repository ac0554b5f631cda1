"""One SMTP session: aiosmtpd's protocol, with our limits, TLS rules, AUTH and DATA.

What aiosmtpd leaves to us, done here:
- the connection limit (421 4.7.0 to the excess at once) and timeouts that say 421;
- EHLO that advertises SIZE, 8BITMIME, SMTPUTF8, PIPELINING, and STARTTLS and AUTH only
  where they may be used; implicit TLS (smtps) counted as TLS;
- AUTH PLAIN and LOGIN checked without blocking the loop, refused over plaintext
  (538 5.7.11) unless the listener allows it;
- DATA read by `relay.smtp.data` (long lines, size limit, data timeout);
- draining on shutdown, and enhanced status codes on aiosmtpd's own fixed replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aiosmtpd.smtp import (
    MISSING,
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    TLSSetupException,
    _Missing,
)
from aiosmtpd.smtp import Session as AioSession

from relay.metrics import result_of
from relay.smtp import replies
from relay.smtp.chaos import HANG_UP_WAIT
from relay.smtp.data import read_data, reader_limit
from relay.smtp.handler import hook_names, peer_ip
from relay.smtp.paths import parse_path

if TYPE_CHECKING:
    from relay.smtp.listener import Listener

log = logging.getLogger(__name__)

_NOT_IN_A_REPLY = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")

PROGRESS_EVERY = 1.0
"""Seconds between pushes of the DATA timeout while data keeps coming."""


def say_and_close(transport: asyncio.BaseTransport, reply: str) -> None:
    """Write one reply line, then close once it is sent.

    A cast, not an isinstance check: uvloop's TCP transport (0.23 and later) is not
    registered as an asyncio.WriteTransport, though it writes as one.
    """
    writer = cast(asyncio.WriteTransport, transport)
    writer.write(reply.encode() + b"\r\n")
    writer.close()


def well_formed(reply: str) -> str:
    """`reply` with control characters (a bare CR or LF, NUL) and undecodable bytes that
    it echoes from the client shown as "?": each line of a reply stays one line.

    aiosmtpd quotes an unknown command back ('500 Error: command "X" not recognized'),
    and a command may hold a bare CR.
    """
    return "\r\n".join(_NOT_IN_A_REPLY.sub("?", line) for line in reply.split("\r\n"))


def _pass_on(
    server: SMTP, session: AioSession, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    """aiosmtpd's (synchronous) authenticator hook: pass the credentials on, unchecked.

    Session.auth_PLAIN/auth_LOGIN check them afterwards, asynchronously.
    """
    return AuthResult(success=False, handled=False, auth_data=auth_data)


class SessionState(AioSession):
    """aiosmtpd's per-connection state, without the deprecation warning logged on AUTH."""

    @property
    def login_data(self) -> Any:
        """The login of the last successful AUTH (aiosmtpd's legacy attribute)."""
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class Session(SMTP):
    """aiosmtpd's protocol for one connection to one listener."""

    command_size_limit = 2048  # RFC 5321 asks for at least 512; SMTPUTF8 addresses run long

    def __init__(self, listener: Listener, *args: Any, **kwargs: Any) -> None:
        self.listener = listener
        self.config = listener.config
        self.in_data = False
        self.refused = False
        self.greeted = False  # the 220 went out (see eof_received)
        self.line_length_limit = reader_limit(self.config.max_line_length)
        self.chaos = listener.chaos  # None when chaos is off: one check per stage
        super().__init__(*args, authenticator=_pass_on, **kwargs)
        self._auth_require_tls = False  # checked in smtp_AUTH, where implicit TLS counts

    def __dir__(self) -> list[str]:
        """Only the smtp_ and auth_ methods: aiosmtpd's __init__ looks through dir() of
        every new session for those, and going through all of its members (and
        StreamReaderProtocol's) was a fifth of the CPU that a connection costs."""
        return hook_names(type(self), ("smtp_", "auth_"))

    # --- connection ----------------------------------------------------------------

    def _create_session(self) -> SessionState:
        return SessionState(self.loop)

    # Methods, not properties: aiosmtpd's __init__ reads every attribute of the instance.
    def state(self) -> AioSession:
        """The per-connection state (exists once connected)."""
        assert self.session is not None
        return self.session

    def current(self) -> Envelope:
        """The envelope of the transaction in progress."""
        assert self.envelope is not None
        return self.envelope

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Refuse the excess over max_connections, register, then greet as aiosmtpd does."""
        if self.transport is None:  # not the second call that follows STARTTLS
            if len(self.listener.sessions) >= self.config.max_connections:
                self.refused = True
                log.warning(
                    "listener %s: %d sessions open, refused %s",
                    self.config.name,
                    len(self.listener.sessions),
                    transport.get_extra_info("peername"),
                )
                say_and_close(transport, replies.TOO_MANY_CONNECTIONS)
                return
            self.listener.sessions.add(self)
            self.listener.idle.clear()
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if self.state().ssl is None and ssl_object is not None:  # implicit TLS
            self.state().ssl = {
                "ssl_object": ssl_object,
                "cipher": transport.get_extra_info("cipher"),
                "peercert": transport.get_extra_info("peercert"),
            }

    async def _handle_client(self) -> None:
        """aiosmtpd's session, after chaos at the connect stage (a reply instead of the
        greeting closes the connection)."""
        if self.chaos is not None and (reply := await self.chaos.at(self, "connect")):
            await self.close_with(reply)
            return
        await super()._handle_client()

    async def hang_up(self) -> None:
        """Close the connection without a reply (chaos's disconnect). The connection's loss
        cancels the session's task, this one with it, so nothing is said after."""
        if self.transport is not None:
            self.transport.close()
        await asyncio.sleep(HANG_UP_WAIT)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the session; the listener's drain waits for this."""
        self.listener.sessions.discard(self)
        if not self.listener.sessions:
            self.listener.idle.set()
        if not self.refused:
            super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Ignore what a refused client sends."""
        if not self.refused:
            super().data_received(data)

    def eof_received(self) -> bool | None:
        """Ignore the end of a refused client's stream."""
        if self.refused:
            return False
        if not self.greeted and self.transport is not None:
            # The client closed its side before the session's task ran even once: aiosmtpd
            # cancels that task, which would never greet nor close. Greet here, as it would
            # have, and close (False) once the greeting is sent.
            self.greeted = True
            greeting = f"220 {self.hostname} {self.__ident__}\r\n".encode()
            cast(asyncio.WriteTransport, self.transport).write(greeting)  # uvloop: see above
            super().eof_received()
            return False
        result: bool | None = super().eof_received()
        return result

    def _timeout_cb(self) -> None:
        """Say 421 before closing a connection that went quiet (aiosmtpd just closes)."""
        log.info("%s: timeout, closing", self.state().peer)
        if self.transport is not None:
            say_and_close(self.transport, replies.TIMEOUT)

    @property
    def secure(self) -> bool:
        """The connection is encrypted (STARTTLS done, or implicit TLS)."""
        return self.session is not None and self.session.ssl is not None

    @property
    def idle(self) -> bool:
        """No transaction in progress: safe to close now."""
        envelope = self.envelope
        return not self.in_data and (envelope is None or envelope.mail_from is None)

    async def push(self, status: str | bytes) -> None:
        """Send a reply, adding enhanced status codes to aiosmtpd's fixed ones; whatever a
        reply echoes of the client's input stays on its line (see `well_formed`)."""
        self.greeted = True  # the greeting is the first thing pushed
        if isinstance(status, str):
            await super().push(well_formed(replies.AIOSMTPD_REPLIES.get(status, status)))
        else:
            await super().push(status)

    async def handle_exception(self, error: Exception) -> str:
        """The boundary for errors inside a session. A client that fails or abandons the
        TLS handshake is its own business (logged at INFO, connection closed); anything
        else is a fault of ours: logged once with its traceback, answered 451."""
        if isinstance(error, TLSSetupException):
            log.info("%s: TLS handshake failed: %r", self.state().peer, error.__cause__)
            return replies.TLS_HANDSHAKE_FAILED
        log.exception("%s: unexpected error in the SMTP session", self.state().peer)
        return replies.LOCAL_ERROR

    async def close_with(self, reply: str) -> None:
        """Send `reply` and close the connection (unless it is closing already)."""
        if self.transport is None or self.transport.is_closing():
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.push(reply)
        if self.transport is not None:
            self.transport.close()

    # --- commands ------------------------------------------------------------------

    async def smtp_EHLO(self, hostname: str | None) -> None:
        """Greet, advertising what this listener offers at this point of the session."""
        if not hostname:
            await self.push(replies.EHLO_SYNTAX)
            return
        if self.chaos is not None and (refusal := await self.chaos.at(self, "helo")):
            await self.push(refusal)
            return
        self.envelope = self._create_envelope()  # EHLO resets the transaction
        self.state().extended_smtp = True
        self.state().host_name = hostname
        lines = [
            self.hostname,
            f"SIZE {self.config.max_message_size}",
            "8BITMIME",
            "SMTPUTF8",
            "PIPELINING",
        ]
        if self.tls_context is not None and not self.secure:
            lines.append("STARTTLS")
        if self.offers_auth:
            lines.append("AUTH " + " ".join(sorted(self._auth_methods)))
        lines.append("HELP")
        reply = [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]
        await self.push("\r\n".join(reply))

    async def smtp_HELO(self, hostname: str) -> None:
        """aiosmtpd's HELO, after chaos at the helo stage."""
        if hostname and self.chaos is not None and (reply := await self.chaos.at(self, "helo")):
            await self.push(reply)
            return
        await super().smtp_HELO(hostname)

    @property
    def offers_auth(self) -> bool:
        """Whether AUTH is advertised now: enabled, not done yet, and safe to use."""
        if self.config.auth == "off" or self.session is None or self.session.authenticated:
            return False
        return self.secure or self.config.allow_insecure_auth

    async def smtp_STARTTLS(self, arg: str | None) -> None:
        """Start TLS, unless the connection already has it."""
        if self.secure:
            await self.push(replies.TLS_ALREADY_ACTIVE)
            return
        if not arg and self.tls_context is not None and self._sent_past_starttls():
            # Bytes the client sent after STARTTLS, before our 220, are plaintext already
            # read; they never reach the TLS layer, which would wait for its handshake in
            # vain (and they must not run as commands after it: CVE-2011-0411).
            await self.close_with(replies.STARTTLS_PIPELINED)
            return
        await super().smtp_STARTTLS(arg)

    def _sent_past_starttls(self) -> bool:
        """The client sent more after STARTTLS, or closed its side, without waiting for the
        reply. (StreamReader has no public word for its buffered bytes; aiosmtpd itself
        clears `_buffer` after the handshake.)"""
        buffered: bytearray = self._reader._buffer  # type: ignore[attr-defined]
        return bool(buffered) or self._reader.at_eof()

    async def smtp_AUTH(self, arg: str | None) -> None:
        """AUTH, refused when disabled or (unless allowed) over plaintext."""
        if self.config.auth == "off":
            await self.push(replies.AUTH_NOT_ENABLED)
            return
        if self.state().host_name and not (self.secure or self.config.allow_insecure_auth):
            await self.push(replies.ENCRYPTION_REQUIRED)
            return
        await super().smtp_AUTH(arg)

    async def challenge_auth(
        self,
        challenge: str | bytes,
        encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> _Missing | bytes:
        """aiosmtpd's AUTH challenge, with an answer longer than a line may be refused like
        any overlong line (aiosmtpd lets StreamReader's ValueError escape, a 500 with a
        traceback in the log); the AUTH is then over, the session goes on."""
        try:
            answer: _Missing | bytes = await super().challenge_auth(
                challenge, encode_to_b64, log_client_response
            )
        except ValueError as exc:
            if "limit" not in str(exc):  # not StreamReader.readline's overlong line
                raise
            await self.push(replies.LINE_TOO_LONG)
            return MISSING
        return answer

    async def auth_PLAIN(self, _: SMTP, args: list[str]) -> AuthResult:
        """AUTH PLAIN (RFC 4616), checked without blocking the loop."""
        result: AuthResult = await super().auth_PLAIN(_, args)
        return await self._verify(result)

    async def auth_LOGIN(self, _: SMTP, args: list[str]) -> AuthResult:
        """AUTH LOGIN, checked without blocking the loop."""
        result: AuthResult = await super().auth_LOGIN(_, args)
        return await self._verify(result)

    async def _verify(self, result: AuthResult) -> AuthResult:
        credentials = result.auth_data
        if not isinstance(credentials, LoginPassword):
            return result  # the client aborted, or sent bad base64: already answered
        if self.chaos is not None:
            login = credentials.login.decode("utf-8", "replace")
            if refusal := await self.chaos.at(self, "auth", user=login):
                return AuthResult(success=False, handled=False, message=refusal)
        client = peer_ip(self.state())
        user = await self.listener.authenticator.check(
            credentials.login, credentials.password, client
        )
        if user is None:
            return AuthResult(success=False, handled=False, message=replies.AUTH_INVALID)
        return AuthResult(success=True, auth_data=user)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The address of MAIL FROM:/RCPT TO: and the rest of the line (relay.smtp.paths)."""
        return parse_path(arg, self.local_part_limit)

    async def smtp_MAIL(self, arg: str | None) -> None:
        """Refuse new transactions while draining."""
        if self.listener.draining:
            await self.close_with(replies.SHUTTING_DOWN)
            return
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg: str | None) -> None:
        """Read the message (see relay.smtp.data), hand it to the handler, answer its reply."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.current().rcpt_tos:
            await self.push(replies.NEED_RCPT)
            return
        if arg:
            await self.push(replies.DATA_SYNTAX)
            return
        if self.chaos is not None and (reply := await self._chaos_at_data()):
            await self.push(reply)
            return
        await self.push(replies.START_DATA)
        self.in_data = True
        try:
            data = await read_data(
                self._reader,
                self.config.max_message_size,
                self.config.max_line_length,
                self._data_progress(),
            )
        except asyncio.IncompleteReadError:
            log.info("%s: connection lost during DATA", self.state().peer)
            if self.transport is not None:
                self.transport.close()
            return
        finally:
            self.in_data = False
        self._reset_timeout()
        size = len(data.content)
        if data.refusal is not None:
            status: str = data.refusal
        else:
            self.current().content = self.current().original_content = data.content
            del data  # the envelope holds the message alone: the handler hands it on
            status = await self._stored_or_refused()
        if self.listener.metrics is not None:
            self.listener.metrics.received(self.config.name, result_of(status), size)
        self.envelope = self._create_envelope()
        await self.push(status)
        if self.listener.draining:
            await self.close_with(replies.SHUTTING_DOWN)

    async def _chaos_at_data(self) -> str | None:
        assert self.chaos is not None
        envelope = self.current()
        return await self.chaos.at(self, "data", envelope.mail_from, tuple(envelope.rcpt_tos))

    async def _stored_or_refused(self) -> str:
        """The handler's reply (stored: 250), unless chaos at data-end refuses first."""
        if self.chaos is not None and (refusal := await self.chaos.data_end(self, self.current())):
            self.current().content = self.current().original_content = None
            return refusal
        status: str = await self._call_handler_hook("DATA")
        return status

    def _data_progress(self) -> Callable[[], None]:
        """A callback that pushes the DATA timeout back at most once per PROGRESS_EVERY."""
        loop = self.loop
        timeout = self.config.data_timeout
        last = loop.time()
        self._reset_timeout(timeout)

        def progress() -> None:
            nonlocal last
            now = loop.time()
            if now - last >= PROGRESS_EVERY:
                last = now
                self._reset_timeout(timeout)

        return progress
