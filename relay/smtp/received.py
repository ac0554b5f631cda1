"""The Received: header we prepend to every accepted message (RFC 5321 §4.4)."""

from __future__ import annotations

import email.utils
import re
import time

_UNSAFE = re.compile(r"[^\x21-\x7e]")
_last_date: tuple[int, str] = (-1, "")


def _date(when: float) -> str:
    """RFC 5322 local date of `when`; made once per second (formatting is slow, and under
    load thousands of messages share a second)."""
    global _last_date
    second = int(when)
    cached = _last_date
    if cached[0] != second:
        cached = _last_date = (second, email.utils.formatdate(second, localtime=True))
    return cached[1]


def protocol(extended: bool, tls: bool, authenticated: bool, utf8: bool) -> str:
    """The `with` keyword of RFC 3848 / RFC 6531: SMTP, ESMTP, ESMTPS, ESMTPSA, UTF8SMTPS…"""
    if not extended:
        return "SMTP"
    base = "UTF8SMTP" if utf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def received_header(
    helo: str,
    peer_ip: str,
    hostname: str,
    message_id: str,
    with_protocol: str,
    recipient: str | None,
    when: float | None = None,
) -> bytes:
    """The header as bytes, folded, ending in CRLF; client-given text is made safe."""
    helo_text = _UNSAFE.sub("", helo)[:255] or "unknown"
    date = _date(time.time() if when is None else when)
    lines = [
        f"Received: from {helo_text} ([{peer_ip}])",
        f"\tby {hostname} (relay) with {with_protocol} id {message_id}",
    ]
    if recipient is not None:
        safe = _UNSAFE.sub("", recipient)[:320]
        lines.append(f"\tfor <{safe}>;")
    else:
        lines[-1] += ";"
    lines.append(f"\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", errors="replace")
