"""Bad POP3 input: unknown commands, wrong states, long lines, a fuzz of malformed lines
(hypothesis), a client that vanishes in the middle of RETR. Each gets a clear -ERR, the
server keeps serving and nothing stored is lost."""

from __future__ import annotations

import base64
import logging
import smtplib
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.pop3 import replies
from tests.pop3_support import PASSWORDS, message, plain, pop3_config, send
from tests.support import RunningRelay

LOGIN = b"USER alice\r\nPASS " + PASSWORDS["alice"].encode() + b"\r\n"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    """One relay for the module, holding three messages."""
    db = tmp_path_factory.mktemp("pop3-input") / "relay.db"
    running = RunningRelay(pop3_config(f"sqlite+aiosqlite:///{db}")).start()
    for i in range(3):
        send(running, message(f"kept {i}"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def errors() -> Iterator[list[logging.LogRecord]]:
    """Errors logged anywhere while the test runs."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger().removeHandler(handler)


def talk(port: int, script: bytes) -> bytes:
    """Send `script`, close our side, and return all the server said until it hung up."""
    received: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:

        def read() -> None:
            try:
                while chunk := sock.recv(65536):
                    received.append(chunk)
            except OSError:
                pass

        reader = threading.Thread(target=read)
        reader.start()
        try:
            sock.sendall(script)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        reader.join(30)
        assert not reader.is_alive(), "the server never closed the connection"
    return b"".join(received)


def replies_to(port: int, *lines: bytes) -> list[bytes]:
    """The one-line replies (after the greeting) to `lines` sent in one go."""
    output = talk(port, b"".join(line + b"\r\n" for line in lines))
    return output.split(b"\r\n")[1:-1]


def still_serving(relay: RunningRelay) -> None:
    """A new session logs in and finds the three messages."""
    client = plain(relay)
    try:
        assert client.stat()[0] == 3
    finally:
        client.quit()


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b"FROB"], replies.UNKNOWN),
        ([b"STAT"], replies.WRONG_STATE),
        ([b"RETR 1"], replies.WRONG_STATE),
        ([b"PASS secret"], replies.USER_FIRST),
        ([b"NOOP " + b"x" * 600], replies.LINE_TOO_LONG),
        ([b"NOOP " + b"x" * 200_000], replies.LINE_TOO_LONG),
        ([b"USER \xff\xfe"], replies.BAD_LINE),
        ([b"AUTH CRAM-MD5"], replies.UNSUPPORTED_MECHANISM),
        ([b"AUTH PLAIN !!!"], replies.BAD_SASL),
        ([b"AUTH PLAIN " + base64.b64encode(b"bob\0alice\0x")], replies.BAD_SASL),
        ([b"AUTH PLAIN", b"*"], replies.AUTH_CANCELLED),
    ],
)
def test_bad_line_in_authorization_gets_its_err(
    relay: RunningRelay, lines: list[bytes], expected: str
) -> None:
    """Each bad line gets its -ERR; the next NOOP is answered (wrong state), not dropped."""
    got = replies_to(relay.port("pop3"), *lines, b"NOOP")
    assert got[-2] == expected.encode()
    assert got[-1] == replies.WRONG_STATE.encode()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"RETR 4", replies.NO_SUCH_MESSAGE),
        (b"RETR 0", replies.NO_SUCH_MESSAGE),
        (b"LIST x", replies.NO_SUCH_MESSAGE),
        (b"DELE 99999999999999", replies.NO_SUCH_MESSAGE),
        (b"TOP 1", replies.BAD_ARGUMENTS % "TOP msg n"),
        (b"USER bob", replies.WRONG_STATE),
        (b"STLS", replies.WRONG_STATE),
        (b"HELO", replies.UNKNOWN),
    ],
)
def test_bad_line_in_transaction_gets_its_err(
    relay: RunningRelay, line: bytes, expected: str
) -> None:
    """After login a bad command gets its -ERR and NOOP still answers +OK."""
    output = talk(relay.port("pop3"), LOGIN + line + b"\r\nNOOP\r\n")
    got = output.split(b"\r\n")[1:-1]
    assert got[-2:] == [expected.encode(), replies.OK.encode()]


def test_auth_plain_logs_in_and_deleted_message_cannot_be_read(relay: RunningRelay) -> None:
    """AUTH PLAIN with an initial response logs in; a message marked deleted is -ERR."""
    token = base64.b64encode(b"\0alice\0" + PASSWORDS["alice"].encode())
    got = replies_to(relay.port("pop3"), b"AUTH PLAIN " + token, b"DELE 1", b"RETR 1")
    assert got[0].startswith(b"+OK maildrop has 3 messages")
    assert got[1:] == [(replies.DELETED % 1).encode(), (replies.ALREADY_DELETED % 1).encode()]
    still_serving(relay)


def test_auth_plain_without_initial_response_asks_for_it(relay: RunningRelay) -> None:
    """AUTH PLAIN alone gets "+ ", and the credentials on the next line log in."""
    token = base64.b64encode(b"\0alice\0" + PASSWORDS["alice"].encode())
    got = replies_to(relay.port("pop3"), b"AUTH PLAIN", token, b"STAT")
    assert got[0] == replies.AUTH_CONTINUE.encode()
    assert got[1].startswith(b"+OK maildrop has 3 messages")
    assert got[2].startswith(b"+OK 3 ")


def test_failed_logins_share_the_smtp_throttle(relay: RunningRelay) -> None:
    """A failed SMTP AUTH and a failed POP3 login from one address count together."""
    throttle = relay.relay.pop3[0].authenticator.throttle
    before = throttle.failures("127.0.0.1")
    with smtplib.SMTP("127.0.0.1", relay.port("smtp"), timeout=10) as client:
        client.ehlo("client.example")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice", "wrong")
    after_smtp = throttle.failures("127.0.0.1")
    assert after_smtp > before
    replies_to(relay.port("pop3"), b"USER alice", b"PASS wrong")
    assert throttle.failures("127.0.0.1") == after_smtp + 1
    still_serving(relay)  # a success forgets them
    assert throttle.failures("127.0.0.1") == 0


VERBS = [b"USER", b"PASS", b"AUTH", b"STAT", b"LIST", b"UIDL", b"RETR", b"TOP", b"RSET"]
VERBS += [b"NOOP", b"CAPA", b"APOP", b"STLS", b""]
fuzz_lines = st.one_of(
    st.tuples(st.sampled_from(VERBS), st.binary(max_size=30)).map(lambda v: v[0] + b" " + v[1]),
    st.binary(max_size=80).filter(lambda b: b"\n" not in b),
    st.integers(400, 70_000).map(lambda n: b"LIST " + b"9" * n),
    st.just(b"AUTH PLAIN"),
    st.just(b"*"),
)
fuzz_scripts = st.tuples(
    st.booleans(),
    st.lists(st.tuples(fuzz_lines, st.sampled_from([b"\r\n", b"\n", b"\r\n"])), max_size=15),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=fuzz_scripts)
def test_fuzzed_lines_never_break_the_server(
    relay: RunningRelay,
    errors: list[logging.LogRecord],
    script: tuple[bool, list[tuple[bytes, bytes]]],
) -> None:
    """Random lines, logged in or not: the server greets, answers, hangs up when we do,
    logs no error, keeps serving, and the mailbox keeps its messages (no DELE, no QUIT)."""
    logged_in, lines = script
    body = b"".join(line + end for line, end in lines)
    output = talk(relay.port("pop3"), (LOGIN if logged_in else b"") + body)
    assert output.startswith(replies.GREETING.encode() + b"\r\n")
    assert output.endswith(b"\r\n") or b"+OK begin TLS" in output
    assert not errors
    still_serving(relay)


def test_client_vanishing_mid_retr_loses_nothing(
    relay: RunningRelay, errors: list[logging.LogRecord]
) -> None:
    """A client that resets the connection while a large RETR is under way: the session
    ends, nothing is deleted, the next session is served."""
    big = message("large", ("y" * 998 + "\r\n") * 6000)
    message_id = send(relay, big)
    try:
        with socket.create_connection(("127.0.0.1", relay.port("pop3")), timeout=10) as sock:
            sock.sendall(LOGIN + b"DELE 1\r\nRETR 4\r\n")
            sock.recv(200)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        deadline = time.monotonic() + 10
        while relay.relay.pop3[0].sessions:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert relay.message(message_id) is not None
        client = plain(relay)
        try:
            assert client.stat()[0] == 4
        finally:
            client.quit()
        assert not errors
    finally:
        relay.call(relay.relay.store.delete_messages([message_id]))
