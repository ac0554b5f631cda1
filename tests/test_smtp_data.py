"""The DATA reader (relay.smtp.data) and the submission fix-ups (relay.smtp.fixups), on
their own: a real StreamReader fed with bytes, and header sections."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from relay.smtp import replies
from relay.smtp.data import Data, read_data, reader_limit
from relay.smtp.fixups import missing_headers

MAX_LINE = 100
CRLF = b"\r\n"


async def read(wire: bytes, max_size: int = 10_000, max_line: int = MAX_LINE) -> Data:
    """Feed `wire` (and EOF) to a StreamReader and read one message from it."""
    reader = asyncio.StreamReader(limit=reader_limit(max_line))
    reader.feed_data(wire)
    reader.feed_eof()
    return await read_data(reader, max_size, max_line, lambda: None)


@pytest.mark.parametrize(
    ("wire", "content"),
    [
        (b"a\r\nb\r\n.\r\n", b"a\r\nb\r\n"),
        (b"..leading dot\r\n.\r\n", b".leading dot\r\n"),
        (b"bare\nLF and bare\rCR\r\n.\r\n", b"bare\nLF and bare\rCR\r\n"),
        (b".\r\n", b""),
        (b"x" * MAX_LINE + b"\r\n.\r\n", b"x" * MAX_LINE + b"\r\n"),
        (b"." + b"." * MAX_LINE + b"\r\n.\r\n", b"." * MAX_LINE + b"\r\n"),
        ("ünïcödé\r\n".encode() + b"\xff\xfe\r\n.\r\n", "ünïcödé\r\n".encode() + b"\xff\xfe\r\n"),
    ],
    ids=["lines", "dot-stuffed", "bare-cr-lf", "empty", "line-at-limit", "dots-at-limit", "8bit"],
)
async def test_data_is_kept_byte_exact(wire: bytes, content: bytes) -> None:
    """What comes before the lone dot is kept as sent, less the transparency dots."""
    assert await read(wire) == Data(content)


@pytest.mark.parametrize(
    ("wire", "refusal"),
    [
        (b"x" * (MAX_LINE + 1) + b"\r\n.\r\n", replies.LINE_TOO_LONG),
        (b"x" * (MAX_LINE * 50) + b"\r\nmore\r\n.\r\n", replies.LINE_TOO_LONG),
        (b"x" * (MAX_LINE * 50) + b".\r\n" + b"tail\r\n.\r\n", replies.LINE_TOO_LONG),
        ((b"y" * 98 + b"\r\n") * 101 + b".\r\n", replies.MESSAGE_TOO_BIG),
    ],
    ids=["one-over", "far-over", "far-over-ending-in-dot", "too-big"],
)
async def test_refusals_come_after_the_final_dot(wire: bytes, refusal: str) -> None:
    """An overlong line or message is refused once the lone dot has been read, and what
    follows it is left for the next command."""
    reader = asyncio.StreamReader(limit=reader_limit(MAX_LINE))
    reader.feed_data(wire + b"NOOP\r\n")
    reader.feed_eof()
    data = await read_data(reader, 10_000, MAX_LINE, lambda: None)
    assert data == Data(b"", refusal)
    assert await reader.readline() == b"NOOP\r\n"


@pytest.mark.parametrize(("max_size", "ok"), [(100, True), (99, False)])
async def test_size_limit_counts_the_content(max_size: int, ok: bool) -> None:
    """A message of exactly max_size bytes once unstuffed is accepted, a byte less is not."""
    content = b".x\r\n" + b"y" * 94 + b"\r\n"
    assert len(content) == 100
    data = await read(b"." + content + b".\r\n", max_size=max_size)
    assert data == (Data(content) if ok else Data(b"", replies.MESSAGE_TOO_BIG))


async def test_a_message_cut_anywhere_reads_the_same() -> None:
    """Wherever the network cuts the message (in a CRLF, before a stuffed dot, inside the
    final dot), what is read is the same and what follows is left for the next command."""
    content = (b"y" * 98 + CRLF) * 3 + b"..z" + CRLF + b"x" * 90 + CRLF
    wire = b"." + content.replace(CRLF + b".", CRLF + b"..") + b".\r\n"
    expected = Data(content)
    assert await read(wire) == expected
    for cut in range(1, len(wire)):
        reader = asyncio.StreamReader(limit=reader_limit(MAX_LINE))
        reader.feed_data(wire[:cut])
        reading = asyncio.create_task(read_data(reader, 10_000, MAX_LINE, lambda: None))
        await asyncio.sleep(0)  # the task reads what there is, then waits for more
        assert not reading.done()
        reader.feed_data(wire[cut:] + b"NOOP\r\n")
        reader.feed_eof()
        assert await reading == expected, cut
        assert await reader.readline() == b"NOOP\r\n"


async def test_client_gone_before_the_dot_raises() -> None:
    """EOF in the middle of the message is not a message."""
    with pytest.raises(asyncio.IncompleteReadError):
        await read(b"Subject: half\r\n\r\nthe first half")


async def test_oversized_message_is_not_held_in_memory() -> None:
    """Reading 8 MB against a 1 MB limit, as a network delivers it, never holds much more
    than the limit."""
    line = b"z" * 998 + b"\r\n"
    reader = asyncio.StreamReader(limit=reader_limit(1000))

    async def network() -> None:
        for _ in range(8000 // 64):
            reader.feed_data(line * 64)
            await asyncio.sleep(0)
        reader.feed_data(b".\r\n")
        reader.feed_eof()

    tracemalloc.start()
    try:
        sending = asyncio.create_task(network())
        data = await read_data(reader, 1_000_000, 1000, lambda: None)
        await sending
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data.refusal == replies.MESSAGE_TOO_BIG
    assert peak < 3_000_000


@pytest.mark.parametrize(
    ("message", "added"),
    [
        (b"Subject: s\r\n\r\nbody\r\n", ["Message-ID", "Date"]),
        (b"Subject: s\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nbody\r\n", ["Message-ID"]),
        (b"message-id: <a@b>\r\nDATE: x\r\n\r\nbody\r\n", []),
        (b"Subject: s\r\n\r\nMessage-ID: <in@body>\r\nDate: in body\r\n", ["Message-ID", "Date"]),
        (b"Subject: folded\r\n Message-ID: <not@a.header>\r\n\r\nbody\r\n", ["Message-ID", "Date"]),
        (b"\r\nonly a body\r\n", ["Message-ID", "Date"]),
        (b"Subject: no body at all\r\n", ["Message-ID", "Date"]),
    ],
    ids=["neither", "has-date", "has-both-any-case", "only-in-body", "folded", "no-headers",
         "no-body"],
)  # fmt: skip
def test_missing_message_id_and_date_are_made(message: bytes, added: list[str]) -> None:
    """Only header fields count; the lines made are valid header lines ending in CRLF."""
    lines = missing_headers(message, "relay.example", 1_700_000_000.0).decode()
    names = [line.split(":", 1)[0] for line in lines.splitlines()]
    assert names == added
    assert lines == "" or lines.endswith("\r\n")
    if "Message-ID" in added:
        assert "@relay.example>" in lines
