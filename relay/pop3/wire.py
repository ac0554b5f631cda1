"""Messages as POP3 sends them (pure): CRLF line ends, dot-stuffed, the final ".".

Stored mail already ends its lines in CRLF (SMTP's DATA); a bare LF, which mail sent
through the API may hold, becomes CRLF, since POP3 cannot carry it. Nothing else changes:
a client that undoes the dot-stuffing gets the stored bytes back exactly.
"""

from __future__ import annotations

import re

_BARE_LF = re.compile(rb"(?<!\r)\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)
CRLF = b"\r\n"
END = b".\r\n"
HEAD_END = b"\r\n\r\n"


def crlf(data: bytes) -> bytes:
    """`data` with every bare LF made CRLF."""
    return _BARE_LF.sub(CRLF, data) if b"\n" in data else data


def multiline(data: bytes) -> bytes:
    """The body of a multi-line reply: CRLF line ends, lines that begin with "."
    doubled, and the terminating ".\\r\\n" (RFC 1939 §3)."""
    data = _LEADING_DOT.sub(b"..", crlf(data))
    if data and not data.endswith(CRLF):
        data += CRLF
    return data + END


def top(data: bytes, lines: int) -> bytes:
    """What TOP sends before its final ".": the headers, the blank line, and the first
    `lines` lines of the body (RFC 1939 §7)."""
    data = crlf(data)
    cut = data.find(HEAD_END)
    if cut < 0:
        return data  # headers only
    head, body = data[: cut + 4], data[cut + 4 :]
    end = 0
    for _ in range(max(0, lines)):
        found = body.find(CRLF, end)
        if found < 0:
            return head + body  # fewer lines than asked: all of them
        end = found + len(CRLF)
    return head + body[:end]


def top_reply(data: bytes, lines: int) -> bytes:
    """TOP's multi-line reply body: `top` made ready to send."""
    return multiline(top(data, lines))
