"""POP3 on a large mailbox: how long STAT, LIST and UIDL take, and a login, a RETR.

    python -m bench.pop3                       # 1,000 messages, 5 rounds
    python -m bench.pop3 --messages 10000 --rounds 3

A SQLite file is filled through `relay.ingest.submit` with 5 KB messages, then a relay
serves it on a POP3 listener (plain, allow_insecure_auth) on loopback, and Python's
poplib, as a script would use it, logs in and asks STAT, LIST, UIDL and RETR of one
message. Each figure is the median of the rounds, in milliseconds, client side (the
round trip included). The login figure is mostly the scrypt check of the password
(`relay hash-password`'s cost), run in a thread, and the listing of the mailbox.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import poplib
import statistics
import tempfile
import threading
import time
import types
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from relay import ingest, passwords
from relay.app import Relay
from relay.config import AuthConfig, Config, ListenerConfig, StorageConfig, WebConfig
from relay.store import Store

T = TypeVar("T")
PASSWORD = "bench password"
BODY = "\r\n".join(["The quick brown fox jumps over the lazy dog. " * 2] * 55)
"""About 5 KB of text in lines of 90 characters (poplib refuses lines over 2048)."""


def config_for(db: Path) -> Config:
    """A relay with one POP3 listener and one user, on free loopback ports."""
    auth = AuthConfig(
        users=types.MappingProxyType({"bench": passwords.hash_password(PASSWORD)}),
        failure_delay=0.0,
    )
    pop3 = ListenerConfig(name="pop3", address="127.0.0.1:0", kind="pop3", allow_insecure_auth=True)
    return dataclasses.replace(
        Config(),
        listener=(pop3,),
        web=WebConfig(address="127.0.0.1:0"),
        storage=StorageConfig(url=f"sqlite+aiosqlite:///{db}", sqlite_synchronous="normal"),
        auth=auth,
        server=dataclasses.replace(Config().server, roles=("smtp", "web")),
        source="bench",
    )


async def fill(config: Config, count: int) -> None:
    """Store `count` 5 KB messages through ingest, 64 at a time."""
    store = Store(config.storage)
    await store.open()
    origin = ingest.Origin("smtp", "127.0.0.1")
    try:
        for start in range(0, count, 64):
            batch = range(start, min(count, start + 64))
            await asyncio.gather(
                *(
                    ingest.submit(
                        store,
                        config,
                        "sender@example.com",
                        ["someone@example.org"],
                        f"Subject: message {n}\r\n\r\n{BODY}\r\n".encode(),
                        origin,
                    )
                    for n in batch
                )
            )
    finally:
        await store.close()


class Served:
    """A relay running on its own loop in a thread."""

    def __init__(self, config: Config) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.relay = self.call(self._start(config))

    @staticmethod
    async def _start(config: Config) -> Relay:
        relay = Relay(config)
        await relay.start()
        return relay

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the relay's loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    @property
    def port(self) -> int:
        """The POP3 listener's port."""
        return self.relay.pop3[0].bound[1]

    def stop(self) -> None:
        """Stop the relay and its loop."""
        self.call(self.relay.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def timed(work: Callable[[], object]) -> float:
    """Milliseconds `work` takes."""
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) * 1000


def one_round(port: int) -> dict[str, float]:
    """A session's figures: login, STAT, LIST, UIDL, RETR 1, QUIT."""
    client = poplib.POP3("127.0.0.1", port, timeout=60)
    figures = {"login": timed(lambda: (client.user("bench"), client.pass_(PASSWORD)))}
    figures["STAT"] = timed(client.stat)
    figures["LIST"] = timed(client.list)
    figures["UIDL"] = timed(client.uidl)
    figures["RETR"] = timed(lambda: client.retr(1))
    figures["QUIT"] = timed(client.quit)
    return figures


def main() -> None:
    """Fill a mailbox, serve it, and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = config_for(Path(tmp) / "relay.db")
        started = time.perf_counter()
        asyncio.run(fill(config, args.messages))
        print(f"stored {args.messages} messages in {time.perf_counter() - started:.1f} s")
        served = Served(config)
        try:
            rounds = [one_round(served.port) for _ in range(args.rounds)]
        finally:
            served.stop()
    print(f"POP3, {args.messages} messages of 5 KB, medians of {args.rounds} sessions (ms):")
    for name in rounds[0]:
        print(f"  {name:6} {statistics.median(r[name] for r in rounds):8.1f}")


if __name__ == "__main__":
    main()
