"""Mailpit's check routes on relay: html-check, link-check and sa-check answer in Mailpit's
shapes (the OpenAPI document's), each check runs once per message and is kept until the
message goes, requests for the same check share one run, a slow check of one message never
holds up another, spamd down or silent is a clear Error (never a 500, never stuck), and
the kept results are searchable. Real servers: a loopback HTTP server for links, a real
spamd for spam."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage

import httpx
import pytest

from relay.config import ChecksConfig
from relay.store import Kind, Store
from tests.link_target import Target, serve
from tests.spamd import RunningSpamd
from tests.support import free_port
from tests.test_api_openapi import problems
from tests.test_checks_spam import GTUBE, ORDER, needs_spamd, spamd
from tests.webkit import add, message, web_client
from web.api.openapi import DOCUMENT

__all__ = ["spamd"]  # the module's real spamd, shared with these tests

NEWSLETTER = """<html><head><style>.col { display: flex } @media (max-width: 600px)
{ .col { display: block } }</style></head><body><div class="col" style="margin: 0 auto">
<p>Hello</p><img src="https://cdn.example/logo.webp" width="80"></div></body></html>"""


def html_mail(html: str, text: str = "") -> bytes:
    """A message with an HTML body (and a text one, when given), CRLF line ends."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "shop@example.com", "bob@example.org", "News"
    if text:
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
    else:
        msg.set_content(html, subtype="html")
    return msg.as_bytes(policy=policy.SMTP)


def conforms(answer: httpx.Response, path: str) -> None:
    """The answer is 200 with exactly the fields and types the OpenAPI document gives."""
    assert answer.status_code == 200, answer.text
    schema = DOCUMENT["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    assert problems(answer.json(), schema["schema"], path) == []


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    """A link target on 127.0.0.1 (loopback: reached only when private addresses are allowed)."""
    async with serve("127.0.0.1") as running:
        yield running


PRIVATE_OK = {"checks": ChecksConfig(link_check_allow_private=True, link_check_timeout=5.0)}


async def test_html_check_answers_mailpits_shape_once_and_keeps_it(store: Store) -> None:
    """html-check: Warnings, Total and Platforms as the document says; the answer is kept
    (the same on asking again, from the table, until the message goes); 404 for a message
    without HTML and for no message."""
    html_id = await add(store, html_mail(NEWSLETTER))
    text_id = await add(store, message("plain"))
    path = "/api/v1/message/{ID}/html-check"
    async with web_client(store) as web:
        first = await web.get(f"/api/v1/message/{html_id}/html-check")
        conforms(first, path)
        slugs = {w["Slug"] for w in first.json()["Warnings"]}
        assert {"css-display-flex", "css-at-media", "image-webp"} <= slugs
        assert 0 < first.json()["Total"]["Supported"] < 100
        assert await store.checks.get(html_id, Kind.HTML) is not None
        again = await web.get("/api/v1/message/latest/html-check")
        assert again.status_code == 404  # latest is the plain one
        assert (await web.get(f"/api/v1/message/{html_id}/html-check")).json() == first.json()
        no_html = await web.get(f"/api/v1/message/{text_id}/html-check")
        assert no_html.status_code == 404 and "no HTML" in no_html.json()["Error"]
        missing = await web.get("/api/v1/message/NOSUCHMESSAGE/html-check")
        assert missing.status_code == 404
        await store.delete_messages([html_id])
        assert await store.checks.get(html_id, Kind.HTML) is None
        gone = await web.get(f"/api/v1/message/{html_id}/html-check")
        assert gone.status_code == 404


async def test_link_check_shape_statuses_and_follow(store: Store, target: Target) -> None:
    """link-check (private addresses allowed): each link of HTML and text once, with its
    status; Errors counts what fails; follow=true follows redirects, a second answer."""
    ok, missing = target.url("/ok"), target.url("/missing")
    hop = target.url(f"/to?url={ok}")
    html = f'<a href="{ok}">a</a> <img src="{missing}"> <a href="{hop}">r</a>'
    message_id = await add(store, html_mail(html, text=f"See {ok} and {target.url('/no-head')}"))
    async with web_client(store, **PRIVATE_OK) as web:
        plain = await web.get(f"/api/v1/message/{message_id}/link-check?follow=false")
        conforms(plain, "/api/v1/message/{ID}/link-check")
        statuses = {link["URL"]: link["StatusCode"] for link in plain.json()["Links"]}
        assert statuses == {ok: 200, missing: 404, hop: 302, target.url("/no-head"): 200}
        assert plain.json()["Errors"] == 1
        followed = await web.get(f"/api/v1/message/{message_id}/link-check?follow=true")
        assert {link["URL"]: link["StatusCode"] for link in followed.json()["Links"]}[hop] == 200
        bad = await web.get(f"/api/v1/message/{message_id}/link-check?follow=maybe")
        assert bad.status_code == 400 and "follow must be true or false" in bad.json()["Error"]
    # /ok: once in each answer, and once more at the end of the followed redirect
    assert len(target.seen("/ok")) == 3


async def test_link_check_refuses_loopback_by_default(store: Store, target: Target) -> None:
    """Without link_check_allow_private: a link to 127.0.0.1, to a name that resolves to
    it (localhost) and through a redirect is refused, and nothing is requested."""
    port = target.port
    links = [target.url("/ok"), f"http://localhost:{port}/ok"]
    message_id = await add(store, html_mail("".join(f'<a href="{u}">x</a>' for u in links)))
    async with web_client(store) as web:
        answer = (await web.get(f"/api/v1/message/{message_id}/link-check")).json()
    assert answer["Errors"] == 2
    assert [link["StatusCode"] for link in answer["Links"]] == [0, 0]
    assert "127.0.0.1 is a loopback address" in answer["Links"][0]["Status"]
    assert "localhost resolves to" in answer["Links"][1]["Status"]
    assert target.requests == []


async def test_requests_for_one_check_share_its_run(store: Store, target: Target) -> None:
    """Five requests at once for the link check of one message: one run (the server is
    asked once), five equal answers; asking later reads the kept answer."""
    busy = target.url("/busy/1")
    message_id = await add(store, html_mail(f'<a href="{busy}">slow</a>'))
    async with web_client(store, **PRIVATE_OK) as web:
        path = f"/api/v1/message/{message_id}/link-check"
        answers = await asyncio.gather(*(web.get(path) for _ in range(5)))
        assert {a.status_code for a in answers} == {200}
        assert len({a.text for a in answers}) == 1
        assert (await web.get(path)).text == answers[0].text
    assert [r[0] for r in target.seen("/busy/1")] == ["HEAD"]


async def test_a_slow_check_holds_up_no_other(store: Store, target: Target) -> None:
    """While one message's link check waits on a server that does not answer, its HTML
    check and other messages' checks answer at once; the slow one ends in its time limit."""
    slow_id = await add(store, html_mail(f'<a href="{target.url("/slow")}">x</a>'))
    other_id = await add(store, html_mail(NEWSLETTER))
    slow_checks = {"checks": ChecksConfig(link_check_allow_private=True, link_check_timeout=3)}
    async with web_client(store, **slow_checks) as web:
        waiting = asyncio.ensure_future(web.get(f"/api/v1/message/{slow_id}/link-check"))
        for _ in range(1000):  # until the slow link is being asked
            if target.seen("/slow"):
                break
            await asyncio.sleep(0.01)
        quick = [
            web.get(f"/api/v1/message/{other_id}/html-check"),
            web.get(f"/api/v1/message/{other_id}/link-check"),
            web.get(f"/api/v1/message/{slow_id}/html-check"),
        ]
        done = await asyncio.wait_for(asyncio.gather(*quick), timeout=2.5)
        assert [a.status_code for a in done] == [200, 200, 200]
        assert not waiting.done()
        slow = (await asyncio.wait_for(waiting, timeout=10)).json()
    assert slow["Links"][0]["Status"] == "timed out after 3 s" and slow["Errors"] == 1


async def test_kept_results_are_searchable(store: Store, target: Target) -> None:
    """html-score:, has:broken-links and is:spam find messages once their checks ran, and
    only then; -has:broken-links the others."""
    good = await add(store, html_mail(f'<p>Hi <a href="{target.url("/ok")}">a</a></p>'))
    broken = await add(store, html_mail(NEWSLETTER + f'<a href="{target.url("/gone")}">x</a>'))

    async def found(web: httpx.AsyncClient, query: str) -> list[str]:
        answer = await web.get("/api/v1/search", params={"query": query})
        return [m["ID"] for m in answer.json()["messages"]]

    async with web_client(store, **PRIVATE_OK) as web:
        for query in ("html-score:<100", "has:broken-links", "html-score:>=0"):
            assert await found(web, query) == []
        for message_id in (good, broken):
            await web.get(f"/api/v1/message/{message_id}/html-check")
            await web.get(f"/api/v1/message/{message_id}/link-check")
        scores = {
            i: (await web.get(f"/api/v1/message/{i}/html-check")).json()["Total"]["Supported"]
            for i in (good, broken)
        }
        assert scores[broken] < scores[good]
        between = (scores[good] + scores[broken]) / 2
        assert await found(web, f"html-score:<{between:.2f}") == [broken]
        assert await found(web, f"html-score:>={between:.2f}") == [good]
        assert await found(web, "has:broken-links") == [broken]
        assert await found(web, "-has:broken-links") == [good]
        bad = await web.get("/api/v1/search", params={"query": "html-score:80"})
        assert bad.status_code == 400 and "<80 or >=90" in bad.json()["Error"]


@contextlib.asynccontextmanager
async def silent_spamd() -> AsyncIterator[str]:
    """The address of a server that reads requests and never answers: a spamd that hangs."""
    stop = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        await stop.wait()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        stop.set()
        server.close()
        await server.wait_closed()


async def test_spamd_off_down_or_silent_is_a_clear_error_not_kept(sqlite_store: Store) -> None:
    """No spamd configured, nothing listening, or a spamd that never answers: 200 with
    Error saying so (within the time limit), nothing kept, so a later ask tries again."""
    message_id = await add(sqlite_store, message("hello"))
    path = f"/api/v1/message/{message_id}/sa-check"
    dead = f"127.0.0.1:{free_port()}"
    async with silent_spamd() as silent:
        cases = [("", "no spamd is configured"), (dead, "cannot be reached"), (silent, "1 s")]
        for address, error in cases:
            checks = ChecksConfig(spamassassin=address, spamassassin_timeout=1.0)
            async with web_client(sqlite_store, checks=checks) as web:
                answer = await asyncio.wait_for(web.get(path), timeout=5)
            conforms(answer, "/api/v1/message/{ID}/sa-check")
            assert error in answer.json()["Error"] and answer.json()["Rules"] == []
            assert await sqlite_store.checks.get(message_id, Kind.SPAM) is None


@needs_spamd
async def test_real_spamd_judges_and_is_spam_finds(
    sqlite_store: Store, spamd: RunningSpamd
) -> None:
    """With a real spamd: GTUBE is spam (its rule listed), an order confirmation is not;
    the verdicts are kept, and is:spam finds the spam."""
    spam_id = await add(sqlite_store, GTUBE)
    ham_id = await add(sqlite_store, ORDER)
    checks = ChecksConfig(spamassassin=spamd.address, spamassassin_timeout=60.0)
    async with web_client(sqlite_store, checks=checks) as web:
        spam = await web.get(f"/api/v1/message/{spam_id}/sa-check")
        conforms(spam, "/api/v1/message/{ID}/sa-check")
        assert spam.json()["IsSpam"] is True and spam.json()["Error"] == ""
        assert "GTUBE" in {rule["Name"] for rule in spam.json()["Rules"]}
        ham = (await web.get(f"/api/v1/message/{ham_id}/sa-check")).json()
        assert ham["IsSpam"] is False and ham["Error"] == ""
        found = await web.get("/api/v1/search", params={"query": "is:spam"})
        assert [m["ID"] for m in found.json()["messages"]] == [spam_id]
        assert await sqlite_store.checks.get(ham_id, Kind.SPAM) is not None


STALL = 0.25
"""The longest the loop may go unserved: a check on the loop stalls it for the whole check
(about a second here), one in a thread for a few milliseconds at a time."""


async def test_html_check_of_a_big_body_leaves_the_event_loop_free(sqlite_store: Store) -> None:
    """The HTML check parses in a thread: while a megabyte of HTML is checked (about a
    second of work), the event loop keeps running other work promptly."""
    big = html_mail(NEWSLETTER.replace("<p>Hello</p>", "<p>Hello</p>" * 100_000))
    message_id = await add(sqlite_store, big)
    gaps: list[float] = []

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - before)

    async with web_client(sqlite_store) as web:
        ticker = asyncio.ensure_future(tick())
        started = asyncio.get_running_loop().time()
        answer = await web.get(f"/api/v1/message/{message_id}/html-check")
        took = asyncio.get_running_loop().time() - started
        ticker.cancel()
    assert answer.status_code == 200 and answer.json()["Total"]["Nodes"] > 100_000
    assert took > 0.3, "too little work to tell"
    assert max(gaps) < STALL, f"the loop stalled {max(gaps):.2f} s of {took:.2f} s"
