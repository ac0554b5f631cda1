"""A large message cut down to what its summary needs, keeping its MIME structure.

The summary row (subject, addresses, snippet, search text, attachment count) needs the
headers, the structure and the start of each body, not the megabytes of an attachment.
`skeleton` keeps every header block and every boundary line (of the boundaries the kept
headers declare), and of each body between them at most PART_LIMIT bytes, cut at a line
end; parsing a 40 MB message then costs about what parsing a small one does. Pure: bytes
in, bytes out.
"""

from __future__ import annotations

import re

LARGE = 1024 * 1024
"""Messages up to this size are parsed whole."""
PART_LIMIT = 256 * 1024
"""Bytes kept of each body: base64 text of this size holds well over the summary's text."""
HEADER_LIMIT = 64 * 1024
"""Longest header block looked for after a boundary line."""

_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]+)"|([^\s;"]+))', re.IGNORECASE)


def _blank_line_end(raw: bytes, start: int, limit: int) -> int:
    """Index just after the first empty line at or after `start` (-1 if none before `limit`)."""
    if raw.startswith(b"\r\n", start):  # no headers at all
        return start + 2
    if raw.startswith(b"\n", start):
        return start + 1
    crlf, lf = raw.find(b"\n\r\n", start, limit), raw.find(b"\n\n", start, limit)
    if crlf < 0 and lf < 0:
        return -1
    if lf < 0 or 0 <= crlf < lf:
        return crlf + 3
    return lf + 2


def _next_boundary_line(raw: bytes, start: int, boundaries: set[bytes]) -> int:
    """Start of the first line at or after `start` that is a boundary line (or the end)."""
    if not boundaries:
        return len(raw)
    at = start
    while True:
        if not raw.startswith(b"--", at):
            found = raw.find(b"\n--", at)
            if found < 0:
                return len(raw)
            at = found + 1
        if any(raw.startswith(b"--" + b, at) for b in boundaries):
            return at
        at += 2


def _declared(block: bytes, boundaries: set[bytes]) -> None:
    for quoted, bare in _BOUNDARY.findall(block):
        boundaries.add(quoted or bare)


def skeleton(raw: bytes, part_limit: int = PART_LIMIT) -> bytes:
    """`raw` itself when small; else its header blocks and boundary lines, with each body
    cut to at most `part_limit` bytes."""
    if len(raw) <= LARGE:
        return raw
    end = len(raw)
    boundaries: set[bytes] = set()
    head = _blank_line_end(raw, 0, end)
    pos = end if head < 0 else head
    pieces = [raw[:pos]]
    _declared(pieces[0], boundaries)
    while pos < end:
        line = _next_boundary_line(raw, pos, boundaries)
        keep = line
        if line - pos > part_limit:  # cut at the last line end within the limit
            keep = max(pos, raw.rfind(b"\n", pos, pos + part_limit) + 1)
        pieces.append(raw[pos:keep])
        if line >= end:
            break
        after = _blank_line_end(raw, line, min(end, line + HEADER_LIMIT))
        if after < 0:  # a closing boundary, or headers too long to be any: just the line
            line_end = raw.find(b"\n", line)
            after = end if line_end < 0 else line_end + 1
        block = raw[line:after]
        _declared(block, boundaries)
        pieces.append(block)
        pos = after
    return b"".join(pieces)
