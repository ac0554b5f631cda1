"""The relay a test session uses: one started for it, or one already running.

A started relay is `python -m relay serve` in a subprocess, on free loopback ports (port
0: the system picks, and relay's start-up log says which), storing in a SQLite file of a
temporary directory, with chaos on. Its log goes to `relay.log` beside the database.
Under pytest-xdist each worker starts its own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from relay.testing.client import Client

START_TIMEOUT = 60.0
"""Seconds a started relay gets to listen on its ports."""
STOP_TIMEOUT = 15.0
_SMTP_LINE = re.compile(r"smtp listener '[^']*' \(\w+\) on (\S+):(\d+):")
_WEB_LINE = re.compile(r"web UI on (http://\S+?)/?$")
CONFIG = """\
# Written by relay's pytest plugin for one test session.
[server]
log_level = "info"

[[listener]]
name = "pytest"
address = "127.0.0.1:0"

[web]
address = "127.0.0.1:0"

[storage]
url = {url}
sqlite_synchronous = "normal"
# Chaos: on, by `relay serve --chaos`.
"""


@dataclass
class RelayServer:
    """Where a relay takes mail (`smtp_host`, `smtp_port`) and serves its API (`web_url`),
    with `api`, a small client of that API."""

    smtp_host: str
    smtp_port: int
    web_url: str
    api: Client
    process: subprocess.Popen[str] | None = field(default=None, repr=False)
    log: Path | None = None

    @property
    def smtp(self) -> str:
        """HOST:PORT of the SMTP listener."""
        return f"{self.smtp_host}:{self.smtp_port}"

    def stop(self) -> None:
        """Stop a relay this plugin started (one it was given is left running)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def external(url: str, smtp: str, token: str = "") -> RelayServer:
    """A relay already running: its web URL and its SMTP HOST:PORT."""
    host, _, port = smtp.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--relay-smtp / RELAY_SMTP: expected HOST:PORT, got {smtp!r}")
    return RelayServer(host.strip("[]"), int(port), url.rstrip("/"), Client(url, token))


class _Watcher:
    """Copies the relay's log to a file and picks its addresses out of the start-up lines."""

    def __init__(self, stream: IO[str], log: Path) -> None:
        self.stream = stream
        self.log = log
        self.smtp: tuple[str, int] | None = None
        self.web: str | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="relay-log", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self.log.open("a", encoding="utf-8") as out:
            for line in self.stream:
                out.write(line)
                out.flush()
                if self.smtp is None and (found := _SMTP_LINE.search(line)):
                    self.smtp = (found[1], int(found[2]))
                if self.web is None and (seen := _WEB_LINE.search(line.rstrip())):
                    self.web = seen[1]
                    self.ready.set()  # the web UI starts last: everything listens now
        self.ready.set()  # the relay stopped


def start(directory: Path) -> RelayServer:
    """Start a relay storing in `directory`; return once it takes mail and answers HTTP."""
    database = directory / "relay.db"
    config = directory / "relay.toml"
    config.write_text(CONFIG.format(url=json.dumps(f"sqlite:///{database}")), encoding="utf-8")
    log = directory / "relay.log"
    # The relay's settings come from this file alone, not from the tests' environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    command = [sys.executable, "-m", "relay", "serve", "--config", str(config), "--chaos"]
    process = subprocess.Popen(
        command,
        cwd=directory,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    assert process.stderr is not None
    watcher = _Watcher(process.stderr, log)
    if not watcher.ready.wait(START_TIMEOUT) or watcher.smtp is None or watcher.web is None:
        process.kill()
        process.wait()
        watcher.thread.join(5)
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(
            f"relay did not start (exit code {process.returncode}); its log:\n{tail}"
        )
    host, port = watcher.smtp
    return RelayServer(host, port, watcher.web, Client(watcher.web), process, log)
