"""No open relay: from an untrusted client without AUTH, no recipient that a route relays
is accepted, whatever the spelling; what is accepted is only ever captured. Releasing a
captured message cannot smuggle commands or headers in an address."""

from __future__ import annotations

import re
import time
import types
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from relay import routing
from relay.config import Config, RouteConfig, StorageConfig
from relay.routing import NOT_AN_ADDRESS
from relay.smtp import replies
from relay.status import Status
from relay.store import Store
from relay.store.schema import recipient
from tests import mail
from tests.queueing import upstream_at
from tests.support import RunningRelay, listener, make_config, smtplib_form
from tests.upstream import Upstream
from tests.webkit import web_client
from web import create_app

ROUTES = (
    RouteConfig(match="*@ourcompany.example", action="relay", upstream="smarthost"),
    RouteConfig(match="partner.example", action="relay", upstream="smarthost"),
    RouteConfig(match="bank.example", action="relay", upstream="smarthost"),
    RouteConfig(match="*.relayed.example", action="relay", upstream="mx"),
)

# (RCPT argument as sent, the reply code it must get; 250 only where the route captures)
TRICKS = [
    ("<user@ourcompany.example>", 554),
    ("<User@OurCompany.EXAMPLE>", 554),
    ("<user@ourcompany.example.>", 553),
    ("<user@ourcompany.example..>", 553),
    ("<user%gmail.example@ourcompany.example>", 554),
    ("<victim%ourcompany.example@capture.example>", 250),
    ("<@gmail.example:user@ourcompany.example>", 554),
    ("<@ourcompany.example:victim@gmail.example>", 250),
    ("<@a.example,@b.example:user@partner.example>", 554),
    ('<"victim@gmail.example"@ourcompany.example>', 554),
    ('<"user"@ourcompany.example>', 554),
    ('<"user@ourcompany.example">', 250),  # no domain at all: captured
    ("<user@[127.0.0.1]>", 250),
    ("<user@[IPv6:::1]>", 250),
    ("<user@PARTNER.example>", 554),
    ("<user@mail.partner.example>", 250),
    ("<user@sub.RELAYED.example>", 554),
    ("<user@relayed.example>", 250),
    ("<user@ban\u212a.example>", 554),  # KELVIN SIGN, which lower-cases to "k"
    ("<user@ourcomp\u0430ny.example>", 250),  # a Cyrillic a: another domain, captured
    ("<user@xn--ourcompny-2of.example>", 250),  # its punycode: captured too
    ("<üser@ourcompany.example>", 554),
    ("<user@ourcompany.example> NOTIFY=NEVER", 555),
    ("user@ourcompany.example", 554),
    ("<user@gmail.example@ourcompany.example>", 553),
]


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningRelay, Upstream]]:
    """A relay for which loopback is not a trusted network, routing some domains to a
    recording upstream; everything else is captured."""
    db = tmp_path_factory.mktemp("gate") / "relay.db"
    with Upstream().start() as upstream:
        config = make_config(
            f"sqlite+aiosqlite:///{db}",
            listener=(listener("internet", trusted_networks=("192.0.2.0/24",)),),
            route=ROUTES,
            upstream=types.MappingProxyType({"smarthost": upstream_at(upstream.port)}),
        )
        running = RunningRelay(config).start()
        try:
            yield running, upstream
        finally:
            running.stop()


def relayed_recipients(relay: RunningRelay) -> list[tuple[str, str]]:
    """Stored recipients whose route is not capture."""

    async def query() -> list[tuple[str, str]]:
        async with relay.relay.store.db.reader.connect() as conn:
            rows = await conn.execute(
                select(recipient.c.address, recipient.c.route).where(recipient.c.route != "capture")
            )
            return [(str(a), str(r)) for a, r in rows]

    return relay.call(query())


@pytest.mark.parametrize(("rcpt", "code"), TRICKS, ids=[t[0] for t in TRICKS])
def test_untrusted_client_cannot_relay(
    gate: tuple[RunningRelay, Upstream], rcpt: str, code: int
) -> None:
    """The trick gets its refusal, or is accepted only as a captured recipient; nothing is
    ever queued for an upstream, and the upstream hears nothing."""
    relay, upstream = gate
    with relay.smtp() as client:
        client.ehlo("attacker.example")
        client.command_encoding = "utf-8"
        mail_options = "" if rcpt.isascii() else " SMTPUTF8"
        assert client.docmd(f"MAIL FROM:<a@attacker.example>{mail_options}")[0] == 250
        got, text = client.docmd(f"RCPT TO:{rcpt}")
        assert got == code, text
        if got == 554:
            assert (got, text) == smtplib_form(replies.RELAY_DENIED)
        if got == 250:
            code_data, reply = client.data(mail.plain())
            assert code_data == 250, reply
    assert relayed_recipients(relay) == []
    assert upstream.connections == []


def test_auth_cannot_be_faked_where_it_is_off(gate: tuple[RunningRelay, Upstream]) -> None:
    """AUTH on a listener without it is refused, and the relay stays closed after."""
    relay, _ = gate
    with relay.smtp() as client:
        client.ehlo("attacker.example")
        assert client.docmd("AUTH PLAIN AGFsaWNlAHg=")[0] == 503
        client.docmd("MAIL FROM:<a@attacker.example>")
        assert client.docmd("RCPT TO:<user@ourcompany.example>")[0] == 554


@pytest.mark.parametrize(
    "address",
    [
        "user@ourcompany.example\r\nRCPT TO:<victim@gmail.example>",
        "user@ourcompany.example\nBcc: victim@gmail.example",
        "user@ourcompany.example\rX: y",
        "user\x00@ourcompany.example",
        "user@ourcompany.example\udcff",
    ],
)
def test_release_refuses_addresses_that_could_inject(
    gate: tuple[RunningRelay, Upstream], address: str
) -> None:
    """Releasing a captured message to an address with CR, LF, NUL or undecodable bytes
    queues nothing: the address is reported as not valid."""
    relay, _ = gate
    with relay.smtp() as client:
        client.sendmail("a@attacker.example", ["kept@capture.example"], mail.plain())
    page = relay.call(relay.relay.store.messages.page(0, 1))
    message_id = page.messages[0].id
    released = relay.call(
        relay.relay.store.actions.release_captured(
            message_id, routing.route_all([address], ROUTES), time.time()
        )
    )
    assert released is not None
    assert released.queued == {}
    assert released.skipped == {address: NOT_AN_ADDRESS}
    assert relayed_recipients(relay) == []
    statuses = {r.status for r in relay.message(message_id).recipients}
    assert statuses == {Status.CAPTURED}


INJECTED = "user@ourcompany.example\r\nRCPT TO:<victim@gmail.example>"


def test_http_release_refuses_injected_addresses(gate: tuple[RunningRelay, Upstream]) -> None:
    """The release form and the release API refuse an address with a line break (400) and
    queue nothing."""
    relay, _ = gate
    with relay.smtp() as client:
        client.sendmail("a@attacker.example", ["kept@capture.example"], mail.plain())
    message_id = relay.call(relay.relay.store.messages.page(0, 1)).messages[0].id
    with httpx.Client(base_url=relay.web_url, timeout=30) as web:
        form = web.get(f"/message/{message_id}/release")
        match = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert form.status_code == 200 and match, form.text[:300]
        answer = web.post(
            f"/message/{message_id}/release",
            data={"csrf": match.group(1), "addresses": INJECTED},
        )
        assert answer.status_code == 400, answer.text[:300]
        answer = web.post(f"/api/v1/message/{message_id}/release", json={"To": [INJECTED]})
        assert answer.status_code == 400, answer.text
    assert relayed_recipients(relay) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"Subject": "hi\r\nBcc: victim@gmail.example"},
        {"Subject": "hi\nX-Injected: 1"},
        {"To": [{"Email": "kept@capture.example\r\nBcc: victim@gmail.example"}]},
        {"From": {"Email": "a@attacker.example", "Name": "Eve\r\nBcc: victim@gmail.example"}},
    ],
)
async def test_send_api_refuses_header_injection(
    sqlite_store: Store, fields: dict[str, object]
) -> None:
    """A line break in a subject, an address or a name of /api/v1/send is a 400, and
    nothing is stored."""
    message = {
        "From": {"Email": "a@attacker.example"},
        "To": [{"Email": "kept@capture.example"}],
        "Subject": "hello",
        "Text": "hi",
        **fields,
    }
    async with web_client(sqlite_store, route=ROUTES) as api:
        answer = await api.post("/api/v1/send", json=message)
    assert answer.status_code == 400, answer.text
    assert (await sqlite_store.messages.page(0, 10)).total == 0


async def test_send_api_from_the_network_cannot_relay(sqlite_store: Store) -> None:
    """/api/v1/send from a client that is not on this machine, without a login, cannot
    send to a recipient that a route relays; captured ones are kept."""
    config = Config(route=ROUTES, storage=StorageConfig(url=sqlite_store.db.display_url))
    transport = httpx.ASGITransport(app=create_app(config, sqlite_store), client=("203.0.113.9", 4))
    async with httpx.AsyncClient(transport=transport, base_url="http://relay.test") as api:
        message = {"From": {"Email": "a@attacker.example"}, "Subject": "s", "Text": "t"}
        refused = await api.post(
            "/api/v1/send", json={**message, "To": [{"Email": "user@ourcompany.example"}]}
        )
        kept = await api.post(
            "/api/v1/send", json={**message, "To": [{"Email": "kept@capture.example"}]}
        )
    assert refused.status_code == 400, refused.text
    assert kept.status_code == 200, kept.text
    page = await sqlite_store.messages.page(0, 10)
    assert [r.route for m in page.messages for r in m.recipients] == ["capture"]
