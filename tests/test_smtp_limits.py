"""Limits and protocol features over loopback: SIZE, long lines, recipients, connections,
timeouts, PIPELINING, SMTPUTF8, and a client that goes away in the middle of DATA."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relay.smtp import replies
from tests import mail
from tests.support import RunningRelay, listener, make_config, queue_id, smtplib_form

SIZE_LIMIT = 100_000
LINE_LIMIT = 2_000


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    """A relay whose listeners have small limits and short timeouts."""
    db = tmp_path_factory.mktemp("limits") / "relay.db"
    listeners = (
        listener("small", max_message_size=SIZE_LIMIT, max_recipients=3),
        listener("lines", max_line_length=LINE_LIMIT),
        listener("few", max_connections=2),
        listener("quick-command", command_timeout=0.3),
        listener("quick-data", data_timeout=0.3),
    )
    running = RunningRelay(make_config(f"sqlite+aiosqlite:///{db}", listener=listeners)).start()
    try:
        yield running
    finally:
        running.stop()


def message_of_size(size: int) -> bytes:
    """A message of exactly `size` bytes, in lines of 78 octets (76 and CRLF) or fewer."""
    head = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: sized\r\n\r\n"
    room = size - len(head)
    full, rest = divmod(room, 78)
    if rest < 2:  # the last line needs room for its CRLF: shorten one full line instead
        full, rest = full - 1, rest + 78
    data = head + (b"x" * 76 + b"\r\n") * full + b"x" * (rest - 2) + b"\r\n"
    assert len(data) == size
    return data


@pytest.mark.parametrize(
    ("size", "declared", "expected"),
    [
        (SIZE_LIMIT, False, 250),
        (SIZE_LIMIT + 1, False, 552),
        (SIZE_LIMIT, True, 250),
        (SIZE_LIMIT + 1, True, 552),
    ],
    ids=["at-limit", "one-over", "at-limit-with-SIZE", "one-over-with-SIZE"],
)
def test_size_limit(limited: RunningRelay, size: int, declared: bool, expected: int) -> None:
    """A message at max_message_size is stored byte-exact; one byte more gets 552 5.3.4,
    at MAIL when SIZE= says so, else after DATA."""
    data = message_of_size(size)
    with limited.smtp("small") as client:
        client.ehlo("client.example")
        assert client.esmtp_features["size"] == str(SIZE_LIMIT)
        options = [f"SIZE={size}"] if declared else []
        code, text = client.mail("a@example.com", options)
        if declared and expected == 552:
            assert (code, text) == smtplib_form(replies.MESSAGE_TOO_BIG)
            return
        assert code == 250
        client.rcpt("b@example.org")
        code, text = client.data(data)
        if expected == 552:
            assert (code, text) == smtplib_form(replies.MESSAGE_TOO_BIG)
            assert client.noop()[0] == 250  # the session goes on
            return
        assert code == 250
    raw = limited.raw(queue_id(text))
    assert raw[raw.index(b"From: a@example.com") :] == data


def test_minified_html_with_a_20000_character_line_is_stored_byte_exact(
    limited: RunningRelay,
) -> None:
    """A one-line 20,000-character HTML body (RFC 5321 says 998) is accepted as sent."""
    html = b"<html><body>" + b"<div class=x>minified</div>" * 740 + b"</body></html>"
    assert len(html) >= 20_000
    data = (
        b"From: a@example.com\r\nTo: b@example.org\r\nSubject: minified\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html + b"\r\n"
    )
    with limited.smtp() as client:  # the "small" listener: default max_line_length
        client.ehlo("client.example")
        client.mail("a@example.com")
        client.rcpt("b@example.org")
        code, reply = client.data(data)
    assert code == 250, reply
    raw = limited.raw(queue_id(reply))
    assert raw[raw.index(b"From: a@example.com") :] == data


@pytest.mark.parametrize(
    ("line", "accepted"),
    [
        (b"y" * LINE_LIMIT, True),
        (b"." + b"y" * (LINE_LIMIT - 1), True),  # dot-stuffed on the wire: one more octet
        (b"y" * (LINE_LIMIT + 1), False),
        (b"y" * (LINE_LIMIT * 40), False),  # far over the reader's own limit
    ],
    ids=["at-limit", "at-limit-dot-stuffed", "one-over", "far-over"],
)
def test_line_limit(limited: RunningRelay, line: bytes, accepted: bool) -> None:
    """Lines up to max_line_length are stored byte-exact; a longer one gets 500 5.5.2 and the
    session goes on to send the next message."""
    data = b"Subject: lines\r\n\r\n" + line + b"\r\nend\r\n"
    with limited.smtp("lines") as client:
        client.ehlo("client.example")
        client.mail("a@example.com")
        client.rcpt("b@example.org")
        code, reply = client.data(data)
        if accepted:
            assert code == 250, reply
            raw = limited.raw(queue_id(reply))
            assert raw[raw.index(b"Subject: lines") :] == data
        else:
            assert (code, reply) == smtplib_form(replies.LINE_TOO_LONG)
        client.mail("a@example.com")
        client.rcpt("b@example.org")
        assert client.data(mail.plain())[0] == 250


def test_too_many_recipients_get_452(limited: RunningRelay) -> None:
    """Past max_recipients RCPT gets 452 4.5.3; the message goes to the accepted ones."""
    with limited.smtp("small") as client:
        client.ehlo("client.example")
        client.mail("a@example.com")
        for n in range(3):
            assert client.rcpt(f"r{n}@example.org")[0] == 250
        assert client.rcpt("r3@example.org") == smtplib_form(replies.TOO_MANY_RECIPIENTS)
        code, reply = client.data(mail.plain())
    assert code == 250
    row = limited.message(queue_id(reply))
    assert [r.address for r in row.recipients] == [f"r{n}@example.org" for n in range(3)]


class Raw:
    """A raw SMTP connection: send bytes, read whole replies (one buffered reader)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        """Send bytes as they are."""
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """One reply, all its lines (b"" once the server has closed)."""
        lines = []
        while True:
            line = self.reader.readline()
            lines.append(line)
            if not line or line[3:4] != b"-":
                return b"".join(lines)

    def close(self) -> None:
        """Close the connection."""
        self.reader.close()
        self.sock.close()


def test_connections_over_the_limit_get_421_while_others_are_served(
    limited: RunningRelay,
) -> None:
    """With max_connections = 2 a third client gets 421 4.7.0 at once and is closed; the two
    go on, and once one leaves a new client is served."""
    port = limited.port("few")
    first, second = limited.smtp("few"), limited.smtp("few")
    third = Raw(port)
    assert third.reply() == replies.TOO_MANY_CONNECTIONS.encode() + b"\r\n"
    assert third.reply() == b""  # closed
    third.close()
    for client in (first, second):
        client.ehlo("client.example")
        assert client.sendmail("a@example.com", ["b@example.org"], mail.plain()) == {}
    first.quit()
    for _ in range(100):  # the server notices the quit; no fixed sleep
        again = Raw(port)
        greeting = again.reply()
        again.close()
        if greeting.startswith(b"220 "):
            break
    else:
        pytest.fail("no connection was accepted after one left")
    second.quit()


def test_idle_client_gets_421_after_the_command_timeout(limited: RunningRelay) -> None:
    """A client that says nothing for command_timeout gets 421 4.4.2 and is closed."""
    raw = Raw(limited.port("quick-command"))
    assert raw.reply().startswith(b"220 ")
    assert raw.reply() == replies.TIMEOUT.encode() + b"\r\n"
    assert raw.reply() == b""
    raw.close()


def test_stalled_data_gets_421_after_the_data_timeout(limited: RunningRelay) -> None:
    """A client that stops sending in the middle of DATA gets 421 4.4.2; nothing is stored
    (the command timeout of this listener is the default five minutes)."""
    before = limited.count()
    raw = Raw(limited.port("quick-data"))
    raw.send(b"EHLO client.example\r\nMAIL FROM:<a@example.com>\r\n")
    raw.send(b"RCPT TO:<b@example.org>\r\nDATA\r\n")
    assert [raw.reply()[:3] for _ in range(5)] == [b"220", b"250", b"250", b"250", b"354"]
    raw.send(b"Subject: stalled\r\n\r\nhalf a mess")
    assert raw.reply() == replies.TIMEOUT.encode() + b"\r\n"
    assert raw.reply() == b""
    raw.close()
    assert limited.count() == before


def test_pipelined_commands_are_answered_in_order(limited: RunningRelay) -> None:
    """PIPELINING is advertised; MAIL, RCPTs and DATA in one write get their replies in
    order, and so do the message, the end dot and QUIT."""
    raw = Raw(limited.smtp_port)
    assert raw.reply().startswith(b"220 ")
    raw.send(b"EHLO client.example\r\n")
    assert b"\r\n250-PIPELINING\r\n" in raw.reply()
    raw.send(
        b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\n"
        b"RCPT TO:<c@example.org>\r\nDATA\r\n"
    )
    assert [raw.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
    raw.send(mail.plain() + b".\r\nQUIT\r\n")
    done = raw.reply()
    assert done.startswith(b"250 2.0.0 OK: queued as ")
    assert raw.reply().startswith(b"221")
    raw.close()
    row = limited.message(queue_id(done))
    assert [r.address for r in row.recipients] == ["b@example.org", "c@example.org"]


def test_smtputf8_addresses_are_accepted_and_stored(limited: RunningRelay) -> None:
    """With SMTPUTF8, 用户@例子.广告 is a valid sender and recipient; the UTF-8 message is
    stored byte-exact and the Received header says UTF8SMTP."""
    address = "用户@例子.广告"
    data = f"From: {address}\r\nTo: {address}\r\nSubject: 你好\r\n\r\n正文\r\n".encode()
    with limited.smtp() as client:
        client.ehlo("client.example")
        assert "smtputf8" in client.esmtp_features and "8bitmime" in client.esmtp_features
        client.mail(address, ["SMTPUTF8", "BODY=8BITMIME"])
        assert client.rcpt(address)[0] == 250
        code, reply = client.data(data)
    assert code == 250
    message_id = queue_id(reply)
    row = limited.message(message_id)
    assert row.mail_from == address
    assert [r.address for r in row.recipients] == [address]
    assert row.subject == "你好"
    raw = limited.raw(message_id)
    assert raw.endswith(b"\r\n" + data) and b"with UTF8SMTP " in raw


@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_gone_in_the_middle_of_data_leaves_nothing(limited: RunningRelay, how: str) -> None:
    """A client that disconnects (FIN or RST) during DATA stores nothing; the server goes on."""
    before = limited.count()
    raw = Raw(limited.smtp_port)
    raw.send(b"EHLO client.example\r\nMAIL FROM:<a@example.com>\r\n")
    raw.send(b"RCPT TO:<b@example.org>\r\nDATA\r\n")
    assert [raw.reply()[:3] for _ in range(5)] == [b"220", b"250", b"250", b"250", b"354"]
    raw.send(b"Subject: cut short\r\n\r\nthe first half of")
    if how == "reset":
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()
    with limited.smtp() as client:
        client.ehlo("client.example")
        assert client.sendmail("a@example.com", ["b@example.org"], mail.plain()) == {}
    assert limited.count() == before + 1


def test_ehlo_advertises_the_extensions(limited: RunningRelay) -> None:
    """A plain listener advertises SIZE, 8BITMIME, SMTPUTF8, PIPELINING, not STARTTLS/AUTH."""
    with limited.smtp() as client:
        client.ehlo("client.example")
        features = set(client.esmtp_features)
    assert {"size", "8bitmime", "smtputf8", "pipelining"} <= features
    assert not {"starttls", "auth"} & features


def test_no_reverse_dns_lookup_on_connect(
    limited: RunningRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole session asks DNS nothing about the client (slow in containers)."""
    asked: list[str] = []

    def lookup(name: str) -> Callable[..., Any]:
        def record(*args: Any, **kwargs: Any) -> Any:
            asked.append(name)
            raise OSError("no DNS in this test")

        return record

    for name in ("gethostbyaddr", "getnameinfo", "getfqdn"):
        monkeypatch.setattr(socket, name, lookup(name))
    raw = Raw(limited.smtp_port)
    raw.send(b"EHLO client.example\r\nMAIL FROM:<a@example.com>\r\n")
    raw.send(b"RCPT TO:<b@example.org>\r\nDATA\r\n")
    assert [raw.reply()[:3] for _ in range(5)] == [b"220", b"250", b"250", b"250", b"354"]
    raw.send(mail.plain() + b".\r\nQUIT\r\n")
    assert raw.reply().startswith(b"250 ")
    raw.close()
    assert asked == []
