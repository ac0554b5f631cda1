"""No open relay, routes that reject, and the submission fix-ups, over loopback."""

from __future__ import annotations

import re
import smtplib
import types
from collections.abc import Iterator

import pytest

from relay.config import RouteConfig, UpstreamConfig
from relay.smtp import replies
from relay.smtp.policy import in_networks
from tests import mail
from tests.support import (
    PASSWORD,
    USER,
    RunningRelay,
    listener,
    make_config,
    queue_id,
    smtplib_form,
    users,
)

OUTSIDE = ("10.0.0.0/8",)  # 127.0.0.1 is not in it
ROUTES = (
    RouteConfig(match="example.com", action="relay", upstream="upstream"),
    RouteConfig(match="blocked.example", action="reject"),
)


@pytest.fixture(scope="module")
def policed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    """A relay that relays example.com, rejects blocked.example and captures the rest."""
    db = tmp_path_factory.mktemp("policy") / "relay.db"
    config = make_config(
        f"sqlite+aiosqlite:///{db}",
        listener=(
            listener("edge", trusted_networks=OUTSIDE),
            listener("inside"),
            listener("edge-auth", trusted_networks=OUTSIDE, auth="optional",
                     allow_insecure_auth=True),
            listener("submission", "submission", trusted_networks=OUTSIDE),
            listener("smtps", "smtps", trusted_networks=OUTSIDE),
        ),
        route=ROUTES,
        upstream=types.MappingProxyType({"upstream": UpstreamConfig(port=9)}),
        auth=users(),
    )  # fmt: skip
    running = RunningRelay(config).start()
    try:
        yield running
    finally:
        running.stop()


def connect(relay: RunningRelay, name: str, login: bool = False) -> smtplib.SMTP:
    """A client of listener `name` after EHLO (and TLS and AUTH where asked or needed)."""
    if name == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            "127.0.0.1", relay.port(name), context=relay.client_tls(), timeout=10
        )
    else:
        client = relay.smtp(name)
    client.ehlo("client.example")
    if name == "submission":
        client.starttls(context=relay.client_tls())
        client.ehlo("client.example")
    if login or name in ("submission", "smtps"):
        client.login(USER, PASSWORD)
    return client


@pytest.mark.parametrize(
    ("name", "login", "recipient", "expected"),
    [
        ("edge", False, "bob@example.com", replies.RELAY_DENIED),
        ("edge", False, "BOB@EXAMPLE.COM", replies.RELAY_DENIED),
        ("edge", False, "someone@captured.test", replies.RCPT_OK),
        ("edge", False, "x@blocked.example", replies.RECIPIENT_REJECTED),
        ("inside", False, "bob@example.com", replies.RCPT_OK),
        ("edge-auth", True, "bob@example.com", replies.RCPT_OK),
        ("edge-auth", True, "x@blocked.example", replies.RECIPIENT_REJECTED),
        ("submission", True, "bob@example.com", replies.RCPT_OK),
    ],
    ids=[
        "untrusted-relay", "untrusted-relay-any-case", "untrusted-capture", "untrusted-reject",
        "trusted-relay", "authenticated-relay", "authenticated-reject", "submission-relay",
    ],
)  # fmt: skip
def test_rcpt_policy(
    policed: RunningRelay, name: str, login: bool, recipient: str, expected: str
) -> None:
    """Relaying needs a trusted network or AUTH (else 554 5.7.1); captured recipients are
    accepted from anyone; a reject route gets 550 5.7.1 from everyone."""
    with connect(policed, name, login) as client:
        client.mail("app@example.net")
        assert client.rcpt(recipient) == smtplib_form(expected)


def test_untrusted_message_keeps_only_its_captured_recipients(policed: RunningRelay) -> None:
    """An untrusted client's message is stored for the recipients that were accepted."""
    with connect(policed, "edge") as client:
        client.mail("app@example.net")
        assert client.rcpt("bob@example.com")[0] == 554
        assert client.rcpt("qa@captured.test")[0] == 250
        code, reply = client.data(mail.plain())
    assert code == 250
    row = policed.message(queue_id(reply))
    assert [r.address for r in row.recipients] == ["qa@captured.test"]


@pytest.mark.parametrize(
    ("client", "networks", "inside"),
    [
        ("127.0.0.1", ("127.0.0.0/8",), True),
        ("127.0.0.1", ("10.0.0.0/8",), False),
        ("::ffff:127.0.0.1", ("127.0.0.0/8",), True),
        ("::1", ("::1/128",), True),
        ("::1", ("127.0.0.0/8",), False),
        ("fe80::1%eth0", ("fe80::/10",), True),
        ("unknown", ("0.0.0.0/0",), False),
    ],
)
def test_trusted_networks(client: str, networks: tuple[str, ...], inside: bool) -> None:
    """Client addresses are matched against networks, IPv4-mapped IPv6 as IPv4."""
    import ipaddress

    assert in_networks(client, [ipaddress.ip_network(n) for n in networks]) is inside


BARE = b"From: app@example.net\r\nTo: qa@captured.test\r\nSubject: bare\r\n\r\nhello\r\n"


@pytest.mark.parametrize(
    ("name", "data", "fixed"),
    [
        ("submission", BARE, True),
        ("smtps", BARE, True),
        ("edge", BARE, False),
        ("submission", mail.plain().replace(b"Subject:", b"Date: Mon, 1 Jan 2024 00:00:00 +0000"
                                            b"\r\nSubject:"), False),
    ],
    ids=["submission", "smtps", "smtp-untouched", "submission-complete"],
)  # fmt: skip
def test_submission_adds_message_id_and_date(
    policed: RunningRelay, name: str, data: bytes, fixed: bool
) -> None:
    """On submission and smtps a message without Message-ID and Date gets both in front;
    the rest stays byte-exact. Port-25 style listeners and complete messages are left be."""
    with connect(policed, name) as client:
        client.mail("app@example.net")
        client.rcpt("qa@captured.test")
        code, reply = client.data(data)
    assert code == 250
    message_id = queue_id(reply)
    raw = policed.raw(message_id)
    assert raw.endswith(data)
    added = raw[: -len(data)].split(b"\r\n", 1)[1]  # after the Received: header's first line
    added = re.sub(rb"\A(?:[ \t][^\r\n]*\r\n)*", b"", added)  # and its folded lines
    if fixed:
        assert re.fullmatch(rb"Message-ID: <[^>]+@[^>]+>\r\nDate: [^\r\n]+\r\n", added), added
        row = policed.message(message_id)  # the summary sees the Message-ID made
        assert row.message_id_header and row.message_id_header.encode() in added
    else:
        assert added == b""
