"""The quick summary gives what the full MIME parse gives, and leaves it what it cannot do."""

from __future__ import annotations

import pytest

from relay import mime
from relay.mime import summary
from tests import mail

CRLF = b"\r\n"


def message(*headers: str, body: bytes = b"Hello there,\r\nhow are you?\r\n") -> bytes:
    """A message from header lines and a body, CRLF line ends."""
    return CRLF.join(h.encode() for h in headers) + CRLF + CRLF + body


RECEIVED = (
    "Received: from client.example ([127.0.0.1])\r\n\tby relay.example (relay) with ESMTP"
    " id 01JDZ4V6ZVX3Q3A1XE6B5M0K8N;\r\n\tSat, 21 Nov 2026 21:23:41 +0000"
)
SMTP_SOURCE = message(
    RECEIVED,
    "From: <a@example.com>",
    "To: <b@example.com>",
    "Date: Sat, 21 Nov 2026 21:23:41 +0000 (UTC)",
    "Message-Id: <3f55.0003.0000@vm>",
    body=b"".join(b"%dXXXXXXXXXXXXXXXXXXXXXXXXXX\r\n" % i for i in range(100)),
)

QUICK = {
    "smtp-source's message": SMTP_SOURCE,
    "plain with a dot line": mail.plain(),
    "named addresses, two recipients": message(
        "From: Alice Example <alice@example.com>",
        "To: Bob <bob@example.org>, carol@example.net",
        "Cc: Dave   Smith <dave@example.com>",
        "Subject: Two recipients",
    ),
    "folded subject and from": message(
        "Subject: a subject that goes on\r\n\tand on",
        "From: Alice\r\n <alice@example.com>",
    ),
    "quoted display name": message('From: "Doe, John" <john@example.com>', "Subject: q"),
    "dotted display name": message("From: John Q. Public <john@example.com>"),
    "RFC 2047 subject and name": message(
        "Subject: =?utf-8?b?5a2j5bqm5oql5ZGK?=",
        "From: =?utf-8?q?Andr=C3=A9?= <andre@example.com>",
    ),
    "message id with spaces": message("Message-ID:   <id-1@example.com>  ", "Subject: x"),
    "duplicate subject: the first counts": message("Subject: first", "Subject: second"),
    "quoted-printable UTF-8": message(
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        body=b"caf=C3=A9 cr=C3=A8me, a soft=\r\n break\r\n",
    ),
    "8-bit body without charset": message("Subject: guess", body="naïve café\r\n".encode()),
    "latin-1 with format=flowed": message(
        'Content-Type: text/plain; charset="ISO-8859-1"; format=flowed',
        "Content-Transfer-Encoding: 8bit",
        body="déjà vu\r\n".encode("latin-1"),
    ),
    "unknown charset": message(
        "Content-Type: text/plain; charset=x-klingon", body=b"hello \xc3\xa9\r\n"
    ),
    "bare LF line ends": b"Subject: lf\nFrom: a@example.com\n\nline one\nline two\n",
    "empty body": message("Subject: nothing", body=b""),
    "control characters and white space": message(
        "Subject: \x01ctl\x7f", body=b"  a\x00b\r\n\r\n\t c \x0b d  \r\n" * 30
    ),
    "long body over the text limit": message("Subject: big", body=b"word " * 14000),
    "header without a space after the colon": message("Subject:tight", "To:b@example.com"),
    "X-Tags, folded": message("Subject: t", "X-Tags: invoice,\r\n  Order 12, urgent"),
}

FULL = {
    "multipart/alternative": mail.chinese_alternative(),
    "attachments": mail.with_attachments(),
    "base64 body": message(
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        body=b"aGVsbG8gd29ybGQ=\r\n",
    ),
    "attachment disposition": message(
        "Content-Type: text/plain", 'Content-Disposition: attachment; filename="a.txt"'
    ),
    "file name on the type": message('Content-Type: text/plain; name="a.txt"'),
    "RFC 2231 parameter": message("Content-Type: text/plain; charset*=utf-8''x"),
    "8-bit header": message("Subject: café (UTF-8 bytes, no encoded word)"),
    "html": message("Content-Type: text/html", body=b"<p>Hello <b>world</b></p>\r\n"),
    "uuencoded": message("Content-Transfer-Encoding: x-uuencode"),
    "no blank line after the headers": b"Subject: only headers\r\nFrom: a@example.com\r\n",
    "starts with a blank line": b"\r\nSubject: not a header\r\n\r\nbody\r\n",
    "a line that is not a header": message("Subject: x", "not a header line"),
    "space before the colon": message("Subject : x"),
    "larger than the quick road takes": message(
        "Subject: big", body=b"line of text\r\n" * (summary.QUICK_MAX // 14 + 1)
    ),
}


@pytest.mark.parametrize("raw", QUICK.values(), ids=QUICK.keys())
def test_quick_summary_equals_the_full_parse(raw: bytes) -> None:
    """For single text/plain parts the quick road is taken and gives the same Summary."""
    fast = summary.quick(raw)
    assert fast is not None
    assert fast == mime.summary.full(raw)


@pytest.mark.parametrize("raw", FULL.values(), ids=FULL.keys())
def test_anything_else_goes_through_the_full_parse(raw: bytes) -> None:
    """Multipart, attachments, encoded bodies, 8-bit headers, odd syntax: the full parse."""
    assert summary.quick(raw) is None
    assert summary.summarize(raw) == mime.summary.full(raw)


def test_summary_keeps_the_x_tags_header_on_both_roads() -> None:
    """X-Tags (the first, unfolded) is in the summary, quick road and full parse alike."""
    raw = QUICK["X-Tags, folded"]
    assert summary.summarize(raw).tags == "invoice, Order 12, urgent"
    multipart = b"X-Tags: a, b\r\n" + mail.with_attachments()
    assert summary.quick(multipart) is None and summary.summarize(multipart).tags == "a, b"
    assert summary.full(message("Subject: none")).tags == ""


def test_quick_summary_of_a_typical_message() -> None:
    """The fields come out decoded: addresses rendered, id without brackets, snippet folded."""
    got = summary.summarize(QUICK["named addresses, two recipients"])
    assert (got.from_, got.to, got.cc) == (
        "Alice Example <alice@example.com>",
        "Bob <bob@example.org>, carol@example.net",
        "Dave Smith <dave@example.com>",
    )
    assert (got.subject, got.snippet, got.attachments) == (
        "Two recipients",
        "Hello there, how are you?",
        0,
    )
    assert summary.summarize(SMTP_SOURCE).message_id == "3f55.0003.0000@vm"
