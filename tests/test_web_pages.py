"""Every page route in-process: list, search, filters, tabs, parts, fragments, errors."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import pytest
from sqlalchemy import insert, update

from relay.status import Status
from relay.store import Store
from relay.store.schema import attempt, recipient
from tests import mail
from tests.test_mime import nested
from tests.webkit import add, message, web_client


async def test_list_shows_rows_counts_and_unread_marker(sqlite_store: Store) -> None:
    """The list shows each message once, newest first, unread ones marked, counts in the nav."""
    old = await add(sqlite_store, message("Older one"))
    new = await add(sqlite_store, message("Newer one"), {"x@fail.example": Status.FAILED})
    await sqlite_store.set_read([old], True)
    async with web_client(sqlite_store) as web:
        page = await web.get("/")
    assert page.status_code == 200
    assert page.text.index("Newer one") < page.text.index("Older one")
    assert re.search(rf'id="m-{new}"[^>]*class="row unread"', page.text)
    assert re.search(rf'id="m-{old}"[^>]*class="row"', page.text)
    assert re.search(r'data-count="failed">1<', page.text)
    assert re.search(r'data-count="captured">1<', page.text)
    assert re.search(r'data-count="unread">1<', page.text)


@pytest.mark.parametrize(
    ("params", "shown", "hidden"),
    [
        ({"q": "from:carol"}, ["From Carol"], ["To Dave", "Failed one"]),
        ({"q": "dave"}, ["To Dave"], ["From Carol"]),
        ({"q": "is:failed"}, ["Failed one"], ["From Carol"]),
        ({"status": "failed"}, ["Failed one"], ["To Dave"]),
        ({"status": "unread"}, ["From Carol", "To Dave", "Failed one"], []),
        ({"listener": "submission"}, ["To Dave"], ["From Carol"]),
        ({"user": "app"}, ["Failed one"], ["To Dave"]),
        ({"q": "-subject:carol"}, ["To Dave", "Failed one"], ["From Carol"]),
    ],
)
async def test_list_filters_and_search(
    sqlite_store: Store, params: dict[str, str], shown: list[str], hidden: list[str]
) -> None:
    """Filters and search terms in the URL narrow the list to the matching messages."""
    await add(sqlite_store, message("From Carol", sender="carol@example.com"))
    await add(sqlite_store, message("To Dave", to="dave@example.net"), listener="submission")
    await add(sqlite_store, message("Failed one"), {"z@x.example": Status.FAILED}, user="app")
    async with web_client(sqlite_store) as web:
        page = await web.get("/", params=params)
    assert page.status_code == 200
    for subject in shown:
        assert f">{subject}</a>" in page.text
    for subject in hidden:
        assert f">{subject}</a>" not in page.text


async def test_search_syntax_is_documented(sqlite_store: Store) -> None:
    """The list documents the search terms."""
    async with web_client(sqlite_store) as web:
        page = await web.get("/")
    assert "Search syntax" in page.text
    for term in ("from:alice", "to:bob@example.com", "is:unread", "has:attachment", "-term"):
        assert term in page.text


@pytest.mark.parametrize(
    ("q", "problem"),
    [
        ("is:sleepy", "is:sleepy is not one of unread, read, captured"),
        ("has:pony", "has:pony is not one of attachment"),
        ("after:yesterday", "after:yesterday is not a date"),
        ("larger:huge", "larger:huge is not a size"),
        ("from:", "from: needs a value"),
        ("from:carol is:sleepy", "is:sleepy is not one of"),
    ],
)
async def test_unreadable_search_lists_nothing(sqlite_store: Store, q: str, problem: str) -> None:
    """A search with a term that cannot be read answers 400 with the problem, no rows, no
    bulk action and no live rows: it never widens to every message."""
    await add(sqlite_store, message("From Carol", sender="carol@example.com"))
    await add(sqlite_store, message("Another one"))
    async with web_client(sqlite_store) as web:
        page = await web.get("/", params={"q": q})
        live = await web.get("/live/rows", params={"q": q})
    assert page.status_code == 400
    assert "This search cannot run:" in page.text and problem in page.text
    assert f'name="q" value="{q}"' in page.text
    assert 'class="row' not in page.text and 'id="rows"' not in page.text
    assert 'id="bulk"' not in page.text and 'name="scope"' not in page.text
    assert "Delete all" not in page.text
    assert live.status_code == 400 and problem in live.text
    assert 'class="row' not in live.text


async def test_paging(sqlite_store: Store) -> None:
    """With more messages than a page, the list pages newest first with working links."""
    for i in range(55):
        await add(sqlite_store, message(f"Number {i:02d}"))
    async with web_client(sqlite_store) as web:
        first = await web.get("/")
        second = await web.get("/", params={"page": 2})
    assert ">Number 54</a>" in first.text and ">Number 04</a>" not in first.text
    assert "Page 1 of 2" in first.text and 'href="/?page=2" rel="next"' in first.text
    assert ">Number 04</a>" in second.text and ">Number 05</a>" not in second.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/?page=x", 400),
        ("/?status=sleepy", 400),
        ("/message/NOPE", 404),
        ("/message/NOPE/body.html", 404),
        ("/message/NOPE/source.eml", 404),
        ("/nowhere", 404),
    ],
)
async def test_bad_requests_get_clear_errors(sqlite_store: Store, path: str, status: int) -> None:
    """Bad parameters and unknown ids answer 4xx with a page saying why."""
    async with web_client(sqlite_store) as web:
        response = await web.get(path, headers={"accept": "text/html"})
    assert response.status_code == status
    assert "Back to the messages" in response.text


@pytest.mark.parametrize("tab", ["html", "text", "headers", "source", "attachments", "deliveries"])
async def test_every_tab_renders(sqlite_store: Store, tab: str) -> None:
    """Each tab of a rich message renders, and opening it marks the message read."""
    message_id = await add(sqlite_store, nested())
    async with web_client(sqlite_store) as web:
        page = await web.get(f"/message/{message_id}", params={"tab": tab})
    assert page.status_code == 200
    assert f'href="?tab={tab}" aria-current="page"' in page.text
    row = await sqlite_store.messages.get(message_id)
    assert row is not None and row.read


async def test_unknown_tab_is_400(sqlite_store: Store) -> None:
    """A tab that does not exist is a 400, not a blank page."""
    message_id = await add(sqlite_store, message())
    async with web_client(sqlite_store) as web:
        page = await web.get(f"/message/{message_id}", params={"tab": "nope"})
    assert page.status_code == 400


async def test_tabs_show_text_headers_source_and_warnings(sqlite_store: Store) -> None:
    """Text, decoded and raw headers, and source show; a damaged message shows its warning."""
    raw = message("Grüße", "Body text here", extra="X-Custom: =?utf-8?q?caf=C3=A9?=\r\n")
    message_id = await add(sqlite_store, raw)
    broken = await add(
        sqlite_store,
        b"Subject: broken\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\n\r\nstill readable\r\n",
    )
    async with web_client(sqlite_store) as web:
        text = await web.get(f"/message/{message_id}", params={"tab": "text"})
        headers = await web.get(f"/message/{message_id}", params={"tab": "headers"})
        source = await web.get(f"/message/{message_id}", params={"tab": "source"})
        damaged = await web.get(f"/message/{broken}", params={"tab": "text"})
    assert "Body text here" in text.text
    assert "<th>X-Custom</th><td>café</td>" in headers.text
    assert "X-Custom: =?utf-8?q?caf=C3=A9?=" in headers.text
    assert "Subject: Grüße" in source.text
    assert damaged.status_code == 200
    assert "still readable" in damaged.text
    assert "malformed message: no boundary in multipart" in damaged.text


async def test_source_downloads_exact_bytes(sqlite_store: Store) -> None:
    """The .eml download is the stored message byte for byte."""
    raw = mail.with_attachments()
    message_id = await add(sqlite_store, raw)
    async with web_client(sqlite_store) as web:
        eml = await web.get(f"/message/{message_id}/source.eml")
    assert eml.content == raw
    assert eml.headers["content-type"] == "message/rfc822"
    assert eml.headers["content-disposition"] == f'attachment; filename="{message_id}.eml"'


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ("attachment; filename*=utf-8''%E6%8A%A5%E5%91%8A.pdf", "报告.pdf"),
        ("attachment; filename*0*=utf-8''%E6%8A%A5; filename*1*=%E5%91%8A.pdf", "报告.pdf"),
        ('attachment; filename="=?utf-8?b?5oql5ZGKLnBkZg==?="', "报告.pdf"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="C:\\\\Windows\\\\evil .bat"', "evil .bat"),
        ('attachment; filename="a<b>|c?.txt"', "a_b_c_.txt"),
        ("attachment", "part-0"),
    ],
)
async def test_attachment_names(sqlite_store: Store, disposition: str, expected: str) -> None:
    """Downloads carry the decoded (RFC 2231 / 2047) name, made safe, and the content type."""
    raw = (
        b"Subject: a\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        + f"Content-Disposition: {disposition}\r\n\r\n".encode()
        + b"JVBERi0xLjQK\r\n"
    )
    message_id = await add(sqlite_store, raw)
    async with web_client(sqlite_store) as web:
        page = await web.get(f"/message/{message_id}", params={"tab": "attachments"})
        link = re.search(r'href="(/message/[^"]+/part/\d+)"', page.text)
        assert link, page.text
        part = await web.get(link.group(1))
    assert part.content == b"%PDF-1.4\n"
    assert part.headers["content-type"] == "application/pdf"
    assert part.headers["content-disposition"].startswith("attachment; filename=")
    assert part.headers["content-disposition"].endswith("filename*=UTF-8''" + quote(expected))
    assert "sandbox" in part.headers["content-security-policy"]


async def test_deliveries_tab_shows_each_attempt(sqlite_store: Store) -> None:
    """Per recipient: status, route, attempts with time, host, reply, and the next attempt."""
    message_id = await add(
        sqlite_store,
        message("Relayed"),
        {"ok@client.example": Status.DELIVERED, "later@slow.example": Status.DEFERRED},
    )
    row = await sqlite_store.messages.get(message_id)
    assert row is not None
    ok, later = row.recipients
    now = time.time()
    async with sqlite_store.db.writer.begin() as conn:
        await conn.execute(
            insert(attempt),
            [
                {"recipient_id": ok.id, "started_at": now, "duration": 0.05,
                 "host": "smtp.client.example", "code": 250, "enhanced": "2.0.0",
                 "text": "Ok: queued as ABC"},
                {"recipient_id": later.id, "started_at": now, "duration": 1.5,
                 "host": "mx.slow.example", "code": 451, "enhanced": "4.7.1",
                 "text": "Greylisted, try later"},
            ],
        )  # fmt: skip
        await conn.execute(
            update(recipient)
            .where(recipient.c.id == later.id)
            .values(attempts=1, next_attempt_at=now + 600, last_code=451, last_text="Greylisted")
        )
    async with web_client(sqlite_store) as web:
        page = await web.get(f"/message/{message_id}", params={"tab": "deliveries"})
    text = page.text
    assert "ok@client.example" in text and "later@slow.example" in text
    assert "route <b>relay:up</b>" in text
    assert "smtp.client.example" in text and "250 2.0.0" in text and "Ok: queued as ABC" in text
    assert "mx.slow.example" in text and "451 4.7.1" in text and "Greylisted, try later" in text
    assert "next attempt" in text and "1.5 s" in text


async def test_live_fragments(sqlite_store: Store) -> None:
    """The rows fragment gives newer rows under the list's filter; the nav fragment counts."""
    first = await add(sqlite_store, message("First"))
    second = await add(sqlite_store, message("Second match"))
    await add(sqlite_store, message("Third"))
    async with web_client(sqlite_store) as web:
        rows = await web.get("/live/rows", params={"after": first, "q": "match"})
        one = await web.get("/live/rows", params={"id": second})
        nav = await web.get("/live/nav")
    assert rows.text.count('class="row') == 1 and f'id="m-{second}"' in rows.text
    assert one.text.count('class="row') == 1 and "Second match" in one.text
    assert 'data-count="total">3<' in nav.text


async def test_empty_list_explains_how_to_send(sqlite_store: Store) -> None:
    """An empty relay tells where to point an application."""
    async with web_client(sqlite_store) as web:
        page = await web.get("/")
    assert "No messages yet" in page.text and "port 1025" in page.text


async def test_static_files_are_served(sqlite_store: Store) -> None:
    """The stylesheet, script and icon come from the app itself (no CDN)."""
    async with web_client(sqlite_store) as web:
        page = await web.get("/")
        for path in re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text):
            response = await web.get(path)
            assert response.status_code == 200, path
    assert "https://" not in page.text.split("<body", 1)[0]
