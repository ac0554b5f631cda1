"""One POP3 session: lines in, replies out, through the states of RFC 1939.

AUTHORIZATION (CAPA, STLS, USER/PASS, AUTH PLAIN, QUIT), then TRANSACTION (STAT, LIST,
UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT), then UPDATE: only a QUIT in TRANSACTION removes
what was marked, in one transaction of the store. A dropped connection, an idle timeout
or a server stop removes nothing. A bad line gets one -ERR and the session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from relay.metrics import LOGIN_ERROR, LOGIN_FAILED, LOGIN_LOCKED, LOGIN_OK
from relay.pop3 import replies, wire
from relay.pop3.login import Login, plain_credentials
from relay.pop3.maildrop import Maildrop, NoSuchMessage

if TYPE_CHECKING:
    from relay.pop3.server import Pop3Listener

log = logging.getLogger(__name__)

MAX_LINE = 512
"""Longest command line, CRLF included (RFC 2449 allows 255 octets of command)."""
CHUNK = 64 * 1024
"""Bytes of a message written before waiting for the client to take them."""
THREAD_OVER = 1024 * 1024
"""Messages larger than this are dot-stuffed in a thread, off the event loop."""

Handler = Callable[[str], Awaitable[bool]]

LOGIN_RESULT = {
    replies.BAD_LOGIN: LOGIN_FAILED,
    replies.IN_USE: LOGIN_LOCKED,
    replies.STORE_FAILED: LOGIN_ERROR,
}
"""The metrics' result of each refusal of a login."""


class TooLong(Exception):
    """A line longer than the stream's limit (skipped up to its end)."""


class Session:
    """One client's conversation with a POP3 listener."""

    def __init__(
        self,
        listener: Pop3Listener,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.listener = listener
        self.config = listener.config
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        self.tls = self.config.implicit_tls
        self.user: bytes | None = None
        self.maildrop: Maildrop | None = None
        self.login = Login(listener.root, listener.store, listener.authenticator)
        self.stopping = False
        self.waiting = False
        """True while waiting for the client's next line (a stop may cancel then)."""

    async def run(self) -> None:
        """Greet, then answer lines until QUIT, a dropped connection or a stop."""
        try:
            await self.send(replies.GREETING)
            while not self.stopping and await self._one():
                pass
            if self.stopping:
                await self.send(replies.SHUTTING_DOWN)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.send(replies.SHUTTING_DOWN), 1)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError) as exc:
            log.info("POP3 session from %s ended: %s", self.peer, exc.__class__.__name__)
        finally:
            await self.login.release()
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 1)

    async def send(self, *lines: str) -> None:
        """Write reply lines, each ended with CRLF."""
        await self.write("".join(f"{line}\r\n" for line in lines).encode("utf-8"))

    async def write(self, data: bytes) -> None:
        """Write `data` and wait until the client takes it; ConnectionResetError when the
        client has gone (uvloop refuses writes to a closed transport outright)."""
        if self.writer.is_closing():
            raise ConnectionResetError("the client has gone")
        self.writer.write(data)
        await self.writer.drain()

    async def _read_line(self) -> bytes:
        try:
            return await self.reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            await self.reader.readexactly(exc.consumed)
            while True:
                try:
                    await self.reader.readuntil(b"\n")
                    raise TooLong from None
                except asyncio.LimitOverrunError as more:
                    await self.reader.readexactly(more.consumed)

    async def _one(self) -> bool:
        """Read and answer one line; False when the session is over."""
        self.waiting = True
        try:
            line = await asyncio.wait_for(self._read_line(), self.config.idle_timeout)
        except TooLong:
            line = b"x" * (MAX_LINE + 1)
        except asyncio.IncompleteReadError:
            return False  # the client went away
        except TimeoutError:
            await self.send(replies.IDLE_TIMEOUT)
            return False
        finally:
            self.waiting = False
        if len(line) > MAX_LINE:
            await self.send(replies.LINE_TOO_LONG)
            return True
        try:
            text = line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            await self.send(replies.BAD_LINE)
            return True
        command, _, argument = text.partition(" ")
        return await self._dispatch(command.upper(), argument)

    async def _dispatch(self, command: str, argument: str) -> bool:
        authorization: dict[str, Handler] = {
            "CAPA": self._capa,
            "STLS": self._stls,
            "USER": self._user,
            "PASS": self._pass,
            "AUTH": self._auth,
            "QUIT": self._quit,
        }
        transaction: dict[str, Handler] = {
            "CAPA": self._capa,
            "STAT": self._stat,
            "LIST": self._list,
            "UIDL": self._uidl,
            "RETR": self._retr,
            "TOP": self._top,
            "DELE": self._dele,
            "RSET": self._rset,
            "NOOP": self._noop,
            "QUIT": self._quit,
        }
        handlers = authorization if self.maildrop is None else transaction
        handler = handlers.get(command)
        if handler is not None:
            return await handler(argument)
        if command in authorization or command in transaction:
            await self.send(replies.WRONG_STATE)
        else:
            await self.send(replies.UNKNOWN)
        return True

    # AUTHORIZATION

    @property
    def may_log_in(self) -> bool:
        """Whether a password may cross now: over TLS, or where the listener allows it."""
        return self.tls or self.config.allow_insecure_auth

    @property
    def offers_stls(self) -> bool:
        """Whether STLS can be used now."""
        usable = self.listener.tls_context is not None and self.config.starttls != "off"
        return usable and not self.tls and self.maildrop is None

    async def _capa(self, _argument: str) -> bool:
        lines = [replies.CAPA, *replies.CAPABILITIES]
        if self.maildrop is None and self.may_log_in:
            lines += ["USER", "SASL PLAIN"]
        if self.offers_stls:
            lines.append("STLS")
        await self.send(*lines, replies.IMPLEMENTATION, ".")
        return True

    async def _stls(self, _argument: str) -> bool:
        if self.tls:
            await self.send(replies.ALREADY_TLS)
            return True
        if not self.offers_stls or self.listener.tls_context is None:
            await self.send(replies.NO_TLS)
            return True
        # Lines sent after STLS but before our answer were sent in clear: they must not
        # count as said over TLS (the STARTTLS command injection of CVE-2011-0411).
        buffered = getattr(self.reader, "_buffer", None)
        if isinstance(buffered, bytearray):
            buffered.clear()
        await self.send(replies.STLS_GO)
        await self.writer.start_tls(self.listener.tls_context)
        self.tls = True
        self.user = None  # RFC 2595 §4: forget what was said before TLS
        return True

    def _refusal(self) -> str | None:
        if self.may_log_in:
            return None
        if self.config.starttls == "required":
            return replies.TLS_FIRST
        return replies.INSECURE

    async def _user(self, argument: str) -> bool:
        refusal = self._refusal()
        if refusal is not None or not argument.strip():
            await self.send(refusal or replies.BAD_ARGUMENTS % "USER name")
            return True
        self.user = argument.strip().encode("utf-8")
        await self.send(replies.USER_OK)
        return True

    async def _pass(self, argument: str) -> bool:
        refusal = self._refusal()
        if refusal is not None:
            await self.send(refusal)
            return True
        if self.user is None:
            await self.send(replies.USER_FIRST)
            return True
        user, self.user = self.user, None
        return await self._log_in(user, argument.encode("utf-8"))

    async def _auth(self, argument: str) -> bool:
        mechanism, _, initial = argument.strip().partition(" ")
        if not mechanism:
            await self.send(replies.OK, "PLAIN", ".")
            return True
        refusal = self._refusal()
        if refusal is not None or mechanism.upper() != "PLAIN":
            await self.send(refusal or replies.UNSUPPORTED_MECHANISM)
            return True
        if not initial:
            await self.send(replies.AUTH_CONTINUE)
            try:
                line = await asyncio.wait_for(self._read_line(), self.config.idle_timeout)
            except TooLong:
                line = b""
            initial = line.decode("utf-8", errors="replace").strip()
            if initial == "*":
                await self.send(replies.AUTH_CANCELLED)
                return True
        credentials = plain_credentials("" if initial == "=" else initial)
        if credentials is None:
            await self.send(replies.BAD_SASL)
            return True
        return await self._log_in(*credentials)

    async def _log_in(self, user: bytes, password: bytes) -> bool:
        opened = await self.login.log_in(user, password, self.peer)
        metrics = self.listener.metrics
        if isinstance(opened, str):
            metrics.pop3_login(self.config.name, LOGIN_RESULT.get(opened, LOGIN_ERROR))
            await self.send(opened)
            return True
        metrics.pop3_login(self.config.name, LOGIN_OK)
        self.maildrop = opened
        await self.send(replies.LOGGED_IN % opened.totals())
        return True

    async def _quit(self, _argument: str) -> bool:
        if self.maildrop is None or not self.maildrop.deleted:
            await self.send(replies.BYE)
            return False
        ids = self.maildrop.marked_ids()
        try:
            removed = await self.listener.store.remove_from_mailbox(self.maildrop.name, ids)
        except Exception:
            log.exception("POP3: the deletions of %s could not be made", self.peer)
            await self.send(replies.STORE_FAILED)
            return False
        taken = len(removed.deleted) + len(removed.unlisted)
        self.listener.metrics.pop3_removed(self.config.name, taken)
        await self.send(replies.BYE_REMOVED % len(ids))
        return False

    # TRANSACTION

    @property
    def drop(self) -> Maildrop:
        """The session's maildrop (TRANSACTION state only)."""
        assert self.maildrop is not None
        return self.maildrop

    async def _stat(self, _argument: str) -> bool:
        await self.send(replies.STAT % self.drop.totals())
        return True

    async def _listing(self, argument: str, one: str, many: str, field: str) -> bool:
        if argument.strip():
            try:
                number, entry = self.drop.entry(argument.strip())
            except NoSuchMessage as exc:
                await self.send(exc.reply)
                return True
            await self.send(one % (number, getattr(entry, field)))
            return True
        lines = [f"{n} {getattr(e, field)}" for n, e in self.drop.live()]
        head = many % self.drop.totals() if "%" in many else many
        await self.send(head, *lines, ".")
        return True

    async def _list(self, argument: str) -> bool:
        return await self._listing(argument, replies.SCAN_LISTING, replies.LIST_FOLLOWS, "size")

    async def _uidl(self, argument: str) -> bool:
        return await self._listing(argument, replies.UIDL_LISTING, replies.UIDL_FOLLOWS, "id")

    async def _retr(self, argument: str) -> bool:
        return await self._send_message(argument.strip(), None)

    async def _top(self, argument: str) -> bool:
        number, _, lines = argument.strip().partition(" ")
        if not lines.strip().isdigit() or len(lines.strip()) > 9:
            await self.send(replies.BAD_ARGUMENTS % "TOP msg n")
            return True
        return await self._send_message(number, int(lines))

    async def _send_message(self, argument: str, top: int | None) -> bool:
        try:
            number, entry = self.drop.entry(argument)
        except NoSuchMessage as exc:
            await self.send(exc.reply)
            return True
        try:
            raw = await self.listener.store.mailboxes.raw(entry.id)
        except Exception:
            log.exception("POP3: cannot read message %s", entry.id)
            await self.send(replies.STORE_FAILED)
            return True
        if raw is None:
            await self.send(replies.GONE % number)
            return True
        if top is None:
            head = replies.RETR_FOLLOWS % entry.size
            body = await _in_thread_if_large(wire.multiline, raw)
        else:
            head = replies.TOP_FOLLOWS
            body = await _in_thread_if_large(functools.partial(wire.top_reply, lines=top), raw)
        await self.write(head.encode() + wire.CRLF)
        for start in range(0, len(body), CHUNK):
            await self.write(body[start : start + CHUNK])
        if top is None:  # all of it went out
            self.listener.metrics.pop3_retrieved(self.config.name, len(raw))
        return True

    async def _dele(self, argument: str) -> bool:
        try:
            number = self.drop.delete(argument.strip())
        except NoSuchMessage as exc:
            await self.send(exc.reply)
            return True
        await self.send(replies.DELETED % number)
        return True

    async def _rset(self, _argument: str) -> bool:
        self.drop.reset()
        await self.send(replies.RSET % self.drop.totals())
        return True

    async def _noop(self, _argument: str) -> bool:
        await self.send(replies.OK)
        return True


async def _in_thread_if_large(work: Callable[[bytes], bytes], data: bytes) -> bytes:
    if len(data) > THREAD_OVER:
        return await asyncio.to_thread(work, data)
    return work(data)
