"""Server-Sent Events from a running relay: new, changed and deleted messages, and shutdown."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx

from tests import mail
from tests import pop3_support as pop3
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


def _stream_of(relay: RunningRelay, user: str) -> httpx.Client:
    """An HTTP client of the web UI logged in as `user` (of tests.pop3_support.PASSWORDS)."""
    return httpx.Client(base_url=relay.web_url, auth=(user, pop3.PASSWORDS[user]), timeout=10)


def _until(lines: Iterator[str], last: str) -> list[tuple[str, str]]:
    """The events of a stream up to and with the "message" event of `last`."""
    seen: list[tuple[str, str]] = []
    for event in events(lines):
        seen.append(event)
        if event == ("message", last):
            return seen
    raise AssertionError(f"the stream ended before {last}: {seen}")


def test_a_narrowed_user_hears_only_of_their_own_mailbox(db_url: str) -> None:
    """Per-user mode: alice's stream carries her messages' ids (stored, read, deleted over
    the API) and never bob's (stored, read, deleted over POP3); bob's the reverse; the
    admin's carries all of them."""
    relay = RunningRelay(pop3.pop3_config(db_url, per_user=True)).start()
    try:
        clients = {user: _stream_of(relay, user) for user in ("alice", "bob", "root")}
        with (
            clients["alice"].stream("GET", "/events") as alice_stream,
            clients["bob"].stream("GET", "/events") as bob_stream,
            clients["root"].stream("GET", "/events") as root_stream,
        ):
            streams = {"alice": alice_stream, "bob": bob_stream, "root": root_stream}
            lines = {user: stream.iter_lines() for user, stream in streams.items()}
            for user, stream in streams.items():
                assert stream.status_code == 200, user
                assert next(lines[user]) == "retry: 3000"
                assert next(lines[user]) == ": connected"
            mine = pop3.send(relay, pop3.message("alice's"), user="alice")
            theirs = pop3.send(relay, pop3.message("bob's"), user="bob")
            for user, message_id in (("alice", mine), ("bob", theirs)):
                read = {"IDs": [message_id], "Read": True}
                assert clients[user].put("/api/v1/messages", json=read).status_code == 200
            deleted = clients["alice"].request("DELETE", "/api/v1/messages", json={"IDs": [mine]})
            assert deleted.status_code == 200
            client = pop3.plain(relay, "bob")
            client.dele(1)
            client.quit()
            last = {
                user: pop3.send(relay, pop3.message("last"), user=user) for user in ("alice", "bob")
            }
            heard = {
                "alice": _until(lines["alice"], last["alice"]),
                "bob": _until(lines["bob"], last["bob"]),
                "root": _until(lines["root"], last["bob"]),
            }
    finally:
        for web in clients.values():
            web.close()
        relay.stop()
    for user, message_id in (("alice", mine), ("bob", theirs)):
        own = [("message", message_id), ("status", message_id), ("deleted", message_id)]
        assert heard[user] == [*own, ("message", last[user])]
        assert set(own) <= set(heard["root"])
    assert not any(i in (theirs, last["bob"]) for _, i in heard["alice"])
    assert not any(i in (mine, last["alice"]) for _, i in heard["bob"])
    assert ("message", last["alice"]) in heard["root"]
