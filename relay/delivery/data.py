"""DATA with the message streamed: the wire form is made chunk by chunk as it is sent.

aiosmtplib's `SMTP.data()` builds the whole wire form first (line endings normalised,
dots stuffed, the final dot appended, then the transport's own buffer), several full
copies of the message at once: for a 40 MB message that is hundreds of megabytes. Here each
chunk of about CHUNK bytes, cut at a line end, gets the same treatment and is written once
the transport has room for it, so only the stored message and a chunk or two are in memory.
The commands and replies still go through aiosmtplib.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import aiosmtplib

CHUNK = 64 * 1024
START_INPUT = 354
COMPLETED = 250
END_OF_DATA = b".\r\n"
_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")


def wire_chunks(message: bytes, size: int = CHUNK) -> Iterator[bytes]:
    """The message as sent after DATA, in pieces of about `size` bytes: every line ending
    CRLF (a bare CR or LF becomes one), a dot doubled at the start of a line, the final
    CRLF added when missing. Not the terminating ".\\r\\n"."""
    view = memoryview(message)
    start, end = 0, len(message)
    while start < end:
        stop = message.rfind(b"\n", start, start + size) + 1 if start + size < end else end
        if stop <= start:  # a line longer than `size`: up to its end
            newline = message.find(b"\n", start + size)
            stop = end if newline < 0 else newline + 1
        piece = _LEADING_DOT.sub(b"..", _LINE_ENDINGS.sub(b"\r\n", view[start:stop]))
        if stop == end and not piece.endswith(b"\r\n"):
            piece += b"\r\n"
        yield piece
        start = stop


async def send_data(smtp: aiosmtplib.SMTP, message: bytes) -> aiosmtplib.SMTPResponse:
    """DATA, the message streamed in chunks with flow control, then the reply; raises as
    `smtp.data()` does (SMTPDataError for a refusal, SMTPServerDisconnected...)."""
    protocol = smtp.protocol
    drain = getattr(protocol, "_drain_helper", None)
    if protocol is None or drain is None:  # an aiosmtplib without flow control to wait on
        return await smtp.data(message)
    reply = await smtp.execute_command(b"DATA")
    if reply.code != START_INPUT:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    try:
        async with asyncio.timeout(smtp.timeout):
            pieces = wire_chunks(message)
            last = next(pieces, b"")
            for piece in pieces:
                protocol.write(last)
                await drain()
                last = piece
            protocol.write(last + END_OF_DATA)  # one write (one system call) for a small one
            reply = await protocol.read_response()
    except TimeoutError:
        smtp.close()
        raise aiosmtplib.SMTPTimeoutError("timed out sending the message") from None
    except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:
        smtp.close()
        raise aiosmtplib.SMTPServerDisconnected(f"connection lost during DATA: {exc}") from exc
    if reply.code != COMPLETED:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply
