"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright
(no browser download). The `browser` and `page` fixtures live in conftest.py."""

from __future__ import annotations

import http.server
import os
import threading
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("RELAY_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
HAVE_CHROMIUM = Path(CHROMIUM).exists()

needs_chromium = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not HAVE_CHROMIUM,
        reason=f"{CHROMIUM} not found: apt-get install chromium (.ci/run does)",
    ),
]
"""The marks of a module of browser tests (`pytestmark = needs_chromium`)."""


class Attacker:
    """A web server of the attacker's, on loopback under another origin (localhost, where
    the UI is on 127.0.0.1): every request that reaches it is recorded."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                hits.append(f"{self.command} {self.path}")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"stolen")

            do_GET = do_POST = do_HEAD = _record

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Attacker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
