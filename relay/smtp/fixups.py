"""Submission fix-ups (RFC 6409 §8.2, §8.3): Message-ID and Date for messages that lack them.

Only the header section is parsed (with the standard library's header parser); the
missing fields are put in front of the message, which otherwise stays byte-exact.
"""

from __future__ import annotations

import email.utils
from email import policy
from email.parser import BytesHeaderParser


def header_section(content: bytes) -> bytes:
    """The header lines of a message, up to (not including) the empty line."""
    if content.startswith(b"\r\n"):
        return b""
    end = content.find(b"\r\n\r\n")
    return content if end < 0 else content[: end + 2]


def missing_headers(content: bytes, domain: str, when: float) -> bytes:
    """Header lines for Message-ID and Date when `content` has none (b"" when it has both)."""
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(header_section(content))
    lines = []
    if "Message-ID" not in headers:
        lines.append(f"Message-ID: {email.utils.make_msgid(domain=domain)}\r\n")
    if "Date" not in headers:
        lines.append(f"Date: {email.utils.formatdate(when, localtime=True)}\r\n")
    return "".join(lines).encode("utf-8", errors="replace")
