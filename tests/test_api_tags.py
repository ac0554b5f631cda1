"""Mailpit's tag routes on relay: list, set (replacing), rename and delete everywhere, with
names checked (a clear 400); tags in summaries, lists, /info, search and the send API; the
tables they live in, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from relay.config import StorageConfig
from relay.store import Kind, Store
from tests.queueing import new_message
from tests.test_migrations import at_revision
from tests.webkit import add, csrf_token, message, web_client


async def tagged(web: httpx.AsyncClient) -> dict[str, list[str]]:
    """Each listed message's subject with its Tags, as the API lists them."""
    listed = (await web.get("/api/v1/messages")).json()["messages"]
    return {m["Subject"]: m["Tags"] for m in listed}


async def search(web: httpx.AsyncClient, query: str) -> list[str]:
    """The subjects a search finds, newest first."""
    found = await web.get("/api/v1/search", params={"query": query})
    assert found.status_code == 200, found.text
    return [m["Subject"] for m in found.json()["messages"]]


async def three(store: Store) -> dict[str, str]:
    """Three messages, by subject."""
    return {s: await add(store, message(s)) for s in ("one", "two", "three")}


async def test_set_replaces_lists_sorted_and_empty_removes(store: Store) -> None:
    """PUT /api/v1/tags sets exactly the tags given on each message (replacing), an empty
    or absent Tags removes them; GET lists every tag in use, sorted, each once."""
    ids = await three(store)
    async with web_client(store) as web:
        assert (await web.get("/api/v1/tags")).json() == []
        put = await web.put(
            "/api/v1/tags", json={"IDs": [ids["one"], ids["two"]], "Tags": ["zeta", "Alpha"]}
        )
        assert (put.status_code, put.text) == (200, "ok")
        await web.put("/api/v1/tags", json={"IDs": [ids["two"]], "Tags": ["beta", "ALPHA"]})
        assert await tagged(web) == {
            "three": [],
            "two": ["ALPHA", "beta"],
            "one": ["Alpha", "zeta"],
        }
        assert (await web.get("/api/v1/tags")).json() in (
            ["Alpha", "beta", "zeta"],
            ["ALPHA", "beta", "zeta"],
        )
        await web.put("/api/v1/tags", json={"IDs": [ids["one"]], "Tags": []})
        await web.put("/api/v1/tags", json={"IDs": [ids["two"], "no-such-id"]})
        assert await tagged(web) == {"three": [], "two": [], "one": []}
        assert (await web.get("/api/v1/tags")).json() == []


async def test_rename_everywhere_merging_and_respelling(store: Store) -> None:
    """PUT /api/v1/tags/{Tag} renames on every message; a message with both keeps one; a
    change of case respells it everywhere."""
    ids = await three(store)
    async with web_client(store) as web:
        await web.put("/api/v1/tags", json={"IDs": [ids["one"]], "Tags": ["draft"]})
        await web.put("/api/v1/tags", json={"IDs": [ids["two"]], "Tags": ["draft", "final"]})
        await web.put("/api/v1/tags", json={"IDs": [ids["three"]], "Tags": ["final"]})
        renamed = await web.put("/api/v1/tags/DRAFT", json={"Name": "Final"})
        assert (renamed.status_code, renamed.text) == (200, "ok")
        assert await tagged(web) == {"three": ["Final"], "two": ["Final"], "one": ["Final"]}
        assert (await web.get("/api/v1/tags")).json() == ["Final"]
        spaced = await web.put("/api/v1/tags/final", json={"Name": "Done  now"})
        assert spaced.status_code == 200
        assert await search(web, 'tag:"done now"') == ["three", "two", "one"]


async def test_delete_everywhere_keeps_the_messages(store: Store) -> None:
    """DELETE /api/v1/tags/{Tag} takes the tag off every message; the messages stay."""
    ids = await three(store)
    async with web_client(store) as web:
        await web.put("/api/v1/tags", json={"IDs": list(ids.values()), "Tags": ["old", "keep"]})
        gone = await web.delete("/api/v1/tags/OLD")
        assert (gone.status_code, gone.text) == (200, "ok")
        assert await tagged(web) == {"three": ["keep"], "two": ["keep"], "one": ["keep"]}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("PUT", "/api/v1/tags", {"IDs": ["x"], "Tags": ["a/b"]}, 400, "'a/b' may hold only"),
        ("PUT", "/api/v1/tags", {"IDs": ["x"], "Tags": ["ok", ""]}, 400, "at least one"),
        ("PUT", "/api/v1/tags", {"Tags": ["ok"]}, 400, "IDs must list at least one message"),
        ("PUT", "/api/v1/tags", {"IDs": ["x"], "Tags": "ok"}, 400, "Tags must be an array"),
        ("PUT", "/api/v1/tags/keep", {"Name": "über"}, 400, "'über' may hold only"),
        ("PUT", "/api/v1/tags/keep", {}, 400, "Name must be the new name"),
        ("PUT", "/api/v1/tags/nothing", {"Name": "x"}, 404, "tag not found"),
        ("DELETE", "/api/v1/tags/nothing", None, 404, "tag not found"),
    ],
)
async def test_bad_names_and_unknown_tags_get_clear_errors(
    sqlite_store: Store, method: str, path: str, body: Any, status: int, error: str
) -> None:
    """A name that is not a tag name is a 400 saying why; an unknown tag a 404; nothing
    changes."""
    message_id = await add(sqlite_store, message("one"))
    async with web_client(sqlite_store) as web:
        await web.put("/api/v1/tags", json={"IDs": [message_id], "Tags": ["keep"]})
        answer = await web.request(method, path, json=body)
        assert answer.status_code == status
        assert error in answer.json()["Error"]
        assert await tagged(web) == {"one": ["keep"]}


async def test_search_by_tag_and_lists_and_info_carry_tags(store: Store) -> None:
    """tag:NAME (any case, quoted with spaces), !tag:NAME, -tag:, is:tagged; the list's
    `tags` and /info's `Tags` (with counts); a message's Tags."""
    ids = await three(store)
    async with web_client(store) as web:
        await web.put("/api/v1/tags", json={"IDs": [ids["one"], ids["two"]], "Tags": ["Red"]})
        await web.put("/api/v1/tags", json={"IDs": [ids["three"]], "Tags": ["big deal"]})
        assert await search(web, "tag:red") == ["two", "one"]
        assert await search(web, "!tag:RED") == ["three"]
        assert await search(web, "-tag:red") == ["three"]
        assert await search(web, 'tag:"big deal"') == ["three"]
        assert await search(web, "is:tagged -tag:red") == ["three"]
        assert await search(web, "tag:blue") == []
        listing = (await web.get("/api/v1/messages")).json()
        assert listing["tags"] == ["big deal", "Red"]
        assert (await web.get("/api/v1/info")).json()["Tags"] == {"big deal": 1, "Red": 2}
        assert (await web.get(f"/api/v1/message/{ids['one']}")).json()["Tags"] == ["Red"]
        await web.put("/api/v1/tags", json={"IDs": [ids["three"]], "Tags": []})
        assert await search(web, "is:tagged") == ["two", "one"]


async def test_send_api_tags_travel_in_x_tags(sqlite_store: Store) -> None:
    """POST /api/v1/send's Tags become the X-Tags header, and so the message's tags; a
    bad name is a 400."""
    base = {"From": {"Email": "app@example.com"}, "To": [{"Email": "jane@example.com"}]}
    async with web_client(sqlite_store) as web:
        sent = await web.post("/api/v1/send", json={**base, "Tags": ["Welcome", "onboarding"]})
        message_id = sent.json()["ID"]
        assert (await tagged(web))[""] == ["onboarding", "Welcome"]
        raw = (await web.get(f"/api/v1/message/{message_id}/raw")).text
        assert "X-Tags: onboarding, Welcome" in raw
        bad = await web.post("/api/v1/send", json={**base, "Tags": ["a;b"]})
        assert bad.status_code == 400 and "'a;b' may hold only" in bad.json()["Error"]


async def test_revision_0005_upgrades_old_mail_and_results_go_with_their_message(
    db_url: str,
) -> None:
    """From revision 0004 with mail in it: the upgrade adds the tag and check tables, the
    old mail takes tags and kept checks, and both go when the message goes."""
    await at_revision(db_url, "0004")
    before = Store(StorageConfig(url=db_url))
    mail = new_message(["a@example.com"])
    try:
        await before.messages.add(mail, compress=False)  # only the columns of 0004
    finally:
        await before.close()
    store = Store(StorageConfig(url=db_url, auto_migrate=True))
    await store.open()
    try:
        old = mail.id
        assert await store.set_tags([old], ["kept"]) == [old]
        assert await store.checks.keep(old, Kind.SPAM, "{}", score=1.0, flagged=False, now=1.0)
        assert await store.checks.get(old, Kind.SPAM) == "{}"
        await store.delete_messages([old])
        assert await store.tags.names() == []
        assert await store.checks.get(old, Kind.SPAM) is None
        assert not await store.checks.keep(old, Kind.HTML, "{}", score=None, flagged=False, now=1)
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("form", "headers", "status", "tags"),
    [
        ({"add": "vip, follow  up"}, {}, 303, ("follow up", "keep", "vip")),
        ({"remove": "KEEP"}, {}, 303, ()),
        ({"add": "a/b"}, {}, 400, ("keep",)),
        ({"add": "vip", "csrf": "forged.token"}, {}, 403, ("keep",)),
        ({"add": "vip"}, {"sec-fetch-site": "cross-site"}, 403, ("keep",)),
    ],
    ids=["add", "remove", "bad-name", "forged-token", "cross-site"],
)
async def test_tag_editor_form(
    sqlite_store: Store,
    form: dict[str, str],
    headers: dict[str, str],
    status: int,
    tags: tuple[str, ...],
) -> None:
    """The message page's tag form adds (comma-separated) and removes tags with the CSRF
    token; a bad name is a 400 saying why; no token or another site is a 403."""
    message_id = await add(sqlite_store, message("one"))
    await sqlite_store.set_tags([message_id], ["keep"])
    async with web_client(sqlite_store) as web:
        data = {"csrf": await csrf_token(web), **form}
        answer = await web.post(f"/message/{message_id}/tags", data=data, headers=headers)
    assert answer.status_code == status
    if status == 400:
        assert "'a/b' may hold only" in answer.text
    row = await sqlite_store.messages.get(message_id)
    assert row is not None and row.tags == tags
