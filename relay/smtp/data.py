"""Reading the message after DATA: dot-unstuffing, the size limit and the line limit.

Lines are kept byte-exact (bare CR or LF inside a line included). Once the message is
over `max_size`, or a line over `max_line`, what was read is dropped and the rest is only
drained until the final dot, so an oversized message is never held whole in memory; the
client then gets the refusal (RFC 5321 §4.2.5: the reply comes after the data). The
message grows in one buffer: at most about twice its size is held while it is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from relay.smtp import replies

CRLF = b"\r\n"
END = b".\r\n"
END_LINE = b"\r\n.\r\n"  # the lone dot, after the end of the last line
STUFFED = b"\r\n."  # a line that starts with a dot: the dot goes


def reader_limit(max_line: int) -> int:
    """The StreamReader limit that lets a line of `max_line` octets through with its
    transparency dot and CRLF."""
    return max_line + 3


@dataclass(frozen=True)
class Data:
    """A message read after DATA: its content, or the reply refusing it."""

    content: bytes
    refusal: str | None = None


async def read_data(
    reader: asyncio.StreamReader,
    max_size: int,
    max_line: int,
    progress: Callable[[], None],
) -> Data:
    """Read up to the lone dot; `progress` is called after each piece read (to push
    timeouts back).

    The message is read in large pieces, up to the "\r\n.\r\n" that ends it or as much
    as has come (an await per line cost more than the rest of storing a message), and
    each piece is checked and unstuffed as a whole: its complete lines go into one growing
    buffer, a line it leaves unfinished waits for the next piece.
    Raises asyncio.IncompleteReadError when the client goes away before the end.
    """
    message = bytearray()
    refusal: str | None = None
    line = b""  # the start of a line the pieces so far have not ended (dot still in)
    # The last bytes read, as far as they may begin the end: the message starts a line,
    # as if after a CRLF. While this is not empty, a few bytes at a time are read.
    carry = CRLF
    while True:
        if carry:
            piece = await reader.readexactly(len(END_LINE) - len(carry))
            last = carry + piece == END_LINE
            carry = _end_started(carry + piece)
        else:
            try:
                piece = await reader.readuntil(END_LINE)
                last = True
            except asyncio.LimitOverrunError as exc:  # not within the limit: take a part
                piece = await reader.readexactly(exc.consumed)
                last = False  # and the end cannot start in it: it would have been found
        progress()
        if refusal is not None:
            if last:
                break
            continue
        if last:
            piece = piece[: -len(END)]  # what is left ends with the last line's CRLF
        data = line + piece if line else piece
        cut = data.rfind(CRLF) + len(CRLF) if CRLF in data else 0
        line = data[cut:]
        refusal = _check(data[:cut], line, len(message), max_size, max_line)
        if refusal is None:
            message += _unstuffed(data[:cut])
        else:
            message.clear()
            line = b""
        if last:
            break
    if refusal is not None:
        return Data(b"", refusal)
    return Data(bytes(message))


def _check(lines: bytes, rest: bytes, kept: int, max_size: int, max_line: int) -> str | None:
    """The refusal that whole `lines` and an unfinished `rest` earn, after `kept` bytes."""
    if len(lines) > max_line + len(CRLF):  # short enough to hold no long line: skip
        each = lines.split(CRLF)
        if max(map(len, each)) > max_line and any(
            len(one) - one.startswith(b".") > max_line for one in each
        ):
            return replies.LINE_TOO_LONG
    # Without its dot and a CR that may start its CRLF, an unfinished line over the limit
    # can only get longer.
    if len(rest) - 2 > max_line:
        return replies.LINE_TOO_LONG
    if kept + len(lines) - lines.count(STUFFED) - lines.startswith(b".") > max_size:
        return replies.MESSAGE_TOO_BIG
    return None


def _unstuffed(lines: bytes) -> bytes:
    """Whole lines without the transparency dot that starts some of them."""
    if lines.startswith(b"."):
        lines = lines[1:]
    return lines.replace(STUFFED, CRLF)


def _end_started(tail: bytes) -> bytes:
    """The longest end of `tail` that "\r\n.\r\n" starts with (b"" when none)."""
    for size in range(len(END_LINE) - 1, 0, -1):
        if tail.endswith(END_LINE[:size]):
            return END_LINE[:size]
    return b""
