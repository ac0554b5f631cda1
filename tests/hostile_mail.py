"""A corpus of malformed and hostile messages, as bytes (CRLF line ends throughout)."""

from __future__ import annotations

import base64


def message(headers: str | bytes, body: bytes = b"hello\r\n") -> bytes:
    """A message from mallory with `headers` (each ending in CRLF) and `body`."""
    if isinstance(headers, str):
        headers = headers.encode()
    return b"From: mallory@evil.example\r\nTo: you@example.com\r\n" + headers + b"\r\n" + body


def multipart(boundary: str, parts: list[bytes], subtype: str = "mixed") -> bytes:
    """A multipart message whose parts are given whole (headers, blank line, body)."""
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    body += b"--" + boundary.encode() + b"--\r\n"
    return message(
        f'Subject: multipart\r\nContent-Type: multipart/{subtype}; boundary="{boundary}"\r\n',
        body,
    )


def attachment(disposition: str, data: bytes = b"root:x:0:0\r\n") -> bytes:
    """An octet-stream part with the given Content-Disposition value (base64 body)."""
    return (
        (
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: " + disposition.encode() + b"\r\n\r\n" + base64.encodebytes(data)
        )
        .replace(b"\n", b"\r\n")
        .replace(b"\r\r\n", b"\r\n")
    )


def nested(depth: int) -> bytes:
    """multipart/mixed inside multipart/mixed, `depth` levels, a text part at the bottom."""
    body = b"Content-Type: text/plain\r\n\r\ninnermost\r\n"
    for level in range(depth):
        b = f"level{level}".encode()
        body = (
            b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b + b"\r\n"
            + body + b"\r\n--" + b + b"--\r\n"
        )  # fmt: skip
    return b"From: mallory@evil.example\r\nSubject: deep\r\n" + body


def folded_header(size: int) -> bytes:
    """A Subject and an X-Long header folded over many lines, `size` bytes in all."""
    words = [f"word{i}".encode() for i in range(size // 10)]
    subject = b"Subject: " + b"\r\n ".join(words[:2000]) + b"\r\n"
    return message(subject + b"X-Long: " + b"\r\n\t".join(words) + b"\r\n")


EVIL_NAMES = [
    'attachment; filename="../../etc/passwd"',
    'attachment; filename="..\\\\..\\\\windows\\\\win.ini"',
    'attachment; filename="/etc/shadow"',
    "attachment; filename*=utf-8''%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "attachment; filename*=utf-8''evil%0D%0AContent-Type%3A%20text%2Fhtml%0D%0A.txt",
    "attachment; filename*=utf-8''nul%00byte%07bell.sh",
    'attachment; filename="=?utf-8?q?=2E=2E=2F=2E=2E=2Fetc=2Fpasswd?="',
    'attachment; filename="=?utf-8?q?a=0D=0AX-Injected=3A_1?="',
    'attachment; filename=".htaccess"',
    'attachment; filename="  "',
    "attachment; filename*0*=utf-8''broken%ZZ; filename*1=more",
    'attachment; filename="' + "A" * 5000 + '.exe"',
]

CORPUS: dict[str, bytes] = {
    "no-boundary": message(
        "Subject: no boundary\r\nContent-Type: multipart/mixed\r\n",
        b"--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n--x--\r\n",
    ),
    "wrong-boundary": message(
        'Subject: wrong boundary\r\nContent-Type: multipart/alternative; boundary="declared"\r\n',
        b"--other\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\r\n--other--\r\n",
    ),
    "unterminated-multipart": message(
        'Subject: cut\r\nContent-Type: multipart/mixed; boundary="b"\r\n',
        b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG",
    ),
    "bad-base64": message(
        "Subject: bad base64\r\nContent-Transfer-Encoding: base64\r\n",
        b"!!!not*base64###\r\nSGVsbG8=garbage==\r\n=\r\n",
    ),
    "bad-base64-attachment": multipart(
        "b",
        [
            b"Content-Type: text/plain\r\n\r\ntext",
            attachment('attachment; filename="x.bin"').replace(b"cm9vd", b"*%$#@"),
        ],
    ),
    "bad-quoted-printable": message(
        "Subject: bad qp\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n",
        b"=ZZ=\r\n=E9t=C3=\r\nsoft break at the end=\r\n=",
    ),
    "unknown-charset": message(
        'Subject: =?x-klingon?q?qapla=E9?=\r\nContent-Type: text/plain; charset="x-klingon"\r\n',
        b"\xe9\xff\xfe bytes\r\n",
    ),
    "lying-utf8": message(
        "Subject: lying\r\nContent-Type: text/plain; charset=utf-8\r\n",
        b"caf\xe9 cr\xe8me br\xfbl\xe9e\r\n",
    ),
    "lying-utf7-surrogate": message(
        "Subject: =?utf-7?q?+2AA-?=\r\nContent-Type: text/plain; charset=utf-7\r\n",
        b"lone +2AA- surrogate\r\n",
    ),
    "lying-utf16": message(
        "Subject: utf-16\r\nContent-Type: text/plain; charset=utf-16\r\n", b"\xff\xfeA\x00B\r\n"
    ),
    "lying-iso-2022-jp": message(
        "Subject: =?iso-2022-jp?b?GyRCJCIbKEI=?=\r\n"
        "Content-Type: text/plain; charset=iso-2022-jp\r\n",
        b"\x1b$B\xff\xfe\x1b(B\r\n",
    ),
    "unknown-transfer-encoding": message(
        "Subject: cte\r\nContent-Transfer-Encoding: x-rot13\r\n", b"uryyb\r\n"
    ),
    "deep-nesting-1000": nested(1000),
    "folded-header-100kb": folded_header(100_000),
    "nul-bytes": message(
        b"Subject: nul\x00in subject\r\nX-Nul: a\x00b\r\n", b"body \x00 with \x00\x00 NULs\r\n"
    ),
    "invalid-utf8-headers": message(
        b"Subject: \xff\xfe\xc3( broken \xe2\x82\r\nX-Name: \xc0\xaf\r\n", b"hi\r\n"
    ),
    "rfc2047-control-characters": message(
        "Subject: =?utf-8?q?a=00b=0D=0Ac=1B[31mred=07bell?=\r\n"
        "Reply-To: =?utf-8?b?ZXZpbA0KQmNjOiB2aWN0aW1AZXhhbXBsZS5jb20=?= <x@evil.example>\r\n",
    ),
    "evil-attachment-names": multipart(
        "b", [b"Content-Type: text/plain\r\n\r\nsee attached", *map(attachment, EVIL_NAMES)]
    ),
    "broken-rfc822-part": multipart(
        "b",
        [b"Content-Type: message/rfc822\r\n\r\n\x00\xff garbage without headers\r\n"],
    ),
    "html-broken-markup": message(
        "Subject: html\r\nContent-Type: text/html; charset=utf-8\r\n",
        b"<html><body><p>unclosed <b><i><table><tr><td>\x00<!-- never closed <script",
    ),
    "only-headers": b"From: mallory@evil.example\r\nSubject: only headers\r\n",
    "no-headers": b"just a body line\r\n",
    "garbage-headers": message(
        "Date: yesterday at noon-ish\r\nMessage-ID: <<<>>>\r\nSubject:\r\n"
        'Content-Type: text/plain; charset\r\nTo: ,,,@,<>\r\nCc: "unterminated\r\n'
    ),
}
