"""One upstream connection's commands and replies, once aiosmtplib has set it up.

aiosmtplib opens the connection (greeting, EHLO, STARTTLS, AUTH); a `Channel` then takes
its transport over for the mail transactions. aiosmtplib reads exactly one reply per
command written and drops whatever arrives before it asks, so it cannot pipeline. Here
every reply is parsed as it arrives and queued, so that several commands can go out in one
write before their replies are read: PIPELINING (RFC 2920), when the server offers it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import cast

import aiosmtplib
from aiosmtplib import SMTPResponse

MAX_LINE = 8192
"""Bytes in one reply line at most (RFC 5321 asks for 512; some servers say more)."""
MAX_PENDING = 1024 * 1024
"""Bytes in the lines of one reply of several lines, at most."""
INVALID_REPLY = -1
"""The code of a reply that cannot be read (aiosmtplib's SMTPStatus.invalid_response)."""


class Channel(asyncio.Protocol):
    """Writes commands to one connection and hands out its replies in order."""

    def __init__(self, transport: asyncio.Transport, extensions: dict[str, str]) -> None:
        self.transport = transport
        self.extensions = extensions
        """The EHLO keywords (lower case) and their parameters."""
        self._buffer = bytearray()
        self._lines: list[bytes] = []  # the lines read so far of a reply of several
        self._replies: deque[SMTPResponse] = deque()
        self._arrived: asyncio.Future[None] | None = None
        self._lost: aiosmtplib.SMTPException | None = None
        self._writable: asyncio.Future[None] | None = None

    @classmethod
    def take_over(cls, smtp: aiosmtplib.SMTP) -> Channel:
        """The channel of a connection aiosmtplib has just set up; `smtp` is done with."""
        transport = smtp.transport
        if transport is None or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("connection lost while setting it up")
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        channel = cls(cast(asyncio.Transport, transport), dict(smtp.esmtp_extensions))
        transport.set_protocol(channel)
        return channel

    def offers(self, keyword: str) -> bool:
        """Whether the server's EHLO named `keyword` (any case)."""
        return keyword.lower() in self.extensions

    @property
    def unasked(self) -> bool:
        """Whether a reply came that no command asked for (a 421 while idle, say)."""
        return bool(self._replies)

    @property
    def is_open(self) -> bool:
        """Whether commands can still be written."""
        return self._lost is None and not self.transport.is_closing()

    # -- the protocol's side ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Queue every complete reply in `data`."""
        self._buffer.extend(data)
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start : end + 1])
            start = end + 1
            if not self._read_line(line):
                return
        del self._buffer[:start]
        if len(self._buffer) > MAX_LINE:
            self._fail(aiosmtplib.SMTPResponseException(INVALID_REPLY, "reply line too long"))
        elif sum(map(len, self._lines)) > MAX_PENDING:
            self._fail(aiosmtplib.SMTPResponseException(INVALID_REPLY, "reply too long"))

    def _read_line(self, line: bytes) -> bool:
        if len(line) > MAX_LINE:
            self._fail(aiosmtplib.SMTPResponseException(INVALID_REPLY, "reply line too long"))
            return False
        body = line.rstrip(b"\r\n")
        code, separator = body[:3], body[3:4]
        if not (len(code) == 3 and code.isdigit() and separator in (b"", b" ", b"-")):
            text = body.decode("utf-8", "replace")
            self._fail(aiosmtplib.SMTPResponseException(INVALID_REPLY, f"malformed reply: {text}"))
            return False
        self._lines.append(body[4:].strip(b" \t"))
        if separator == b"-":
            return True
        text = b"\n".join(self._lines).decode("utf-8", "surrogateescape")
        self._lines = []
        self._replies.append(SMTPResponse(int(code), text))
        self._wake()
        return True

    def eof_received(self) -> bool:
        """The server closed its side: nothing more will come (close ours too)."""
        self._fail(aiosmtplib.SMTPServerDisconnected("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """Wake whoever waits: for a reply, or for room to write."""
        if self._lost is None:
            reason = f": {exc}" if exc is not None else ""
            self._lost = aiosmtplib.SMTPServerDisconnected(f"connection lost{reason}")
        self._wake()
        self._resume()

    def pause_writing(self) -> None:
        """The transport's buffer is full: `drain` waits."""
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """The transport's buffer has room again."""
        self._resume()

    def _fail(self, exc: aiosmtplib.SMTPException) -> None:
        if self._lost is None:
            self._lost = exc
        self._wake()
        self.transport.close()

    def _wake(self) -> None:
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    def _resume(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -- the client's side -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send `data` (commands, or message lines) as it is."""
        if not self.is_open:
            raise self._lost or aiosmtplib.SMTPServerDisconnected("connection closed")
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the transport can take more (flow control for a large message)."""
        waiter = self._writable
        if waiter is not None:
            await waiter
        if self._lost is not None:
            raise self._lost

    async def reply(self) -> SMTPResponse:
        """The next reply, in the order the commands went out; raises when the connection
        is lost (or the server answered something that is not a reply) before it came."""
        while not self._replies:
            if self._lost is not None:
                raise self._lost
            self._arrived = asyncio.get_running_loop().create_future()
            await self._arrived
        return self._replies.popleft()

    def close(self) -> None:
        """Close at once, without QUIT."""
        self.transport.close()

    async def quit(self, wait: float) -> None:
        """Say QUIT, wait up to `wait` seconds for its reply, then close."""
        try:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                self.write(b"QUIT\r\n")
                async with asyncio.timeout(wait):
                    await self.reply()
        finally:
            self.close()
