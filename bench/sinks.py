"""The targets of bench/relay.py: the recording sink (bench/sink.py in its own process,
asked over its stdin/stdout), relay relaying everything to it, a throwaway Postfix whose
relayhost it is, and the sink alone (the ceiling of the set-up)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import postfix, servers

HOST = servers.HOST
SINK_TIMEOUT = 120.0
"""Seconds to wait for the sink to get every message of a run before giving up."""


class Sink(servers.Server):
    """bench/sink.py in its own process, asked over its stdin/stdout what it recorded."""

    name = "sink"

    def __init__(self, event_loop: str) -> None:
        super().__init__()
        self.event_loop = event_loop

    def command(self) -> list[str]:
        """python -m bench.sink on the port."""
        loop = "uvloop" if self.event_loop == "uvloop" else "asyncio"
        return [sys.executable, "-m", "bench.sink", f"{HOST}:{self.port}", "--loop", loop]

    def start(self) -> None:
        """Start the sink with pipes for its control channel; wait for its banner."""
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        servers.wait_banner(self.port, self.proc)

    def _ask(self, command: str) -> Any:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the sink exited")
        return json.loads(line)

    def count(self) -> int:
        """Messages accepted since the last `take`."""
        return int(self._ask("count"))

    def take(self) -> tuple[int, list[tuple[float, str | None]]]:
        """(connections made, [(monotonic time of the 250, X-Bench-Id)]) since the last
        take; the sink forgets them."""
        taken = self._ask("take")
        return int(taken["connections"]), [(float(t), i) for t, i in taken["accepted"]]

    def wait_for(self, messages: int, timeout: float = SINK_TIMEOUT) -> None:
        """Return once the sink has accepted `messages` since the last take."""
        deadline = time.monotonic() + timeout
        while (got := self.count()) < messages:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sink got {got} of {messages} messages in {timeout:.0f}s")
            time.sleep(0.01)

    def stop(self) -> None:
        """Close stdin (the sink stops), then the usual SIGTERM."""
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        super().stop()


class RelayToSink(servers.Relay):
    """relay serve, every recipient relayed to the sink (upstream defaults, no TLS)."""

    def __init__(
        self,
        workdir: Path,
        sink: Sink,
        event_loop: str,
        db_url: str | None,
        smtp_processes: int | None = None,
        smtp_in_primary: bool = True,
    ) -> None:
        super().__init__(
            workdir,
            event_loop=event_loop,
            db_url=db_url,
            smtp_processes=smtp_processes,
            smtp_in_primary=smtp_in_primary,
        )
        self.sink = sink

    def config_text(self) -> str:
        """The shipped config plus a catch-all relay route to [upstream.sink]."""
        return super().config_text() + (
            "[[route]]\n"
            'match = "*"\n'
            'action = "relay"\n'
            'upstream = "sink"\n'
            "[upstream.sink]\n"
            f'host = "{HOST}"\n'
            f"port = {self.sink.port}\n"
            'tls = "none"\n'
        )


class PostfixToSink(servers.Server):
    """A throwaway Postfix (bench/postfix.py) whose relayhost is a recording sink."""

    name = "postfix"

    def __init__(self, workdir: Path, sink: Sink) -> None:
        super().__init__()
        self.sink = sink
        self.instance = postfix.Postfix(workdir / "postfix", self.port, sink.port)

    @property
    def pid(self) -> int:
        """Postfix's master: smtpd, cleanup, qmgr and smtp are its children."""
        assert self.instance.master_pid is not None
        return self.instance.master_pid

    def start(self) -> None:
        """Start Postfix (the sink is started by the caller)."""
        try:
            self.instance.start()
            servers.wait_banner(self.port, None)
        except BaseException:
            self.stop()
            raise

    def settle(self) -> None:
        """Wait until Postfix's queue is empty."""
        self.instance.wait_empty()

    def stop(self) -> None:
        """Stop Postfix and delete its directory."""
        self.instance.stop()


class Direct(servers.Server):
    """The sink itself as the server under load: the ceiling of the setup."""

    name = "sink alone"

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.port = sink.port
        self.proc = sink.proc

    @property
    def pid(self) -> int:
        """The sink's process."""
        return self.sink.pid

    def start(self) -> None:
        """Nothing to start: the sink runs already."""

    def stop(self) -> None:
        """Nothing to stop here: the sink is stopped with the others."""
