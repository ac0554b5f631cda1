"""DATA's wire form, made chunk by chunk as the message is sent.

Building the whole wire form first (line endings normalised, dots stuffed, the final dot
appended) would hold several full copies of the message at once: for a 40 MB message,
hundreds of megabytes. Here each chunk of about CHUNK bytes, cut at a line end, gets that
treatment and is written once the transport has room for it, so only the stored message
and a chunk or two are in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from relay.delivery.channel import Channel

CHUNK = 64 * 1024
END_OF_DATA = b".\r\n"
_LINE_ENDINGS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")


def _on_the_wire(piece: bytes) -> bool:
    """Whether a piece of whole lines is already its wire form: CRLF line ends only, no
    line starting with a dot (what nearly every message is; counted faster than a regex
    substitutes)."""
    crlf = piece.count(b"\r\n")
    return (
        piece.count(b"\n") == crlf
        and piece.count(b"\r") == crlf
        and not piece.startswith(b".")
        and b"\n." not in piece
    )


def wire_chunks(message: bytes, size: int = CHUNK) -> Iterator[bytes]:
    """The message as sent after DATA, in pieces of about `size` bytes: every line ending
    CRLF (a bare CR or LF becomes one), a dot doubled at the start of a line, the final
    CRLF added when missing. Not the terminating ".\\r\\n"."""
    start, end = 0, len(message)
    while start < end:
        stop = message.rfind(b"\n", start, start + size) + 1 if start + size < end else end
        if stop <= start:  # a line longer than `size`: up to its end
            newline = message.find(b"\n", start + size)
            stop = end if newline < 0 else newline + 1
        piece = message[start:stop]
        if not _on_the_wire(piece):
            piece = _LEADING_DOT.sub(b"..", _LINE_ENDINGS.sub(b"\r\n", piece))
        if stop == end and not piece.endswith(b"\r\n"):
            piece += b"\r\n"
        yield piece
        start = stop


async def send_data(channel: Channel, message: bytes) -> None:
    """Send the message after DATA's 354, with flow control, and the final dot (the reply
    is the caller's to read)."""
    pieces = wire_chunks(message)
    last = next(pieces, b"")
    for piece in pieces:
        channel.write(last)
        await channel.drain()
        last = piece
    channel.write(last + END_OF_DATA)  # one write (one system call) for a small message
