"""Safety of the web UI: the HTML body's sandbox and CSP, CSRF, auth, Origin, deletes."""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from relay.config import WebConfig
from relay.passwords import hash_password
from relay.store import Store
from tests import mail
from tests.webkit import BASE, add, csrf_token, message, web_client

HOSTILE_HTML = (
    b"Subject: hostile\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<html><head><meta http-equiv="refresh" content="0;url=https://evil.example/">'
    b'<base href="https://evil.example/"></head><body><script>parent.document.title="x"</script>'
    b'<img src="https://tracker.example/p.gif" onerror="alert(1)">'
    b'<a href="javascript:alert(2)">click</a><form action="https://evil.example/"></form>'
    b"</body></html>"
)


async def test_html_body_is_served_under_a_strict_policy(sqlite_store: Store) -> None:
    """The body's CSP forbids scripts, forms, plugins, base and remote loads; frames only here."""
    message_id = await add(sqlite_store, HOSTILE_HTML)
    async with web_client(sqlite_store) as web:
        body = await web.get(f"/message/{message_id}/body.html")
    policy = body.headers["content-security-policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["default-src"] == ["'none'"]
    assert "script-src" not in directives  # falls back to default-src 'none'
    assert directives["img-src"] == ["'self'", "data:"]
    assert directives["form-action"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'self'"]
    assert "allow-scripts" not in policy and "allow-same-origin" not in policy
    assert "sandbox" in directives
    assert body.headers["referrer-policy"] == "no-referrer"
    assert 'data-blocked-http-equiv="refresh"' in body.text
    assert '<base target="_blank">' in body.text


async def test_message_page_frames_the_body_in_a_sandbox(sqlite_store: Store) -> None:
    """The iframe's sandbox grants no scripts, forms, same-origin or top navigation."""
    message_id = await add(sqlite_store, HOSTILE_HTML)
    async with web_client(sqlite_store) as web:
        page = await web.get(f"/message/{message_id}")
    frame = re.search(r"<iframe[^>]*>", page.text)
    assert frame
    sandbox = re.search(r'sandbox="([^"]*)"', frame.group(0))
    assert sandbox and set(sandbox.group(1).split()) <= {
        "allow-popups",
        "allow-popups-to-escape-sandbox",
    }
    assert f'src="/message/{message_id}/body.html"' in frame.group(0)
    assert "https://tracker.example" not in page.text


async def test_remote_images_load_only_when_asked(sqlite_store: Store) -> None:
    """Remote images are blocked with a button; asking re-serves the body allowing https."""
    message_id = await add(sqlite_store, HOSTILE_HTML)
    plain = await add(sqlite_store, mail.with_attachments())
    async with web_client(sqlite_store) as web:
        blocked = await web.get(f"/message/{message_id}")
        allowed = await web.get(f"/message/{message_id}", params={"tab": "html", "images": "1"})
        body = await web.get(f"/message/{message_id}/body.html", params={"images": "1"})
        local_only = await web.get(f"/message/{plain}")
    assert "Remote images are blocked" in blocked.text
    assert 'href="?tab=html&amp;images=1"' in blocked.text
    assert f'src="/message/{message_id}/body.html?images=1"' in allowed.text
    assert "img-src 'self' data: https:;" in body.headers["content-security-policy"]
    assert "default-src 'none'" in body.headers["content-security-policy"]
    assert "Remote images are blocked" not in local_only.text


async def test_cid_images_point_at_parts(sqlite_store: Store) -> None:
    """cid: references become this message's part URLs, served inline as images."""
    message_id = await add(sqlite_store, mail.with_attachments())
    async with web_client(sqlite_store) as web:
        body = await web.get(f"/message/{message_id}/body.html")
        src = re.search(r'src="(/message/[^"]+/part/\d+)"', body.text)
        assert src, body.text
        image = await web.get(src.group(1))
    assert image.content == mail.PNG
    assert image.headers["content-type"] == "image/png"
    assert image.headers["content-disposition"].startswith("inline;")


async def test_pages_carry_security_headers(sqlite_store: Store) -> None:
    """App pages may not be framed and load nothing from elsewhere."""
    async with web_client(sqlite_store) as web:
        page = await web.get("/")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


@pytest.mark.parametrize(
    ("fetch_site", "sets_cookie"),
    [
        (None, True),
        ("none", True),
        ("same-origin", True),
        ("cross-site", False),
        ("same-site", False),
    ],
)
async def test_only_our_own_pages_set_the_csrf_cookie(
    sqlite_store: Store, fetch_site: str | None, sets_cookie: bool
) -> None:
    """A request from another site (a mail's sandboxed frame loading a relative image is
    one) arrives without the SameSite cookie; its answer must not replace the cookie of
    the UI open beside it."""
    message_id = await add(sqlite_store, mail.plain())
    headers = {"sec-fetch-site": fetch_site} if fetch_site else {}
    async with web_client(sqlite_store) as web:
        for path in ("/", f"/message/{message_id}/x.gif"):
            web.cookies.clear()
            response = await web.get(path, headers=headers)
            assert ("set-cookie" in response.headers) is sets_cookie, path


async def test_delete_one_with_token(sqlite_store: Store) -> None:
    """POST with the CSRF token deletes the message and redirects to the list."""
    message_id = await add(sqlite_store, message())
    async with web_client(sqlite_store) as web:
        token = await csrf_token(web)
        response = await web.post(
            f"/message/{message_id}/action", data={"csrf": token, "action": "delete"}
        )
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert await sqlite_store.messages.get(message_id) is None


@pytest.mark.parametrize(
    ("form", "headers"),
    [
        ({"action": "delete"}, {}),
        ({"action": "delete", "csrf": "forged.token"}, {}),
        ({"action": "delete", "csrf": "TOKEN"}, {"origin": "https://evil.example"}),
        ({"action": "delete", "csrf": "TOKEN"}, {"sec-fetch-site": "cross-site"}),
    ],
    ids=["no-token", "forged-token", "other-origin", "cross-site"],
)
async def test_post_without_valid_token_or_from_elsewhere_is_refused(
    sqlite_store: Store, form: dict[str, str], headers: dict[str, str]
) -> None:
    """A POST lacking our token, or from another site, is 403 and changes nothing."""
    message_id = await add(sqlite_store, message())
    async with web_client(sqlite_store) as web:
        token = await csrf_token(web)
        data = {k: (token if v == "TOKEN" else v) for k, v in form.items()}
        response = await web.post(f"/message/{message_id}/action", data=data, headers=headers)
    assert response.status_code == 403
    assert await sqlite_store.messages.get(message_id) is not None


async def test_a_token_from_another_cookie_is_refused(sqlite_store: Store) -> None:
    """The form token must equal this browser's cookie (double submit)."""
    message_id = await add(sqlite_store, message())
    async with web_client(sqlite_store) as web, web_client(sqlite_store) as other:
        token = await csrf_token(web)
        theirs = await csrf_token(other)
        assert token != theirs
        response = await web.post(
            f"/message/{message_id}/action", data={"csrf": theirs, "action": "delete"}
        )
    assert response.status_code == 403


async def test_get_cannot_change_state(sqlite_store: Store) -> None:
    """Action routes refuse GET."""
    message_id = await add(sqlite_store, message())
    async with web_client(sqlite_store) as web:
        assert (await web.get(f"/message/{message_id}/action")).status_code == 405
        assert (await web.get("/messages/action")).status_code == 405


async def test_bulk_read_unread_and_delete(sqlite_store: Store) -> None:
    """Selected messages are marked read, unread, or deleted; others stay as they were."""
    a, b, c = [await add(sqlite_store, message(f"m{i}")) for i in range(3)]
    async with web_client(sqlite_store) as web:
        token = await csrf_token(web)
        read = await web.post(
            "/messages/action",
            data={"csrf": token, "action": "read", "ids": [a, b], "next": "/?q=m"},
        )
        assert read.status_code == 303 and read.headers["location"] == "/?q=m"
        rows = {r.id: r.read for r in (await sqlite_store.messages.page()).messages}
        assert rows == {a: True, b: True, c: False}
        await web.post("/messages/action", data={"csrf": token, "action": "unread", "ids": [a]})
        deleted = await web.post(
            "/messages/action",
            data={"csrf": token, "action": "delete", "ids": [b], "next": "https://evil.example/"},
        )
    assert deleted.headers["location"] == "/"
    rows = {r.id: r.read for r in (await sqlite_store.messages.page()).messages}
    assert rows == {a: False, c: False}


async def test_delete_all_matching_asks_first(sqlite_store: Store) -> None:
    """Deleting everything matching a search shows a confirmation, then deletes only matches."""
    keep = await add(sqlite_store, message("keep me"))
    drop = [await add(sqlite_store, message(f"drop {i}")) for i in range(2)]
    form = {"action": "delete", "scope": "all", "q": "subject:drop"}
    async with web_client(sqlite_store) as web:
        token = await csrf_token(web)
        asked = await web.post("/messages/action", data={**form, "csrf": token})
        assert asked.status_code == 200 and "Delete 2 messages?" in asked.text
        assert len((await sqlite_store.messages.page()).messages) == 3
        done = await web.post("/messages/action", data={**form, "csrf": token, "confirm": "yes"})
    assert done.status_code == 303
    assert [m.id for m in (await sqlite_store.messages.page()).messages] == [keep]
    for gone in drop:
        assert await sqlite_store.messages.raw(gone) is None


@pytest.mark.parametrize("confirm", [{}, {"confirm": "yes"}], ids=["asked", "confirmed"])
async def test_delete_all_refuses_an_unreadable_search(
    sqlite_store: Store, confirm: dict[str, str]
) -> None:
    """Delete all with a search that cannot be read is refused with 400, neither asked
    nor done, and every message stays (the form is refused, not just hidden)."""
    kept = [await add(sqlite_store, message(f"m{i}")) for i in range(2)]
    form = {"action": "delete", "scope": "all", "q": "subject:m is:sleepy", **confirm}
    async with web_client(sqlite_store) as web:
        token = await csrf_token(web)
        refused = await web.post("/messages/action", data={**form, "csrf": token})
    assert refused.status_code == 400
    assert "is:sleepy is not one of" in refused.text and "Delete 2" not in refused.text
    left = (await sqlite_store.messages.page()).messages
    assert sorted(m.id for m in left) == sorted(kept)


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header for HTTP basic auth."""
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def alice_hash() -> str:
    """A scrypt hash of alice's password (made once: scrypt is slow on purpose)."""
    return hash_password("correct horse")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (basic("alice", "correct horse"), 200),
        (basic("alice", "wrong"), 401),
        (basic("mallory", "correct horse"), 401),
        ({"authorization": "Bearer s3cret-token"}, 200),
        ({"authorization": "Bearer nope"}, 401),
        ({"authorization": "Basic !!notbase64"}, 401),
    ],
    ids=["none", "alice", "wrong-password", "unknown-user", "token", "bad-token", "garbage"],
)
async def test_optional_authentication(
    sqlite_store: Store, alice_hash: str, headers: dict[str, str], status: int
) -> None:
    """With users or a token configured, pages need basic auth or the bearer token."""
    config = WebConfig(users={"alice": alice_hash}, token="s3cret-token")
    async with web_client(sqlite_store, config) as web:
        response = await web.get("/", headers=headers)
        open_paths = [await web.get("/healthz"), await web.get("/static/relay.css")]
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")
    assert [r.status_code for r in open_paths] == [200, 200]


async def test_no_login_asked_by_default(sqlite_store: Store) -> None:
    """Without users or token the UI is open (it binds 127.0.0.1 by default)."""
    async with web_client(sqlite_store) as web:
        assert (await web.get("/")).status_code == 200
    assert WebConfig().address.startswith("127.0.0.1:")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"origin": "https://evil.example"}, 403),
        ({"origin": "http://relay.test.evil.example"}, 403),
        ({"sec-fetch-site": "cross-site"}, 403),
    ],
)
async def test_events_refuse_other_origins(
    sqlite_store: Store, headers: dict[str, str], status: int
) -> None:
    """The event stream answers 403 to pages of other sites."""
    async with web_client(sqlite_store) as web:
        response = await web.get("/events", headers=headers)
    assert response.status_code == status


def test_same_origin_check_accepts_our_pages() -> None:
    """Our own origin (and no Origin at all) passes the check."""
    from starlette.datastructures import Headers

    from web.security import same_origin

    host = httpx.URL(BASE).host
    assert same_origin(Headers({"host": host, "origin": BASE}))
    assert same_origin(Headers({"host": host}))
    assert same_origin(Headers({"host": host, "sec-fetch-site": "same-origin"}))
    assert not same_origin(Headers({"host": host, "origin": "http://other.test"}))
