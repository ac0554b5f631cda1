"""`relay serve` in a child process: its config file, its log read as it comes, its memory,
and how it ends (SIGTERM, or SIGKILL for crash tests)."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support import free_port

READY = "web UI on http://"
"""The log line `relay serve` writes once every listener and the web UI are bound."""


@dataclass(frozen=True)
class Ports:
    """The SMTP and web ports a served relay listens on."""

    smtp: int
    web: int

    @staticmethod
    def free() -> Ports:
        """Two ports that were free a moment ago."""
        return Ports(free_port(), free_port())


def write_config(path: Path, ports: Ports, db: Path, extra: str = "", listener: str = "") -> Path:
    """A relay.toml with one plain listener on `ports.smtp` (with the `listener` keys), the
    web UI on `ports.web`, a SQLite store at `db`, then `extra` (more sections) verbatim."""
    path.write_text(
        f"""
[[listener]]
address = "127.0.0.1:{ports.smtp}"
{listener}
[web]
address = "127.0.0.1:{ports.web}"
[storage]
url = "sqlite+aiosqlite:///{db}"
{extra}
"""
    )
    return path


class Serving:
    """`relay serve --config CONFIG` in a child process, its log lines read as they come."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay", "serve", "--config", str(config)],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def end(self, sig: signal.Signals) -> int:
        """Send `sig`, wait for the process to exit; return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(30)
        self._reader.join(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        self.end(signal.SIGKILL)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def expect(self, words: str, within: float = 30) -> str:
        """Wait for a log line containing `words`; return it."""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            self.log.append(line)
            if words in line:
                return line
        raise AssertionError(f"no log line with {words!r}; got:\n{''.join(self.log)}")

    def text(self) -> str:
        """Everything the process has logged so far."""
        while not self.lines.empty():
            self.log.append(self.lines.get_nowait())
        return "".join(self.log)

    def ready(self) -> Serving:
        """Wait until the relay serves SMTP and the web UI; return self."""
        self.expect(READY)
        return self

    def memory(self, field: str = "VmHWM") -> int:
        """A memory figure of the process from /proc, in bytes: VmHWM is the peak resident
        set so far, VmRSS the resident set now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def reset_peak(self) -> None:
        """Start VmHWM again from the current resident set (Linux clear_refs)."""
        with open(f"/proc/{self.pid}/clear_refs", "w") as refs:
            refs.write("5")


def kill_if_running(serving: Serving) -> None:
    """SIGKILL a served relay that a test left running, and close its log pipe."""
    assert serving.proc.stderr is not None
    if not serving.proc.stderr.closed:
        serving.end(signal.SIGKILL)
