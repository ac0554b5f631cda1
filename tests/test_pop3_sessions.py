"""POP3 sessions against the store, on SQLite and PostgreSQL: UIDL stable across a
restart, deletions made only by QUIT, one session per mailbox, and mail still queued
for delivery kept for the queue when a POP3 user deletes it."""

from __future__ import annotations

import dataclasses
import poplib
import socket
import time
import types

import pytest

from relay.config import RouteConfig, ServerConfig, UpstreamConfig
from relay.pop3 import replies
from tests.pop3_support import message, plain, pop3_config, send
from tests.support import RunningRelay


def wait_for_sessions(relay: RunningRelay, count: int) -> None:
    """Wait until the POP3 listeners hold `count` sessions."""
    deadline = time.monotonic() + 10
    while sum(len(p.sessions) for p in relay.relay.pop3) != count:
        assert time.monotonic() < deadline, "sessions did not end"
        time.sleep(0.01)


def uidls(client: poplib.POP3) -> list[bytes]:
    """The unique ids UIDL lists, in message order."""
    _, lines, _ = client.uidl()
    return [line.split()[1] for line in lines]


def test_uidl_is_the_message_id_and_survives_a_restart(db_url: str) -> None:
    """UIDL lists each message's stored id, the same after the relay restarts."""
    config = pop3_config(db_url)
    relay = RunningRelay(config).start()
    try:
        sent = [send(relay, message(f"m{i}")) for i in range(3)]
        client = plain(relay)
        before = uidls(client)
        client.quit()
    finally:
        relay.stop()
    assert before == [s.encode() for s in sent]
    relay = RunningRelay(config).start()
    try:
        client = plain(relay)
        assert uidls(client) == before
        client.quit()
    finally:
        relay.stop()


def test_dele_then_quit_removes_and_a_dropped_connection_does_not(db_url: str) -> None:
    """DELE marks; only QUIT deletes. A session that vanishes after DELE deletes nothing."""
    relay = RunningRelay(pop3_config(db_url)).start()
    try:
        first, second = send(relay, message("one")), send(relay, message("two"))
        dropped = plain(relay)
        dropped.dele(1)
        dropped.close()  # gone without QUIT
        wait_for_sessions(relay, 0)  # the lock is free again once the session noticed
        client = plain(relay)
        assert client.stat()[0] == 2
        client.dele(1)
        assert client.stat()[0] == 1
        assert client.quit() == (replies.BYE_REMOVED % 1).encode()
        assert relay.message(first) is None
        assert relay.message(second) is not None
        client = plain(relay)
        assert uidls(client) == [second.encode()]
        client.quit()
    finally:
        relay.stop()


def test_rset_unmarks(db_url: str) -> None:
    """DELE then RSET then QUIT deletes nothing."""
    relay = RunningRelay(pop3_config(db_url)).start()
    try:
        message_id = send(relay, message("kept"))
        client = plain(relay)
        client.dele(1)
        client.rset()
        client.quit()
        assert relay.message(message_id) is not None
    finally:
        relay.stop()


def test_a_second_session_on_one_mailbox_is_refused_with_in_use(db_url: str) -> None:
    """While one session holds the mailbox a second login gets -ERR [IN-USE]; after QUIT it
    may log in."""
    relay = RunningRelay(pop3_config(db_url)).start()
    try:
        first = plain(relay)
        second = poplib.POP3("127.0.0.1", relay.port("pop3"), timeout=10)
        second.user("alice")
        with pytest.raises(poplib.error_proto) as caught:
            second.pass_("alice's password")
        assert caught.value.args[0] == replies.IN_USE.encode()
        first.quit()
        second.user("alice")
        second.pass_("alice's password")
        second.quit()
    finally:
        relay.stop()


def test_deleting_mail_still_queued_only_takes_it_out_of_the_mailbox(db_url: str) -> None:
    """A message waiting for delivery, deleted over POP3, stays in the store (its recipient
    still queued) but leaves the mailbox; a captured one beside it is deleted."""
    routes = (RouteConfig(match="relayed.test", action="relay", upstream="smarthost"),)
    upstream = types.MappingProxyType({"smarthost": UpstreamConfig(host="127.0.0.1", port=9)})
    config = pop3_config(db_url, route=routes, upstream=upstream)
    config = dataclasses.replace(config, server=ServerConfig(roles=("smtp", "web")))
    relay = RunningRelay(config).start()
    try:
        queued = send(relay, message("to relay"), to="someone@relayed.test")
        captured = send(relay, message("captured"))
        client = plain(relay)
        client.dele(1)
        client.dele(2)
        client.quit()
        assert relay.message(captured) is None
        row = relay.message(queued)
        assert row is not None
        assert row.mailbox is None
        assert [r.status for r in row.recipients] == ["queued"]
        client = plain(relay)
        assert client.stat() == (0, 0)
        client.quit()
    finally:
        relay.stop()


def test_idle_session_is_closed_without_deleting(sqlite_url: str) -> None:
    """A session silent past idle_timeout is told so and closed; its marks are dropped."""
    config = pop3_config(sqlite_url)
    short = tuple(
        dataclasses.replace(lc, idle_timeout=0.3) if lc.name == "pop3" else lc
        for lc in config.listener
    )
    relay = RunningRelay(dataclasses.replace(config, listener=short)).start()
    try:
        message_id = send(relay, message("idle"))
        client = plain(relay)
        client.dele(1)
        client.sock.settimeout(5)
        assert client.file.readline() == replies.IDLE_TIMEOUT.encode() + b"\r\n"
        assert client.file.readline() == b""
        client.close()
        assert relay.message(message_id) is not None
    finally:
        relay.stop()


def test_too_many_sessions_get_sys_temp(sqlite_url: str) -> None:
    """Past max_connections a new connection is told -ERR [SYS/TEMP] and closed."""
    config = pop3_config(sqlite_url)
    one = tuple(
        dataclasses.replace(lc, max_connections=1) if lc.name == "pop3" else lc
        for lc in config.listener
    )
    relay = RunningRelay(dataclasses.replace(config, listener=one)).start()
    try:
        first = poplib.POP3("127.0.0.1", relay.port("pop3"), timeout=10)
        with socket.create_connection(("127.0.0.1", relay.port("pop3")), timeout=10) as extra:
            assert extra.makefile("rb").readline() == replies.TOO_MANY.encode() + b"\r\n"
        first.quit()
    finally:
        relay.stop()


def test_stopping_the_relay_closes_sessions_without_deleting(sqlite_url: str) -> None:
    """A stop tells an open session -ERR [SYS/TEMP] and closes it; its marks are dropped."""
    relay = RunningRelay(pop3_config(sqlite_url)).start()
    stopped = False
    try:
        message_id = send(relay, message("kept at stop"))
        client = plain(relay)
        client.dele(1)
        relay.stop()
        stopped = True
        assert client.file.readline() == replies.SHUTTING_DOWN.encode() + b"\r\n"
        client.close()
    finally:
        if not stopped:
            relay.stop()
    relay = RunningRelay(pop3_config(sqlite_url)).start()
    try:
        assert relay.message(message_id) is not None
    finally:
        relay.stop()
