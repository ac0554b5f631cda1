"""A webhook receiver for tests: a small Starlette app under uvicorn on a free loopback
port, in a thread of its own. It records every POST (headers, body) and answers as the
test scripts it: 200 by default, or a status, or a hang; `stop` takes it down (its port
then refuses connections) and `start` brings it back on the same port."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support import free_port

HANG = -1
"""An answer that never comes (the request waits until the server stops)."""


@dataclass(frozen=True)
class Received:
    """One POST as the receiver got it."""

    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


class Receiver:
    """An HTTP server that records POSTs to /hook and answers as scripted."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[Received] = []
        self.answers: list[int] = []
        self.default = 200
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where webhooks POST."""
        return f"http://127.0.0.1:{self.port}/hook"

    def script(self, *answers: int) -> None:
        """Answer the next POSTs with these statuses (HANG: no answer), then the default."""
        with self._lock:
            self.answers.extend(answers)

    async def _hook(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        with self._lock:
            status = self.answers.pop(0) if self.answers else self.default
            self.received.append(Received(dict(request.headers), body, status))
        if status == HANG:
            await asyncio.sleep(3600)
        return PlainTextResponse("ok" if status < 300 else "no", status_code=status)

    def start(self) -> Receiver:
        """Serve on `port`; return once it listens."""
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving: connections to the port are refused until `start`."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            self._thread.join(10)
            self._server = None

    def accepted(self) -> list[Received]:
        """The POSTs answered 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def wait(self, predicate: Callable[[Receiver], bool], within: float = 20) -> None:
        """Wait until `predicate(self)` holds."""
        deadline = time.monotonic() + within
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {len(self.received)}")
            time.sleep(0.02)

    async def until(self, predicate: Callable[[Receiver], bool], within: float = 20) -> None:
        """`wait`, for a test running on an event loop."""
        deadline = time.monotonic() + within
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {len(self.received)}")
            await asyncio.sleep(0.02)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The bodies accepted (of the event `name`), in the order they came."""
        return [r.json for r in self.accepted() if name is None or r.json["event"] == name]
