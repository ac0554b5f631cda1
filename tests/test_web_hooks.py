"""The Webhooks and Suppressions pages: what they show, and their forms (CSRF-guarded)."""

from __future__ import annotations

import time

from relay.config import WebhookConfig
from relay.status import Status
from relay.store import HookAttempt, Store
from tests.queueing import new_message
from tests.webkit import csrf_token, web_client

URL = "http://hooks.example/relay"
HOOKS = (WebhookConfig(url=URL, events=("received",)),)


async def test_the_webhooks_page_shows_events_errors_and_sends_again(sqlite_store: Store) -> None:
    """Each webhook with its last error and recent events; an event's attempts open on
    the page; "Send again" makes it pending (and needs the form's token)."""
    sqlite_store.configure(HOOKS, sqlite_store.suppressions.settings)
    new = new_message(["a@example.com"], status=Status.CAPTURED, route="capture")
    await sqlite_store.add_message(new)
    [outgoing] = await sqlite_store.webhooks.take([URL], time.time(), 30)
    failure = HookAttempt(time.time(), 0.1, None, "cannot connect: refused")
    await sqlite_store.webhooks.finish([(outgoing, failure, None)], time.time())
    async with web_client(sqlite_store, webhook=HOOKS) as web:
        page = await web.get("/webhooks")
        assert page.status_code == 200
        assert URL in page.text and "cannot connect: refused" in page.text
        assert new.id in page.text and "expired" in page.text
        opened = await web.get("/webhooks", params={"event": outgoing.event_id})
        assert 'id="webhook-event"' in opened.text and "accepted" not in opened.text
        forged = await web.post("/webhooks", data={"event": outgoing.event_id})
        assert forged.status_code == 403
        token = await csrf_token(web)
        sent = await web.post("/webhooks", data={"csrf": token, "event": outgoing.event_id})
        assert sent.status_code == 303
    [row] = await sqlite_store.webhooks.recent()
    assert row.state == "pending"


async def test_the_suppressions_page_adds_lists_and_removes(sqlite_store: Store) -> None:
    """The form adds an address with its reason, the page lists it, Remove takes it off;
    a malformed address gets a 400 saying so."""
    async with web_client(sqlite_store) as web:
        token = await csrf_token(web)
        added = await web.post(
            "/suppressions",
            data={"csrf": token, "address": "a@example.com", "reason": "asked", "action": "add"},
        )
        assert added.status_code == 303
        page = await web.get("/suppressions")
        assert 'data-address="a@example.com"' in page.text and "asked" in page.text
        bad = await web.post("/suppressions", data={"csrf": token, "address": "nobody"})
        assert bad.status_code == 400 and "not an email address" in bad.text
        removed = await web.post(
            "/suppressions", data={"csrf": token, "address": "a@example.com", "action": "remove"}
        )
        assert removed.status_code == 303
        assert 'data-address="a@example.com"' not in (await web.get("/suppressions")).text
