"""A hostile upstream (or MX host: anyone on the network): replies full of NUL, control
characters and bytes that are not UTF-8 are recorded safely on both backends, and the
recipient settles (failed or deferred) instead of looping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from relay.status import Status
from tests.queueing import (
    FakeClock,
    new_message,
    relay_config,
    running_worker,
    upstream_at,
    wait_for_status,
)

NASTY = b"\x00\xff\xfe\x1b[31m nasty\x07 \xc3( reply"
A = "victim@example.com"


@asynccontextmanager
async def evil_upstream(rcpt_reply: bytes) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A raw SMTP server that answers RCPT with `rcpt_reply` (bytes as they are); yields
    its port and the command lines it received."""
    received: list[bytes] = []

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 evil.example ESMTP\r\n")
        while line := await reader.readline():
            received.append(line)
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250 evil.example\r\n")
            elif verb == b"RCPT":
                writer.write(rcpt_reply)
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], received
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        (b"550 5.1.1 " + NASTY + b"\r\n", Status.FAILED),
        (b"451-4.3.0 " + NASTY + b"\r\n451 second line \x00\r\n", Status.DEFERRED),
    ],
)
async def test_hostile_reply_is_recorded_printable(
    db_url: str, reply: bytes, status: Status
) -> None:
    """The reply is stored with "?" for what cannot be shown; one attempt, no loop."""
    async with evil_upstream(reply) as (port, received):
        config = relay_config(db_url, {"smarthost": upstream_at(port)})
        clock = FakeClock()
        async with running_worker(config, clock) as (store, _):
            new = new_message([A], received_at=clock.now())
            await store.add_message(new)
            rows = await wait_for_status(store, new.id, {A: status})
            attempts = await store.timeline.attempts(new.id)
    assert rows[A].attempts == 1 and len(attempts) == 1
    text = rows[A].last_text or ""
    assert text == attempts[0].text
    assert text.startswith("????[31m nasty? ?( reply")
    assert text.isprintable()
    assert sum(line.startswith(b"RCPT") for line in received) == 1
