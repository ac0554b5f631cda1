"""POP3 with Python's poplib exactly as a script uses it: plain with allow_insecure_auth,
STLS with stls(), and POP3_SSL; the bytes read are the bytes sent over SMTP."""

from __future__ import annotations

import email
import poplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.pop3 import replies
from tests.pop3_support import PASSWORDS, message, plain, pop3_config, retrieved, send
from tests.support import RunningRelay


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RunningRelay]:
    """A relay with SMTP and the POP3 listeners on SQLite."""
    running = RunningRelay(pop3_config(f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}")).start()
    try:
        yield running
    finally:
        running.stop()


def test_plain_login_stat_list_retr_and_parse(relay: RunningRelay) -> None:
    """USER/PASS, STAT, LIST, RETR: the message comes back as stored, and email parses it."""
    sent = message("hello over pop3", ".a line that starts with a dot\r\nbye")
    message_id = send(relay, sent)
    client = plain(relay)
    try:
        count, size = client.stat()
        assert count == 1
        assert size == len(relay.raw(message_id))
        _, listing, _ = client.list()
        assert listing == [f"1 {size}".encode()]
        got = retrieved(client, 1)
        assert got == relay.raw(message_id)
        assert got.endswith(sent)
        parsed = email.message_from_bytes(got)
        assert parsed["Subject"] == "hello over pop3"
    finally:
        client.quit()


def test_stls_then_login(relay: RunningRelay) -> None:
    """stls() on a listener that refuses logins in clear; then USER/PASS work."""
    client = poplib.POP3("127.0.0.1", relay.port("pop3-tls"), timeout=10)
    try:
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            client.user("alice")
        assert "STLS" in client.capa()
        client.stls(context=relay.client_tls())
        client.user("alice")
        client.pass_(PASSWORDS["alice"])
        assert client.stat() == (0, 0)
    finally:
        client.quit()


def test_pop3_ssl(relay: RunningRelay) -> None:
    """POP3_SSL on the pop3s listener: TLS from the first byte, then RETR."""
    message_id = send(relay, message("over pop3s"))
    client = poplib.POP3_SSL("127.0.0.1", relay.port("pop3s"), context=relay.client_tls())
    try:
        client.user("alice")
        client.pass_(PASSWORDS["alice"])
        assert retrieved(client, 1) == relay.raw(message_id)
        assert client.uidl(1).split()[-1] == message_id.encode()
    finally:
        client.quit()


def test_wrong_password_gets_auth_code(relay: RunningRelay) -> None:
    """A wrong password is -ERR [AUTH], and the session may try again."""
    client = poplib.POP3("127.0.0.1", relay.port("pop3"), timeout=10)
    try:
        client.user("alice")
        with pytest.raises(poplib.error_proto) as caught:
            client.pass_("wrong")
        assert caught.value.args[0] == replies.BAD_LOGIN.encode()
        client.user("alice")
        client.pass_(PASSWORDS["alice"])
    finally:
        client.quit()


def test_top_sends_headers_and_first_lines(relay: RunningRelay) -> None:
    """TOP 1 1: the headers, the blank line and one body line."""
    send(relay, message("top", "first\r\nsecond\r\nthird"))
    client = plain(relay)
    try:
        _, lines, _ = client.top(1, 1)
        assert lines[-2:] == [b"", b"first"]
        assert b"Subject: top" in lines
    finally:
        client.quit()


def test_lines_pipelined_after_stls_are_not_taken_as_said_over_tls(relay: RunningRelay) -> None:
    """USER sent in clear behind STLS is dropped: after the handshake PASS needs USER."""
    with socket.create_connection(("127.0.0.1", relay.port("pop3-tls")), timeout=10) as raw:
        reader = raw.makefile("rb")
        reader.readline()
        raw.sendall(b"STLS\r\nUSER alice\r\n")
        assert reader.readline() == replies.STLS_GO.encode() + b"\r\n"
        context = relay.client_tls()
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"PASS " + PASSWORDS["alice"].encode() + b"\r\n")
            answer = tls.recv(200)
    assert answer == replies.USER_FIRST.encode() + b"\r\n"
