"""The large-message helpers, pure: DATA's wire form made in chunks, and the summary of a
large message read from the start of its text."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from relay import mime
from relay.delivery.wire import wire_chunks


def aiosmtplib_wire_form(message: bytes) -> bytes:
    """What aiosmtplib's own data() sends before the final dot."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message))


@pytest.mark.parametrize(
    "message",
    [
        b"Subject: x\r\n\r\nplain CRLF lines\r\n",
        b"Subject: x\n\nbare LF lines\n.leading dot\n",
        b"Subject: x\r\n\r\nbare CR\rin the middle\r\n..two dots\r\nno final newline",
        b".dot on the first line\r\n" * 3,
        b"a" * 300 + b"\r\n" + b"b" * 10 + b"\r\n.c\r\n",
        b"\r\n" * 50,
        b"Subject: x\r\n\r\nCRLF lines\r\n.a dot after a CRLF\r\n",
        b"Subject: x\r\n\r\nCRLF lines, then a lone CR at the end\r",
        b"Subject: x\r\n\r\nCRLF lines\r\nand one bare LF\n",
    ],
)
@pytest.mark.parametrize("size", [1, 7, 64, 65536])
def test_chunks_add_up_to_the_wire_form(message: bytes, size: int) -> None:
    """Whatever the chunk size, the chunks are aiosmtplib's wire form: CRLF line ends, dots
    stuffed at line starts (also at a chunk's start), a final CRLF."""
    chunks = list(wire_chunks(message, size))
    assert b"".join(chunks) == aiosmtplib_wire_form(message)
    assert all(c.endswith(b"\r\n") for c in chunks)


def test_chunks_stay_near_their_size() -> None:
    """A large message goes out in pieces of about the chunk size, never whole."""
    message = b"0123456789abcdef\r\n" * 100_000
    sizes = [len(c) for c in wire_chunks(message, 64 * 1024)]
    assert len(sizes) > 20 and max(sizes) <= 64 * 1024


def big(attachments: int = 2, text: str = "See attached.\n") -> bytes:
    """A multipart message of over a megabyte: text, an HTML alternative, attachments."""
    msg = EmailMessage()
    msg["Subject"] = "Quarterly figures"
    msg["From"] = "Alice <alice@example.com>"
    msg["To"] = "bob@example.net"
    msg["Message-ID"] = "<big-1@example.com>"
    msg.set_content(text + "-- \nAlice\n")
    msg.add_alternative(f"<p>{text}</p>", subtype="html")
    for i in range(attachments):
        msg.add_attachment(
            bytes(range(256)) * (6000 // attachments + 1) * 4,
            maintype="application",
            subtype="octet-stream",
            filename=f"part{i}.bin",
        )
    raw = msg.as_bytes()
    assert len(raw) > 1024 * 1024
    return raw


@pytest.mark.parametrize(
    "raw",
    [
        big(),
        big(attachments=5),
        big(text="Long body line.\n" * 200_000),
        (b"Subject: not MIME\r\n\r\n" + b"-- a line like a boundary\r\n" + b"x" * 70 + b"\r\n")
        * 20_000,
        b"Subject: one huge text\r\n\r\n" + (b"word " * 15 + b"\r\n") * 40_000,
    ],
    ids=["two attachments", "five attachments", "long text", "dash lines", "plain text"],
)
def test_summary_of_a_large_message_equals_the_full_parse(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the first SUMMARY_READ bytes of the text gives the summary that reading all
    of it gives."""
    assert len(raw) > 4 * mime.summary.SUMMARY_READ
    summary = mime.summary.full(raw)
    monkeypatch.setattr(mime.summary, "SUMMARY_READ", len(raw))  # read it whole
    assert summary == mime.summary.full(raw)
