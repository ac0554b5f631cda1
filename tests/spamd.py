"""A real SpamAssassin spamd (Debian's `spamd` and `spamassassin` packages) on a free loopback
port, with local tests only (no DNS or network rules), for the spam check tests.

    with RunningSpamd(tmp_dir) as spamd:
        spamd.address  # "127.0.0.1:PORT"
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.support import free_port

SPAMD = shutil.which("spamd") or shutil.which("spamd", path="/usr/sbin:/usr/local/sbin")
PING = b"PING SPAMC/1.5\r\n\r\n"
PONG = b" PONG"
START_SECONDS = 120.0
"""spamd compiles its rules at start: a few seconds, longer on a loaded machine."""


class RunningSpamd:
    """spamd in its own process group, listening on 127.0.0.1 until the block ends."""

    def __init__(self, directory: Path) -> None:
        assert SPAMD is not None, "spamd is not installed"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = directory / "spamd.log"
        command = [
            SPAMD,
            "--local",  # no network tests
            "--nouser-config",
            "--syslog=stderr",
            f"--listen=127.0.0.1:{self.port}",
            "--max-children=2",
            "--min-children=1",
            f"--helper-home-dir={directory}",
            f"--pidfile={directory / 'spamd.pid'}",
        ]
        if os.geteuid() == 0:  # spamd will not check mail as root
            command.append("--username=nobody")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                sock.sendall(PING)
                return PONG in sock.recv(100)
        except OSError:
            return False

    def __enter__(self) -> RunningSpamd:
        deadline = time.monotonic() + START_SECONDS
        while not self._pong():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                log = self.log_path.read_text(errors="replace")
                raise RuntimeError(f"spamd did not start:\n{log}")
            time.sleep(0.2)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
