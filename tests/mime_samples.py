"""Messages that real-world mailers write and Python's email package reads wrong: encoded
headers under loose charset labels, MHTML whose HTML root is not the first part, and
ISO-2022-JP with Microsoft's extensions. Built here, byte by byte."""

from __future__ import annotations

import base64
from urllib.parse import quote

CRLF = b"\r\n"
GBK_NAME = "朱镕基"
"""镕 is in GBK, not in GB2312: mailers label such text gb2312 all the same."""
HEBREW = "שלום"
MEETING = "会議①"
"""① is NEC row 13, which Outlook writes inside ISO-2022-JP (code page 50220)."""


def jis(text: str) -> bytes:
    """`text` in ISO-2022-JP as Outlook writes it: ① as the JIS code 2D21 (NEC row 13)."""
    out = b""
    for ch in text:
        out += b"\x1b$B-!\x1b(B" if ch == "①" else ch.encode("iso2022_jp")
    return out


def encoded(label: str) -> tuple[str, bytes]:
    """(the text, its bytes) written under charset `label` by the mailers of the issue."""
    if label == "gb2312":
        return GBK_NAME, GBK_NAME.encode("gbk")
    if label == "iso-8859-8-i":
        return HEBREW, HEBREW.encode("iso-8859-8")
    return MEETING, jis(MEETING)


LABELS = ["gb2312", "iso-8859-8-i", "iso-2022-jp"]


def word(label: str, data: bytes) -> str:
    """An RFC 2047 encoded word (base64) holding `data` under `label`."""
    return f"=?{label}?B?{base64.b64encode(data).decode()}?="


def rfc2231(label: str, data: bytes) -> str:
    """An RFC 2231 extended value holding `data` under `label`."""
    return f"{label}''{quote(data, safe='')}"


def message(headers: list[str], body: bytes = b"Hello.\r\n") -> bytes:
    """A message from header lines (CRLF added) and a body."""
    return "".join(h + "\r\n" for h in headers).encode() + CRLF + body


def multipart(
    subtype: str, parts: list[bytes], boundary: str, params: str = "", headers: list[str] = ()
) -> bytes:
    """A multipart entity (or, with `headers`, message) from whole parts."""
    head = [*headers, f'Content-Type: multipart/{subtype}; boundary="{boundary}"{params}']
    body = b"".join(b"--" + boundary.encode() + CRLF + p + CRLF for p in parts)
    return message(head, body + b"--" + boundary.encode() + b"--" + CRLF)


def leaf(content_type: str, body: bytes, *headers: str) -> bytes:
    """One part: its Content-Type and other headers, a blank line, its body."""
    return message([f"Content-Type: {content_type}", *headers], body)


def html(marker: str) -> bytes:
    """An HTML body holding `marker` as a word of its text."""
    return f"<html><body><p>The {marker} report</p></body></html>".encode()


PNG = base64.encodebytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 24)


def image(cid: str) -> bytes:
    """An inline PNG part with Content-ID `cid`."""
    return leaf(
        "image/png",
        PNG.replace(b"\n", CRLF),
        "Content-Transfer-Encoding: base64",
        f"Content-ID: <{cid}>",
        f"Content-Location: https://example.com/{cid}.png",
    )


def mhtml(marker: str = "quarterly") -> bytes:
    """A page saved as MHTML: multipart/related; type="text/html", no start, the image
    first and the HTML second."""
    parts = [image("logo"), leaf("text/html; charset=utf-8", html(marker))]
    head = ["From: saver@example.com", "Subject: Saved page", "MIME-Version: 1.0"]
    return multipart("related", parts, "mhtml", '; type="text/html"', head)
