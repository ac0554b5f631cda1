"""POST /api/v1/send: JSON → a MIME message → stored like SMTP mail, each recipient routed."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from relay.config import Config, RouteConfig, StorageConfig, UpstreamConfig
from relay.store import Store
from tests import mail
from tests.support import RunningRelay, make_config
from web import create_app

FULL_REQUEST: dict[str, Any] = {
    "From": {"Email": "app@example.com", "Name": "The App"},
    "To": [{"Email": "jane@example.com", "Name": "Jane Doe"}],
    "Cc": [{"Email": "manager@example.com"}],
    "Bcc": ["audit@example.net"],
    "ReplyTo": [{"Email": "desk@example.com", "Name": "Desk"}],
    "Subject": "Welcome, Jane ✓",
    "Text": "Hello Jane",
    "HTML": '<p>Hello <b>Jane</b> <img src="cid:logo"></p>',
    "Headers": {"X-Campaign": "spring"},
    "Tags": ["ignored"],
    "Attachments": [
        {"Content": base64.b64encode(mail.PDF).decode(), "Filename": "terms.pdf"},
        {
            "Content": base64.b64encode(mail.PNG).decode(),
            "Filename": "logo.png",
            "ContentType": "image/png",
            "ContentID": "logo",
        },
    ],
}


@pytest.fixture
def api(relay: RunningRelay) -> Iterator[httpx.Client]:
    """An HTTP client for the running relay's web port."""
    with httpx.Client(base_url=relay.web_url, timeout=10) as client:
        yield client


def test_send_stores_a_full_message(relay: RunningRelay, api: httpx.Client) -> None:
    """Every SendRequest field lands in the stored message, read back through the API."""
    response = api.post("/api/v1/send", json=FULL_REQUEST)
    assert response.status_code == 200, response.text
    message_id = response.json()["ID"]
    got = api.get(f"/api/v1/message/{message_id}").json()
    assert got["From"] == {"Name": "The App", "Address": "app@example.com"}
    assert got["To"] == [{"Name": "Jane Doe", "Address": "jane@example.com"}]
    assert got["Cc"] == [{"Name": "", "Address": "manager@example.com"}]
    assert got["Bcc"] == [{"Name": "", "Address": "audit@example.net"}]
    assert got["ReplyTo"] == [{"Name": "Desk", "Address": "desk@example.com"}]
    assert got["Subject"] == "Welcome, Jane ✓" and got["Text"].strip() == "Hello Jane"
    assert "<b>Jane</b>" in got["HTML"] and got["ReturnPath"] == "app@example.com"
    assert [a["FileName"] for a in got["Attachments"]] == ["terms.pdf"]
    assert [(a["FileName"], a["ContentID"]) for a in got["Inline"]] == [("logo.png", "logo")]
    headers = api.get(f"/api/v1/message/{message_id}/headers").json()
    assert headers["X-Campaign"] == ["spring"] and "Bcc" not in headers
    assert "with HTTP id " + message_id in headers["Received"][0]
    row = relay.message(message_id)
    assert row.listener == "api" and row.peer == "127.0.0.1"
    assert sorted(r.address for r in row.recipients) == [
        "audit@example.net",
        "jane@example.com",
        "manager@example.com",
    ]
    pdf = api.get(f"/api/v1/message/{message_id}/part/{got['Attachments'][0]['PartID']}")
    assert pdf.content == mail.PDF


def test_send_text_only(api: httpx.Client, relay: RunningRelay) -> None:
    """A minimal request (From, To, Text) is a plain text message."""
    response = api.post(
        "/api/v1/send",
        json={"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}],
              "Text": "hi"},
    )  # fmt: skip
    raw = relay.raw(response.json()["ID"])
    assert b"Content-Type: text/plain" in raw and b"multipart" not in raw


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"From": None}, "From"),
        ({"From": {"Name": "x"}}, "From"),
        ({"From": {"Email": "a@b.c>, evil@x"}}, "From.Email"),
        ({"To": "jane@example.com"}, "To must be an array"),
        ({"To": [], "Cc": [], "Bcc": []}, "at least one recipient"),
        ({"Subject": "line\r\nBcc: evil@example.com"}, "cannot build"),
        ({"Headers": {"Bad Name": "x"}}, "bad header"),
        ({"Headers": {"X-Evil": "a\r\nBcc: evil@example.com"}}, "cannot build"),
        ({"Headers": {"Content-Type": "text/html"}}, "Content-Type"),
        ({"Attachments": [{"Filename": "x.bin", "Content": "***"}]}, "base64"),
        ({"Attachments": [{"Content": "AAAA"}]}, "Filename"),
        ({"Bcc": [1]}, "Bcc must be an array of strings"),
    ],
)
def test_bad_requests_are_400_and_store_nothing(
    relay: RunningRelay, api: httpx.Client, change: dict[str, Any], error: str
) -> None:
    """A malformed SendRequest answers 400 {"Error"} naming the problem; nothing is stored."""
    response = api.post("/api/v1/send", json={**FULL_REQUEST, **change})
    assert response.status_code == 400, response.text
    assert error in response.json()["Error"]
    assert relay.count() == 0


def test_body_that_is_not_a_json_object_is_400(api: httpx.Client) -> None:
    """Broken JSON, or JSON that is not an object, answers 400."""
    bad = api.post("/api/v1/send", content=b"{nope", headers={"content-type": "application/json"})
    array = api.post("/api/v1/send", json=[1, 2])
    assert (bad.status_code, array.status_code) == (400, 400)


ROUTES = (
    RouteConfig(match="blocked.example", action="reject"),
    RouteConfig(match="partner.example", action="relay", upstream="smarthost"),
)


def routed_config(db_url: str) -> Config:
    """A config that rejects blocked.example and relays partner.example."""
    return dataclasses.replace(
        make_config(db_url),
        route=ROUTES,
        upstream={"smarthost": UpstreamConfig(host="127.0.0.1", port=2525)},
    )


@asynccontextmanager
async def in_process(store: Store, client_ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """The web app with routes, in-process, as seen from `client_ip`."""
    url = store.db.url.render_as_string(hide_password=False)
    app = create_app(routed_config(url), store)
    transport = httpx.ASGITransport(app=app, client=(client_ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://relay.test") as client:
        yield client


def request_to(*addresses: str) -> dict[str, Any]:
    """A small SendRequest for these recipients."""
    return {"From": {"Email": "app@example.com"}, "To": [{"Email": a} for a in addresses]}


async def test_routes_decide_each_recipient(sqlite_store: Store) -> None:
    """Relayed recipients are queued with their route, others captured; a rejected one
    refuses the whole request."""
    async with in_process(sqlite_store, "127.0.0.1") as web:
        ok = await web.post("/api/v1/send", json=request_to("a@partner.example", "b@x.org"))
        refused = await web.post("/api/v1/send", json=request_to("c@blocked.example"))
    row = await sqlite_store.messages.get(ok.json()["ID"])
    assert row is not None
    assert {(r.address, r.route, r.status) for r in row.recipients} == {
        ("a@partner.example", "relay:smarthost", "queued"),
        ("b@x.org", "capture", "captured"),
    }
    assert refused.status_code == 400 and "c@blocked.example" in refused.json()["Error"]


async def test_relay_from_another_machine_needs_a_login(sqlite_store: Store) -> None:
    """Without web auth, only a client on this machine may send mail that gets relayed."""
    async with in_process(sqlite_store, "203.0.113.7") as web:
        relayed = await web.post("/api/v1/send", json=request_to("a@partner.example"))
        captured = await web.post("/api/v1/send", json=request_to("b@x.org"))
    assert relayed.status_code == 400 and "authenticated" in relayed.json()["Error"]
    assert captured.status_code == 200


async def test_sent_messages_are_counted(sqlite_url: str) -> None:
    """Accepted and refused API sends show in the metrics under listener "api"."""
    store = Store(StorageConfig(url=sqlite_url))
    await store.open()
    try:
        app = create_app(routed_config(sqlite_url), store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay.test") as web:
            await web.post("/api/v1/send", json=request_to("b@x.org"))
            await web.post("/api/v1/send", json=request_to("c@blocked.example"))
            text = (await web.get("/metrics")).text
    finally:
        await store.close()
    assert 'relay_messages_received_total{listener="api",result="accepted"} 1.0' in text
    assert 'relay_messages_received_total{listener="api",result="rejected"} 1.0' in text
