"""SMTP helper processes, for `[server] smtp_processes` above 1.

One relay process runs its SMTP sessions on one core. With `smtp_processes = N` the
process that `relay serve` starts (the primary) starts N - 1 helpers: the same command
with `--smtp-helper`, which run only the SMTP listeners on the same ports (SO_REUSEPORT:
the kernel spreads new connections among the processes) and store what they accept with
a group commit of their own, before their 250 as always. The web UI, delivery, retention
and the search index stay in the primary.

A helper talks to its primary over its standard streams:
- stdin (primary → helper): nothing is ever written; end of file means the primary has
  gone, stopped or killed, and the helper stops too (draining its sessions as on SIGTERM);
- stdout (helper → primary), one line each: `ready` once its listeners accept; then, on
  SQLite, `message ID 0|1 SIZE` after each commit (1 when a recipient is due for
  delivery), so that the primary's worker sends it at once and the web UI shows it. When
  SIZE is not 0, the message's SIZE raw bytes follow the line, exactly as stored: mail to
  relay that the helper still holds in memory (`relay.store.fresh`), which the primary's
  worker then sends without reading it back from the database. On PostgreSQL the
  helper's NOTIFY already tells every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Callable

from relay.config import Config
from relay.errors import StartupError
from relay.store import Event, Events

log = logging.getLogger(__name__)

READY = b"ready"
MESSAGE = b"message"
PIPED_MAX = 16 * 1024 * 1024
"""Bytes waiting in the pipe to the primary above which a helper sends no more message
bytes along (the primary then reads those messages from the database)."""
START_TIMEOUT = 30.0
"""Seconds a helper may take to open its store and listeners."""


def as_helper(config: Config) -> Config:
    """`config` (resolved, with smtp_processes above 1, so every listener's port is shared)
    as a helper runs it: the listeners alone, starting no helpers of its own."""
    server = dataclasses.replace(
        config.server, roles=("smtp",), smtp_processes=1, smtp_in_primary=True
    )
    return dataclasses.replace(config, server=server)


def message_line(event: Event, raw: bytes | None = None) -> bytes:
    """What tells the primary about a message this helper stored: the line, and `raw`
    (the message's bytes) after it when given."""
    line = b"%s %s %d %d\n" % (MESSAGE, event.message_id.encode(), int(event.due), len(raw or b""))
    return line + raw if raw else line


def parse_line(line: bytes) -> tuple[Event, int] | None:
    """The event a helper's `message` line announces and the size of the raw bytes that
    follow it (0: none); None for any other line."""
    parts = line.split()
    if len(parts) not in (3, 4) or parts[0] != MESSAGE or parts[2] not in (b"0", b"1"):
        return None
    size = parts[3] if len(parts) == 4 else b"0"
    if not size.isdigit():
        return None
    event = Event("message", parts[1].decode("ascii", "replace"), due=parts[2] == b"1")
    return event, int(size)


class Helpers:
    """The primary's side: starts the helpers, relays what they announce to `events`, and
    stops them with itself."""

    def __init__(
        self,
        command: list[str],
        count: int,
        events: Events,
        on_message: Callable[[], None] = lambda: None,
        on_raw: Callable[[str, bytes], None] = lambda _id, _raw: None,
    ) -> None:
        self.command = command
        self.count = count
        self.events = events
        self.on_message = on_message
        """Called for each message a helper stored (the primary counts it as ingest)."""
        self.on_raw = on_raw
        """Called with a message's id and bytes when a helper sent them along."""
        self.processes: list[asyncio.subprocess.Process] = []
        self._readers: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """The helpers' process ids."""
        return [p.pid for p in self.processes]

    async def start(self) -> None:
        """Start every helper and wait until each accepts; StartupError if one cannot."""
        for number in range(1, self.count + 1):
            process = await asyncio.create_subprocess_exec(
                *self.command,
                str(number),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            self.processes.append(process)
            assert process.stdout is not None
            try:
                first = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
            except TimeoutError:
                raise StartupError(
                    f"smtp helper {number} did not start within {START_TIMEOUT:.0f}s"
                ) from None
            if first.strip() != READY:
                code = await process.wait()
                raise StartupError(f"smtp helper {number} exited during start-up (code {code})")
            self._readers.append(asyncio.create_task(self._relay(number, process)))

    async def _relay(self, number: int, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            told = parse_line(line)
            if told is None:
                continue
            event, size = told
            if size:
                try:
                    self.on_raw(event.message_id, await process.stdout.readexactly(size))
                except asyncio.IncompleteReadError:
                    break  # the helper died in the middle: its exit is reported below
            self.on_message()
            self.events.publish(event)
        code = await process.wait()
        if not self._stopping:
            # 0: it was told to stop (a signal of its own, say Ctrl-C in a terminal).
            log.log(
                logging.INFO if code == 0 else logging.ERROR,
                "smtp helper %d (pid %d) exited with code %s; the other processes keep serving",
                number,
                process.pid,
                code,
            )

    async def stop(self, grace: float) -> None:
        """Tell every helper to stop (end of its stdin) and wait for it to drain; kill one
        that takes longer than `grace` and a few seconds more."""
        self._stopping = True
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()
        waits = [asyncio.create_task(p.wait()) for p in self.processes]
        if waits:
            _done, late = await asyncio.wait(waits, timeout=grace + 5)
            for process in self.processes:
                if process.returncode is None:
                    log.warning("smtp helper pid %d did not stop in time: killed", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if late:
                await asyncio.wait(late)
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


class PrimaryLink:
    """A helper's side: `ready` once it serves, its stored messages to the primary (SQLite),
    and `on_gone` when the primary goes away."""

    def __init__(
        self,
        events: Events,
        forward: bool,
        on_gone: Callable[[], None],
        take_raw: Callable[[str], bytes | None] = lambda _id: None,
    ) -> None:
        self.events = events
        self.forward = forward
        self.on_gone = on_gone
        self.take_raw = take_raw
        """The bytes of a message to relay, if still in memory (forgotten here once taken)."""
        self._out: asyncio.WriteTransport | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Watch stdin, and forward the events of every message stored from now on
        (call before the listeners start)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        transport, _protocol = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
        self._out = transport
        self._tasks.append(asyncio.create_task(self._watch(reader)))
        if self.forward:
            subscribed = asyncio.Event()
            self._tasks.append(asyncio.create_task(self._forward(subscribed)))
            await subscribed.wait()

    def ready(self) -> None:
        """Tell the primary that this helper's listeners accept."""
        if self._out is not None:
            self._out.write(READY + b"\n")

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(4096):
            pass
        log.info("the primary process has gone: stopping")
        self.on_gone()

    async def _forward(self, subscribed: asyncio.Event) -> None:
        async with self.events.subscribe(limit=0) as queue:  # a wakeup lost is a late mail
            subscribed.set()
            while True:
                event = await queue.get()
                if event.kind == "closed":
                    return
                if event.kind == "message" and self._out is not None:
                    raw = self.take_raw(event.message_id) if event.due else None
                    if raw and self._out.get_write_buffer_size() > PIPED_MAX:
                        raw = None  # the primary lags behind: keep this helper's memory bounded
                    self._out.write(message_line(event, raw))

    async def stop(self) -> None:
        """Stop watching and forwarding; close stdout."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._out is not None:
            self._out.close()
