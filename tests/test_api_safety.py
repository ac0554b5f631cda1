"""The JSON API needs no CSRF token, yet other sites cannot drive it, and it asks for the
UI's credentials when they are configured."""

from __future__ import annotations

import json

import pytest

from relay.config import WebConfig
from relay.store import Store
from tests.test_store import new_message
from tests.webkit import web_client

SEND = {"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}], "Text": "hi"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"content-type": "application/x-www-form-urlencoded"}, 415),
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "multipart/form-data; boundary=x"}, 415),
        ({"content-type": "application/json", "origin": "https://evil.example"}, 403),
        ({"content-type": "application/json", "sec-fetch-site": "cross-site"}, 403),
        ({"content-type": "application/json; charset=utf-8"}, 200),
    ],
    ids=["form", "text", "multipart", "other-origin", "cross-site", "json"],
)
async def test_post_needs_json_from_this_site(
    sqlite_store: Store, headers: dict[str, str], status: int
) -> None:
    """POST with a content type a form can send, or from another site, is refused."""
    async with web_client(sqlite_store) as web:
        response = await web.post("/api/v1/send", content=json.dumps(SEND), headers=headers)
    assert response.status_code == status, response.text
    assert (await sqlite_store.messages.page()).total == (1 if status == 200 else 0)


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_changes_from_another_site_are_refused(sqlite_store: Store, method: str) -> None:
    """PUT and DELETE that a browser marks cross-site are refused; nothing changes."""
    await sqlite_store.add_message(new_message(b"Subject: x\r\n\r\nx\r\n", ["b@example.com"]))
    async with web_client(sqlite_store) as web:
        response = await web.request(
            method, "/api/v1/messages", json={"Read": True}, headers={"origin": "https://x.evil"}
        )
    page = await sqlite_store.messages.page()
    assert response.status_code == 403
    assert page.total == 1 and not page.messages[0].read


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"authorization": "Bearer api-token"}, 200), ({"authorization": "Bearer x"}, 401)],
)
async def test_api_asks_for_the_ui_credentials(
    sqlite_store: Store, headers: dict[str, str], status: int
) -> None:
    """With a token configured, the API (and /metrics) need it; /readyz stays open."""
    async with web_client(sqlite_store, WebConfig(token="api-token")) as web:
        responses = [await web.get(p, headers=headers) for p in ("/api/v1/messages", "/metrics")]
        ready = await web.get("/readyz")
    assert [r.status_code for r in responses] == [status, status]
    assert ready.status_code == 200
