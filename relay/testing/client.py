"""A small client of relay's HTTP API for the pytest plugin, on the standard library's
urllib (no dependency, and quick to import).

Only what the plugin needs: search, raw messages, the long-poll wait, chaos rules. Errors
come back as `ApiError` with relay's {"Error": ...} text.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

HTTP_SLACK = 10.0
"""Seconds an HTTP request may take beyond the wait it asks the server for."""
TIMED_OUT = 408
MAX_LIST = 1000
"""The most messages one list answer holds (the API's own limit)."""


class ApiError(Exception):
    """relay answered an error; `status` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"relay API: {status} {message}")


class Client:
    """relay's API at `base_url` (e.g. "http://127.0.0.1:8025"), with a bearer `token`
    when the relay asks for one ([web] token)."""

    def __init__(self, base_url: str, token: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 30.0
    ) -> tuple[int, bytes]:
        """(status, body) of one request; raises ApiError on an error status."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            exc.close()
            raise ApiError(exc.code, _error_text(raw)) from None

    def json(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        """The JSON answer of one request."""
        return json.loads(self.request(method, path, body, timeout)[1])

    # --- messages -------------------------------------------------------------------

    def search(self, query: str) -> list[dict[str, Any]]:
        """Summaries of the messages `query` matches, oldest first (at most MAX_LIST)."""
        params = urllib.parse.urlencode({"query": query, "limit": MAX_LIST})
        found = self.json("GET", f"/api/v1/search?{params}")
        return list(reversed(found["messages"]))

    def raw(self, message_id: str) -> bytes:
        """A message's bytes as stored."""
        return self.request("GET", f"/api/v1/message/{urllib.parse.quote(message_id)}/raw")[1]

    def wait(self, query: str, after: str | None, timeout: float) -> dict[str, Any] | None:
        """The summary of a message matching `query` stored after `after` (any, when
        None), as soon as there is one; None when `timeout` seconds pass first. The server
        waits (GET /api/v1/wait): nothing here polls."""
        params = {"query": query, "timeout": f"{max(timeout, 0.001):.3f}"}
        if after:
            params["after"] = after
        path = "/api/v1/wait?" + urllib.parse.urlencode(params)
        try:
            found: dict[str, Any] = self.json("GET", path, timeout=timeout + HTTP_SLACK)
        except ApiError as exc:
            if exc.status == TIMED_OUT:
                return None
            raise
        return found

    # --- chaos ----------------------------------------------------------------------

    def add_rule(self, rule: dict[str, Any]) -> dict[str, Any]:
        """Add a chaos rule (the keys of [[chaos.rule]]); the rule with its id."""
        added: dict[str, Any] = self.json("POST", "/api/v1/chaos/rules", rule)
        return added

    def rules(self) -> list[dict[str, Any]]:
        """Every chaos rule with its counters."""
        return list(self.json("GET", "/api/v1/chaos/rules")["rules"])

    def delete_rule(self, rule_id: int) -> None:
        """Remove a chaos rule (gone already: fine)."""
        try:
            self.request("DELETE", f"/api/v1/chaos/rules/{rule_id}")
        except ApiError as exc:
            if exc.status != 404:
                raise


def _error_text(raw: bytes) -> str:
    """The {"Error": ...} text of an answer, or the answer itself."""
    try:
        return str(json.loads(raw)["Error"])
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace").strip()
