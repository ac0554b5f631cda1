"""Hostile SMTP: random dialogues (hypothesis) and a table of known tricks.

Whatever a client sends — random command lines, binary garbage, overlong lines, bare LF
and bare CR, NUL bytes, pipelined floods, commands out of order, STARTTLS, AUTH garbage —
the server answers only with well-formed replies, logs no error, and keeps serving
everyone else.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.config import RouteConfig
from relay.smtp import replies
from tests import mail
from tests.support import RunningRelay, listener, make_config, smtplib_form, users

REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -])[^\r\n]*")
TLS_READY = b"220 Ready to start TLS"
VERBS = [
    b"HELO",
    b"EHLO",
    b"MAIL FROM:",
    b"RCPT TO:",
    b"DATA",
    b"RSET",
    b"NOOP",
    b"VRFY",
    b"EXPN",
    b"HELP",
    b"QUIT",
    b"STARTTLS",
    b"AUTH",
    b"AUTH PLAIN",
    b"AUTH LOGIN",
    b"BDAT",
    b"ehlo",
    b"mail from:",
]
ADDRESSES = [
    b"<a@example.com>",
    b"<>",
    b"<@relay.example:u@example.com>",
    b'<"q u"@example.com>',
    b"<u@[127.0.0.1]>",
    b"<u@x.reject.example>",
    b"<\xff\xfe@example.com>",
    b"<a\x00b@example.com>",
    b"<a\rb@example.com>",
    b"a@example.com SIZE=99999999999",
    b"<a@example.com> BODY=9BIT",
    b"<a@example.com> SMTPUTF8=yes",
]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    """A relay offering STARTTLS and AUTH in plaintext, with a route that rejects."""
    db = tmp_path_factory.mktemp("fuzz") / "relay.db"
    config = make_config(
        f"sqlite+aiosqlite:///{db}",
        listener=(
            listener(
                "fuzz",
                starttls="optional",
                auth="optional",
                allow_insecure_auth=True,
                max_line_length=4096,
            ),
        ),
        auth=users(),
        route=(RouteConfig(match="*.reject.example", action="reject"),),
    )
    running = RunningRelay(config).start()
    try:
        yield running
    finally:
        running.stop()


separators = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""])
commands = st.builds(
    lambda verb, arg: verb + arg,
    st.sampled_from(VERBS),
    st.one_of(
        st.just(b""),
        st.sampled_from(ADDRESSES),
        st.binary(max_size=40).map(lambda b: b" " + b),
        st.text(max_size=30).map(lambda t: b" " + t.encode("utf-8", "surrogatepass")),
    ),
)
lines = st.one_of(
    commands,
    commands,
    commands,
    st.binary(max_size=200),
    st.integers(600, 70_000).map(lambda n: b"EHLO " + b"x" * n),
    st.integers(1, 5000).map(lambda n: b"A" * 4090 + b"\x00" * n),
    st.tuples(commands, st.integers(2, 2000)).map(lambda c: (c[0] + b"\r\n") * c[1]),
    st.just(b"."),
    st.just(base64.b64encode(b"\0alice\0wrong")),
    st.just(b"*"),
)
scripts = st.lists(st.tuples(lines, separators), max_size=25).map(
    lambda items: b"".join(line + sep for line, sep in items)
)


def exchange(port: int, script: bytes, half_close: bool = True) -> bytes:
    """Send `script` (reading replies all the while), then close our side (unless the
    script ends the session itself), and return every byte the server sent until it
    closed the connection.

    The server drops a session whose client closed its side without waiting for the
    replies to commands still in flight.
    """
    received: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:

        def read() -> None:
            try:
                while chunk := sock.recv(65536):
                    received.append(chunk)
            except OSError:
                pass  # reset by the server: what came before counts

        reader = threading.Thread(target=read)
        reader.start()
        try:
            sock.sendall(script)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server hung up first (421, 502 too many bogus commands)
        reader.join(30)
        assert not reader.is_alive(), "the server never closed the connection"
    return b"".join(received)


def check_replies(output: bytes) -> None:
    """Every line is a reply: three digits, a space or hyphen, text, CRLF; a reply's
    continuation lines carry its code (output after "220 Ready to start TLS" is TLS)."""
    tls = output.find(TLS_READY + b"\r\n")
    if tls >= 0:
        output = output[: tls + len(TLS_READY) + 2]
    assert output.startswith(b"220 "), output[:200]
    assert output.endswith(b"\r\n"), output[-200:]
    code_of_continuation = None
    for line in output[:-2].split(b"\r\n"):
        match = REPLY_LINE.fullmatch(line)
        assert match, (line[:200], output[:2000])
        code, separator = match.groups()
        if code_of_continuation is not None:
            assert code == code_of_continuation, output[:2000]
        code_of_continuation = code if separator == b"-" else None
    assert code_of_continuation is None, output[-200:]


class ErrorLog(logging.Handler):
    """Keeps the records of errors logged anywhere in the process."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record."""
        self.records.append(record)


@pytest.fixture
def errors_logged() -> Iterator[ErrorLog]:
    """Errors logged while the test runs. aiosmtpd's warning for every unknown command is
    turned off meanwhile: a fuzz run sends hundreds of thousands."""
    handler = ErrorLog()
    root, chatty = logging.getLogger(), logging.getLogger("mail.log")
    level = chatty.level
    root.addHandler(handler)
    chatty.setLevel(logging.ERROR)
    try:
        yield handler
    finally:
        chatty.setLevel(level)
        root.removeHandler(handler)


def still_serving(relay: RunningRelay) -> None:
    """Another client is served normally."""
    with relay.smtp() as client:
        assert client.noop()[0] == 250


@pytest.mark.slow
@settings(
    max_examples=int(os.environ.get("RELAY_FUZZ_EXAMPLES", "500")),
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(script=scripts)
def test_random_dialogues_get_well_formed_replies(
    target: RunningRelay, errors_logged: ErrorLog, script: bytes
) -> None:
    """Random dialogues: only well-formed replies, no error logged, the server serves on."""
    errors_logged.records.clear()
    output = exchange(target.smtp_port, script)
    check_replies(output)
    still_serving(target)
    errors = errors_logged.records
    assert not errors, [(r.getMessage(), r.exc_text) for r in errors]


HOSTILE = [
    # (what is sent after EHLO, the replies expected in order)
    (b"DATA\r\n", [b"503"]),
    (b"RCPT TO:<a@example.com>\r\n", [b"503"]),
    (b"MAIL FROM:<a@example.com>\r\nMAIL FROM:<a@example.com>\r\n", [b"250", b"503"]),
    (b"MAIL FROM:<a\x00b@example.com>\r\n", [replies.BAD_SENDER.encode()]),
    (b"MAIL FROM:<a\rb@example.com>\r\n", [replies.BAD_SENDER.encode()]),
    (b"MAIL FROM:<\xff@example.com>\r\n", [replies.BAD_SENDER.encode()]),
    (
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b\x00@example.com>\r\n",
        [b"250", replies.BAD_RECIPIENT.encode()],
    ),
    (
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b\x7f@example.com>\r\n",
        [b"250", replies.BAD_RECIPIENT.encode()],
    ),
    (b"AUTH PLAIN !!!notbase64\r\n", [b"501"]),
    (b"AUTH PLAIN " + base64.b64encode(b"\0alice\0wrong") + b"\r\n", [b"535"]),
    (b"AUTH LOGIN\r\n*\r\n", [b"334", b"501"]),
    (b"AUTH CRAM-MD5\r\n", [b"504"]),
    (b"AUTH PLAIN\r\n" + b"A" * 5000 + b"\r\n", [b"334", replies.LINE_TOO_LONG.encode()]),
    (b"AUTH LOGIN\r\n" + b"A" * 5000 + b"\r\n", [b"334", replies.LINE_TOO_LONG.encode()]),
    (b"\x00\x00\x00\r\n", [b"500"]),
    (b"X\rRCPT TO:<a@example.com>\r\n", [b"500"]),  # echoed back, the CR made harmless
    (b"HELO " + b"x" * 5000 + b"\r\n", [b"500"]),
    (b"NOOP\r\n" * 3000, [b"250"] * 3000),
    (
        b"MAIL FROM:<a@example.com>\nRCPT TO:<b@example.com>\nDATA\nhi\r\n.\r\n",
        [b"250", b"250", b"354", b"250"],
    ),
]


@pytest.mark.parametrize(("sent", "expected"), HOSTILE)
def test_known_tricks_get_their_reply_and_the_session_goes_on(
    target: RunningRelay, sent: bytes, expected: list[bytes]
) -> None:
    """Out-of-order commands, bad addresses, AUTH garbage, NUL, overlong lines, floods and
    bare LF each get the reply they deserve; the session still answers NOOP after."""
    script = b"EHLO fuzz.example\r\n" + sent + b"RSET\r\nNOOP\r\nQUIT\r\n"
    output = exchange(target.smtp_port, script, half_close=False)
    check_replies(output)
    got = [line[:3] for line in output.split(b"\r\n") if line[3:4] == b" "][2:]  # greeting, EHLO
    assert got == [e[:3] for e in expected] + [b"250", b"250", b"221"], output[-500:]
    for reply in expected:
        if len(reply) > 3:
            assert reply + b"\r\n" in output


def test_data_ends_only_at_crlf_dot_crlf(target: RunningRelay) -> None:
    """A bare-LF dot line inside DATA is content, not the end (no SMTP smuggling): the
    message is stored whole and the "smuggled" commands never run."""
    smuggled = (
        b"Subject: outer\r\n\r\nbody\n.\nMAIL FROM:<evil@example.com>\nRCPT TO:<x@example.com>\n"
        b"DATA\nSubject: smuggled\n\nhi\n.\r\n"
    )
    with target.smtp() as client:
        client.ehlo("fuzz.example")
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        client.send(b"DATA\r\n")
        assert client.getreply()[0] == 354
        client.send(smuggled + b".\r\n")
        code, reply = client.getreply()
        assert code == 250, reply
        assert client.noop()[0] == 250
    stored = target.raw(reply.decode().rsplit(" ", 1)[-1])
    assert stored.endswith(smuggled)


def test_starttls_twice_and_auth_after_tls(target: RunningRelay) -> None:
    """A second STARTTLS is refused inside TLS, and the session goes on to deliver."""
    with target.smtp() as client:
        client.ehlo("fuzz.example")
        client.starttls(context=target.client_tls())
        assert client.docmd("STARTTLS") == smtplib_form(replies.TLS_ALREADY_ACTIVE)
        client.ehlo("fuzz.example")
        client.sendmail("a@example.com", ["b@example.com"], mail.plain())


def test_a_refused_client_does_not_stop_others(target: RunningRelay) -> None:
    """A client that sends garbage until it is thrown out leaves the others served."""
    output = exchange(target.smtp_port, b"XYZZY\r\n" * 50)
    assert b"502 5.5.1 Too many unrecognized commands, goodbye." in output
    with target.smtp() as client:
        client.sendmail("a@example.com", ["b@example.com"], mail.plain())


@pytest.mark.parametrize(
    "after", [b"NOOP\r\nQUIT\r\n", b"\x16\x03\x01 not a real hello"], ids=["commands", "tls"]
)
def test_bytes_sent_past_starttls_end_the_session_at_once(
    target: RunningRelay, after: bytes
) -> None:
    """Whatever a client sends after STARTTLS without waiting for our 220 gets 554 and the
    connection closed at once: the plaintext never runs as commands after the handshake
    (CVE-2011-0411), nor leaves the handshake waiting for bytes already read."""
    output = exchange(target.smtp_port, b"EHLO fuzz.example\r\nSTARTTLS\r\n" + after)
    check_replies(output)
    assert output.endswith(replies.STARTTLS_PIPELINED.encode() + b"\r\n"), output[-300:]
    still_serving(target)


def test_a_client_that_closes_at_once_is_still_greeted(target: RunningRelay) -> None:
    """A client that closes its side right after connecting, possibly before the server's
    session has run at all (aiosmtpd then cancels it), still gets the 220 greeting, and
    only one, every time."""
    for _ in range(300):
        output = exchange(target.smtp_port, b"")
        assert output.startswith(b"220 ") and output.count(b"220 ") == 1, output
