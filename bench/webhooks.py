"""How fast the webhooks' sender empties its outbox into a local receiver.

    python -m bench.webhooks                    # 5,000 messages, temporary SQLite file
    python -m bench.webhooks --count 2000 --db postgresql+asyncpg://postgres@127.0.0.1/bench

Stores `count` captured messages with one [[webhook]] asking for `received` (the events
written by ingest's group commit), then starts the sender against a receiver on loopback
(Starlette under uvicorn, in a process of its own, answering 200) and times until every event is
accepted and recorded. Prints the ingest rate with the outbox beside the rate without
it, and the events sent per second, signed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import tempfile
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from relay import ids, mime
from relay.config import StorageConfig, SuppressionConfig, WebhookConfig
from relay.events.worker import EventSender
from relay.status import Status
from relay.store import NewMessage, NewRecipient, Store

RAW = b"From: app@example.com\r\nTo: u@example.org\r\nSubject: Hello\r\n\r\nhi\r\n"


async def _hook(request: Request) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("ok")


def _serve(port: int) -> None:
    """The receiver's process: answer 200 to every POST."""
    app = Starlette(routes=[Route("/hook", _hook, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


def _receiver() -> tuple[str, multiprocessing.Process]:
    """A receiver in a process of its own (not sharing the sender's interpreter); its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = multiprocessing.Process(target=_serve, args=(port,), daemon=True)
    process.start()
    while True:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/hook", process


async def _ingest(store: Store, count: int) -> float:
    """Store `count` messages, 50 at a time (group commit); seconds taken."""
    summary = mime.summary.full(RAW)
    started = time.perf_counter()
    for first in range(0, count, 50):
        batch = [
            NewMessage(ids.new_id(), time.time(), "app@example.com",
                       [NewRecipient(f"u{i}@example.org", "capture", Status.CAPTURED)],
                       RAW, summary, "smtp", "127.0.0.1")
            for i in range(first, min(first + 50, count))
        ]  # fmt: skip
        await asyncio.gather(*(store.add_message(new) for new in batch))
    return time.perf_counter() - started


async def run(url: str, count: int) -> None:
    """Measure and print."""
    target, receiver = _receiver()
    hooks = (WebhookConfig(url=target, events=("received",), secret="bench-secret"),)
    rates = {}
    for label, configured in (("without webhooks", ()), ("with a webhook", hooks)):
        store = Store(StorageConfig(url=url))
        await store.open()
        store.configure(configured, SuppressionConfig())
        rates[label] = count / await _ingest(store, count)
        await store.close()
    store = Store(StorageConfig(url=url))
    await store.open()
    sender = EventSender(hooks, store)
    started = time.perf_counter()
    await sender.start()
    while sender.sent < count:  # noqa: ASYNC110 - a figure read now and then, nothing to wait on
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    await sender.stop()
    await store.close()
    for label, rate in rates.items():
        print(f"ingest {label}: {rate:,.0f} messages/s")
    receiver.terminate()
    print(f"webhooks: {count:,} events sent, signed, in {elapsed:.2f}s:"
          f" {count / elapsed:,.0f} events/s")  # fmt: skip


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--db", help="a database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    if args.db:
        asyncio.run(run(args.db, args.count))
        return
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", args.count))


if __name__ == "__main__":
    main()
