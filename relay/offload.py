"""Reading large messages off the event loop, a few at a time.

Decoding a large message's parts, or checking its HTML, is CPU work: on the event loop
it would stall every SMTP session and page meanwhile. Work on a message over
`PARSE_IN_THREAD` bytes (any HTML check) runs in a thread of a small pool instead; the
pool's size bounds how many run at once (more would only share the same cores and hold
the GIL longer), and the rest wait their turn without blocking anything. Small messages
are read on the loop: a thread hop would cost more than the work.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

THREADS = 2
"""Large messages read at once by each pool."""
PARSE_IN_THREAD = 64 * 1024
"""Callers read messages larger than this in a worker thread, off the event loop."""


class Offload:
    """A bounded pool of threads for reading large messages."""

    def __init__(
        self, name: str, threads: int = THREADS, in_thread_above: int = PARSE_IN_THREAD
    ) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self.in_thread_above = in_thread_above

    async def run(self, size: int, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)`, which reads `size` bytes of mail: on the loop when that
        is small, else in one of the pool's threads (waiting for one to be free)."""
        if size <= self.in_thread_above:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))


VIEWS = Offload("relay-view")
"""Message pages, parts and API reads of the web UI."""
INGEST = Offload("relay-summary")
"""Summaries of messages being accepted: apart from the views, so that many people
looking at large mail never delay a 250."""
CHECKS = Offload("relay-check", in_thread_above=0)
"""The HTML compatibility check (relay.checks.html_compat), always in a thread: it takes
about a millisecond per kilobyte of HTML, and a page of mail is many kilobytes."""
