"""Large messages: 40 MB stored and delivered on every backend by a real `relay serve`, the
process's peak memory growing by a small multiple of the message (measured, reported)."""

from __future__ import annotations

import hashlib
import smtplib
from pathlib import Path

import pytest

from tests.cluster import Node, start_all, stop_all
from tests.upstream import Upstream

SIZE = 40 * 1024 * 1024
LIMIT = 64 * 1024 * 1024
MAX_GROWTH = {"sqlite+aiosqlite": 4.0, "postgresql+asyncpg": 4.5, "mysql+asyncmy": 4.0}
"""Peak resident growth allowed, in multiples of the message: issue 8's target of 4 on
SQLite (measured 3.2), a little more through asyncpg, whose encoding and reading of a
bytea each hold one more copy (measured 4.0); MySQL in 1 MiB chunks (measured 3.2)."""


def big_message(size: int = SIZE) -> bytes:
    """A message of `size` bytes: a text part, then a base64 attachment with leading dots."""
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo" * 2 + b"\r\n"
    head = (
        b"From: a@example.com\r\nTo: b@example.net\r\nSubject: big\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\n.a line that needs a dot stuffed\r\n"
        b"--b1\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="big.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    tail = b"--b1--\r\n"
    return head + line * ((size - len(head) - len(tail)) // len(line)) + tail


@pytest.mark.slow
def test_a_40_mb_message_is_stored_and_delivered_in_bounded_memory(
    db_url: str, tmp_path: Path
) -> None:
    """40 MB in over SMTP, out to the upstream byte for byte; the server's peak resident
    size grows by at most MAX_GROWTH times the message while it does."""
    message = big_message()
    with Upstream(data_size_limit=LIMIT).start() as upstream:
        node = Node(
            "big",
            tmp_path,
            db_url,
            upstream.port,
            listener_extra=f"max_message_size = {LIMIT}",
        )
        try:
            start_all([node])
            before = node.memory()
            node.reset_peak()
            with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=120) as client:
                client.sendmail("a@example.com", ["b@example.net"], message)
            upstream.wait(lambda u: len(u.transactions) == 1, 120)
            peak = node.memory("VmHWM")
        finally:
            stop_all([node])
    (sent,) = upstream.delivered
    growth = (peak - before) / len(message)
    backend = db_url.split(":", 1)[0]
    print(
        f"\n{backend}: a {len(message) / 2**20:.0f} MiB message stored and delivered; server"
        f" resident {before / 2**20:.0f} MiB before, peak {peak / 2**20:.0f} MiB:"
        f" growth {growth:.1f}x the message"
    )
    assert sent.data.endswith(message)  # our Received header, then the bytes as sent
    assert hashlib.sha256(sent.data[-len(message) :]).digest() == hashlib.sha256(message).digest()
    assert growth <= MAX_GROWTH[backend]
