"""The aiosmtpd null handler: accepts every message and stores nothing (the Python ceiling).

Run as `python -m bench.nullsmtp HOST:PORT [--loop asyncio|uvloop]`. It uses aiosmtpd's SMTP
with the same options as relay's listener, so the gap between the two is what relay's
handler and store cost.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

OK = "250 OK"


class NullHandler:
    """Answers 250 to DATA and keeps nothing."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Drop the message, say it was accepted."""
        return OK


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor for `name`: asyncio's own or uvloop's."""
    if name == "uvloop":
        import uvloop

        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


async def serve(host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    handler = NullHandler()

    def session() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=33554432,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="null.bench",
            ident="null",
            loop=loop,
        )

    server = await loop.create_server(session, host, port, reuse_address=True, backlog=512)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> None:
    """Parse HOST:PORT and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address", help="HOST:PORT to listen on (loopback)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args(argv)
    host, _, port = args.address.rpartition(":")
    kwargs: dict[str, Any] = {"loop_factory": loop_factory(args.loop)}
    with asyncio.Runner(**kwargs) as runner:
        runner.run(serve(host, int(port)))


if __name__ == "__main__":
    main()
