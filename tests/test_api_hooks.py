"""The webhook and suppression routes of the API: lists, changes, "send again", and
answers shaped as the OpenAPI document says."""

from __future__ import annotations

import time

from relay.config import WebhookConfig
from relay.status import Status
from relay.store import HookAttempt, Store
from tests.queueing import new_message
from tests.test_api_openapi import problems
from tests.webkit import web_client
from web.api.openapi import DOCUMENT

URL = "http://hooks.example/relay"
HOOKS = (WebhookConfig(url=URL, events=("received", "held")),)
JSON = {"Content-Type": "application/json"}


def schema_of(path: str, method: str = "get") -> dict[str, object]:
    """The document's 200 schema of an operation."""
    answer = DOCUMENT["paths"][path][method]["responses"]["200"]
    schema: dict[str, object] = answer["content"]["application/json"]["schema"]
    return schema


async def test_suppressions_are_listed_added_and_removed(store: Store) -> None:
    """POST adds an address (400 for a bad one), GET lists it in the document's shape,
    DELETE removes it (404 the second time)."""
    async with web_client(store) as web:
        bad = await web.post("/api/v1/suppressions", json={"Address": "nobody"})
        assert bad.status_code == 400
        added = await web.post(
            "/api/v1/suppressions", json={"Address": "a@example.com", "Reason": "asked"}
        )
        assert added.status_code == 200 and added.json()["Address"] == "a@example.com"
        listed = (await web.get("/api/v1/suppressions")).json()
        assert [(e["Address"], e["Reason"], e["Expires"]) for e in listed] == [
            ("a@example.com", "asked", None)
        ]
        assert problems(listed, schema_of("/api/v1/suppressions")) == []
        gone = await web.delete("/api/v1/suppressions/a@example.com")
        assert gone.status_code == 200
        again = await web.delete("/api/v1/suppressions/a@example.com")
        assert again.status_code == 404
        assert (await web.get("/api/v1/suppressions")).json() == []


async def test_a_form_post_cannot_add_a_suppression(sqlite_store: Store) -> None:
    """A POST that is not JSON is refused (415): no other site can add one."""
    async with web_client(sqlite_store) as web:
        form = await web.post("/api/v1/suppressions", data={"Address": "a@example.com"})
    assert form.status_code == 415


async def test_webhooks_events_attempts_and_send_again(store: Store) -> None:
    """The webhook's counts and last error, its events, one event's attempts and body;
    "send again" makes a given-up event pending from now."""
    store.configure(HOOKS, store.suppressions.settings)
    new = new_message(["a@example.com"], status=Status.CAPTURED, route="capture")
    await store.add_message(new)
    [outgoing] = await store.webhooks.take([URL], time.time(), 30)
    failure = HookAttempt(time.time(), 0.25, 500, "HTTP 500: no")
    await store.webhooks.finish([(outgoing, failure, None)], time.time())
    async with web_client(store, webhook=HOOKS) as web:
        hooks = (await web.get("/api/v1/webhooks")).json()
        assert problems(hooks, schema_of("/api/v1/webhooks")) == []
        [hook] = hooks
        assert (hook["URL"], hook["Expired"], hook["Pending"]) == (URL, 1, 0)
        assert hook["LastError"] == "HTTP 500: no" and hook["Signed"] is False
        events = (await web.get("/api/v1/webhooks/events", params={"webhook": URL})).json()
        assert problems(events, schema_of("/api/v1/webhooks/events")) == []
        [event] = events
        assert (event["Event"], event["State"], event["MessageID"]) == (
            "received",
            "expired",
            new.id,
        )
        detail = (await web.get(f"/api/v1/webhooks/events/{event['ID']}")).json()
        assert problems(detail, schema_of("/api/v1/webhooks/events/{EventID}")) == []
        assert [a["Status"] for a in detail["Attempts"]] == [500]
        assert '"event":"received"' in detail["Body"]
        resent = await web.post(f"/api/v1/webhooks/events/{event['ID']}/resend", headers=JSON)
        assert resent.status_code == 200
        after = (await web.get(f"/api/v1/webhooks/events/{event['ID']}")).json()["Event"]
        missing = await web.post("/api/v1/webhooks/events/nope/resend", headers=JSON)
    assert after["State"] == "pending" and after["NextAttempt"] is not None
    assert missing.status_code == 404
