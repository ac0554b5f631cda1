"""Messages as POP3 sends them (relay/pop3/wire.py): CRLF, dot-stuffing, TOP's head."""

from __future__ import annotations

import pytest

from relay.pop3 import wire


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        (b"A: b\r\n\r\nbody\r\n", b"A: b\r\n\r\nbody\r\n.\r\n"),
        (b"A: b\r\n\r\n.dot\r\n..two\r\n", b"A: b\r\n\r\n..dot\r\n...two\r\n.\r\n"),
        (b"A: b\r\n\r\n.\r\n", b"A: b\r\n\r\n..\r\n.\r\n"),
        (b".first line\r\n", b"..first line\r\n.\r\n"),
        (b"A: b\n\nbare LF\n", b"A: b\r\n\r\nbare LF\r\n.\r\n"),
        (b"A: b\r\n\r\nno final newline", b"A: b\r\n\r\nno final newline\r\n.\r\n"),
        (b"", b".\r\n"),
    ],
)
def test_multiline_is_crlf_and_dot_stuffed(stored: bytes, sent: bytes) -> None:
    """Each case: what RETR sends after its +OK line."""
    assert wire.multiline(stored) == sent


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (0, b"A: b\r\n\r\n"),
        (1, b"A: b\r\n\r\none\r\n"),
        (2, b"A: b\r\n\r\none\r\ntwo\r\n"),
        (9, b"A: b\r\n\r\none\r\ntwo\r\nthree\r\n"),
    ],
)
def test_top_keeps_headers_and_the_first_lines(lines: int, expected: bytes) -> None:
    """TOP n lines: the headers, the blank line, then at most `lines` body lines."""
    assert wire.top(b"A: b\r\n\r\none\r\ntwo\r\nthree\r\n", lines) == expected


def test_top_of_a_message_without_a_body_is_the_message() -> None:
    """Headers only: TOP sends them all."""
    assert wire.top(b"A: b\r\n", 3) == b"A: b\r\n"
