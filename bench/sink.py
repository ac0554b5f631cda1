"""A recording SMTP sink: accepts every message and notes when, for bench/relay.py.

Run as `python -m bench.sink HOST:PORT [--loop asyncio|uvloop]`. Like bench/nullsmtp.py it
keeps no message, but for each one it notes `time.monotonic()` when it answers 250 (CLOCK_MONOTONIC
is system-wide on Linux, so the time compares with other processes' clocks) and the value of
the message's `X-Bench-Id` header, if any; it also counts the connections made to it. It
offers PIPELINING (RFC 2920), as Postfix and most mail servers do.

Its control channel is stdin/stdout, one line each way: `count` answers the number of
messages recorded so far; `take` answers a JSON object with everything recorded since the
last `take` ({"connections": N, "accepted": [[TIME, ID or null], ...]}) and starts afresh.
It stops at SIGTERM, SIGINT or the end of stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.nullsmtp import loop_factory

OK = "250 2.0.0 OK"
ID_HEADER = b"X-Bench-Id"


def bench_id(content: bytes) -> str | None:
    """The value of the X-Bench-Id header in the head of `content`, or None."""
    end = content.find(b"\r\n\r\n")
    head = content if end < 0 else content[: end + 2]
    start = head.find(b"\n" + ID_HEADER + b":")
    if start < 0:
        if not head.startswith(ID_HEADER + b":"):
            return None
        start = -1
    value_at = start + 1 + len(ID_HEADER) + 1
    stop = head.find(b"\r\n", value_at)
    return head[value_at:stop].strip().decode("ascii", errors="replace")


class Recorder:
    """What the sink saw since the last `take`."""

    def __init__(self) -> None:
        self.connections = 0
        self.accepted: list[tuple[float, str | None]] = []

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, lines: list[str]
    ) -> list[str]:
        """Greet as aiosmtpd does, and offer PIPELINING (aiosmtpd reads commands in order
        whether or not they were pipelined)."""
        session.host_name = hostname
        return [*lines[:-1], "250-PIPELINING", lines[-1]]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Note the time and the message's bench id, say it was accepted."""
        content = envelope.original_content or b""
        self.accepted.append((time.monotonic(), bench_id(content)))
        return OK

    def take(self) -> dict[str, Any]:
        """Everything recorded so far, forgotten here."""
        taken = {"connections": self.connections, "accepted": self.accepted}
        self.connections = 0
        self.accepted = []
        return taken


class CountingSMTP(SMTP):
    """aiosmtpd's SMTP session, counting the connections made to the sink."""

    def __init__(self, recorder: Recorder, **kwargs: Any) -> None:
        super().__init__(recorder, **kwargs)
        self.recorder = recorder

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection, then serve it."""
        self.recorder.connections += 1
        super().connection_made(transport)


async def control(recorder: Recorder, stop: asyncio.Event) -> None:
    """Answer `count` and `take` on stdin/stdout until stdin ends."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).strip()
        if not line:
            break
        if line == b"count":
            answer: object = len(recorder.accepted)
        elif line == b"take":
            answer = recorder.take()
        else:
            answer = {"error": f"unknown command {line.decode(errors='replace')!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    stop.set()


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM, SIGINT or the end of stdin."""
    loop = asyncio.get_running_loop()
    recorder = Recorder()

    def session() -> SMTP:
        return CountingSMTP(
            recorder,
            data_size_limit=33554432,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="sink.bench",
            ident="sink",
            loop=loop,
        )

    server = await loop.create_server(session, host, port, reuse_address=True, backlog=512)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    controller = asyncio.create_task(control(recorder, stop))
    await stop.wait()
    controller.cancel()
    server.close()


def main(argv: list[str] | None = None) -> None:
    """Parse HOST:PORT and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address", help="HOST:PORT to listen on (loopback)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args(argv)
    host, _, port = args.address.rpartition(":")
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(serve(host, int(port)))


if __name__ == "__main__":
    main()
