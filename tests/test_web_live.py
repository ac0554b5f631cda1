"""Server-Sent Events from a running relay: new, changed and deleted messages, and shutdown."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx

from tests import mail
from tests.support import RunningRelay, make_config
from tests.test_capture import send


def events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(kind, message id) of each event in an event-stream, comments skipped."""
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield kind, json.loads(line.removeprefix("data: "))["id"]


def test_stream_announces_new_read_and_deleted_messages(relay: RunningRelay) -> None:
    """A mail sent over SMTP, then marked read, then deleted, appears on the stream in order."""
    with httpx.stream("GET", f"{relay.web_url}/events", timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "retry: 3000"
        assert next(lines) == ": connected"  # subscribed from here on
        message_id = send(relay, mail.plain(), ["bob@example.org"])
        store = relay.relay.store
        relay.call(store.set_read([message_id], True))
        relay.call(store.delete_messages([message_id]))
        seen = events(lines)
        assert next(seen) == ("message", message_id)
        assert next(seen) == ("status", message_id)
        assert next(seen) == ("deleted", message_id)


def test_stopping_the_relay_ends_open_streams(sqlite_url: str) -> None:
    """An open event stream does not keep the relay from stopping: it ends cleanly."""
    running = RunningRelay(make_config(sqlite_url)).start()
    stopped = threading.Event()
    try:
        with httpx.stream("GET", f"{running.web_url}/events", timeout=10) as stream:
            lines = stream.iter_lines()
            assert next(lines) == "retry: 3000"
            stopper = threading.Thread(target=lambda: (running.stop(), stopped.set()))
            stopper.start()
            rest = list(lines)  # returns when the server ends the stream
            stopper.join(15)
    finally:
        if not stopped.is_set():
            running.stop()
    assert stopped.is_set()
    assert all(not line.startswith("event:") for line in rest)
