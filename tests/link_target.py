"""A real HTTP server for link-check tests: uvicorn on a loopback address, answering by path.

    /ok            200                    /missing       404
    /no-head       405 to HEAD, 200 to GET
    /to?url=U      302 to U               /chain/N       302 to /chain/N-1; /chain/0 is 200
    /slow          answers only when the server stops (a server that never answers)
    /busy/N        200 after 0.2 s; `most_at_once` records the most requests in flight

It records each request as (method, path, Host header). With `tls` (cert file, key file)
it serves https.

    async with serve("127.0.0.2") as target:
        target.url("/ok")
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn

Send = Callable[[dict[str, Any]], Awaitable[None]]
BUSY_SECONDS = 0.2


@dataclass
class Target:
    """The running server's address and what it has seen."""

    host: str
    port: int = 0
    scheme: str = "http"
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    in_flight: int = 0
    most_at_once: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        """The URL of `path` on this server, by its address."""
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    async def app(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        """The ASGI application."""
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        self.requests.append((method, path, headers.get("host", "")))
        status, location = await self._answer(method, path, scope["query_string"].decode())
        reply = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
        if location:
            reply.append((b"location", location.encode()))
        await send({"type": "http.response.start", "status": status, "headers": reply})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else b"ok"})

    async def _answer(self, method: str, path: str, query: str) -> tuple[int, str]:
        if path == "/ok":
            return 200, ""
        if path == "/no-head":
            return (405 if method == "HEAD" else 200), ""
        if path == "/to":
            return 302, parse_qs(query)["url"][0]
        if path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            return (200, "") if left == 0 else (302, f"/chain/{left - 1}")
        if path == "/slow":
            await self.stopping.wait()
            return 200, ""
        if path.startswith("/busy/"):
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
            await asyncio.sleep(BUSY_SECONDS)
            self.in_flight -= 1
            return 200, ""
        return 404, ""

    def seen(self, path: str) -> list[tuple[str, str, str]]:
        """The requests for `path`."""
        return [r for r in self.requests if r[1] == path]


@contextlib.asynccontextmanager
async def serve(
    host: str = "127.0.0.1", tls: tuple[str, str] | None = None
) -> AsyncIterator[Target]:
    """Run a `Target` on `host` and a free port until the block ends."""
    target = Target(host, scheme="https" if tls else "http")
    config = uvicorn.Config(
        target.app,
        host=host,
        port=0,
        lifespan="off",
        interface="asgi3",
        log_level="warning",
        access_log=False,
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    target.port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield target
    finally:
        target.stopping.set()
        server.should_exit = True
        await task
