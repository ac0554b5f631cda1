"""The web UI against a running relay: list paging, message tabs, sandboxed HTML, downloads."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import httpx
import pytest

from relay.config import WebConfig
from tests import mail
from tests.support import RunningRelay, make_config
from tests.test_capture import send
from web.message import safe_filename


@pytest.fixture
def small_pages(sqlite_url: str) -> Iterator[RunningRelay]:
    """A relay whose list shows two messages a page."""
    config = make_config(sqlite_url)
    config = dataclasses.replace(config, web=WebConfig(address="127.0.0.1:0", page_size=2))
    running = RunningRelay(config).start()
    try:
        yield running
    finally:
        running.stop()


def subjects(html: str) -> list[str]:
    """The subjects in list order."""
    return re.findall(r'<td class="subject"><a href="[^"]+">([^<]+)</a>', html)


def test_list_pages_newest_first(small_pages: RunningRelay) -> None:
    """Five messages on pages of two: newest first, three pages, links between them."""
    for i in range(5):
        send(small_pages, mail.plain().replace(b"Plain hello", f"Number {i}".encode()), ["r@x.org"])
    with httpx.Client(base_url=small_pages.web_url) as web:
        first = web.get("/").text
        last = web.get("/", params={"page": 3}).text
    assert subjects(first) == ["Number 4", "Number 3"]
    assert "Page 1 of 3" in first and 'rel="next"' in first
    assert subjects(last) == ["Number 0"]
    assert 'rel="prev"' in last and 'rel="next"' not in last


def test_message_tabs_show_headers_and_source(relay: RunningRelay) -> None:
    """The headers tab shows decoded headers; the source tab the raw message."""
    message_id = send(relay, mail.chinese_alternative(), ["li@example.com"])
    with httpx.Client(base_url=relay.web_url) as web:
        headers = web.get(f"/message/{message_id}", params={"tab": "headers"}).text
        source = web.get(f"/message/{message_id}", params={"tab": "source"}).text
    assert "<th>Subject</th><td>" + mail.CHINESE_SUBJECT in headers
    assert "Received: from client.example" in source
    assert "=?utf-8?b?" in source


def test_html_body_is_sandboxed_with_a_strict_csp(relay: RunningRelay) -> None:
    """The HTML body has its own route, a CSP forbidding scripts; the iframe grants nothing."""
    message_id = send(relay, mail.chinese_alternative(), ["li@example.com"])
    with httpx.Client(base_url=relay.web_url) as web:
        page = web.get(f"/message/{message_id}").text
        body = web.get(f"/message/{message_id}/body.html")
    frame = re.search(r'<iframe[^>]*sandbox="([^"]*)"[^>]*src="/message/\w+/body.html"', page)
    assert frame, page
    granted = set(frame.group(1).split())
    assert not granted & {
        "allow-scripts",
        "allow-same-origin",
        "allow-forms",
        "allow-top-navigation",
    }
    csp = body.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    assert body.headers["x-content-type-options"] == "nosniff"


def test_source_downloads_as_eml(relay: RunningRelay) -> None:
    """The .eml download is the stored raw message, as an attachment named after the id."""
    message_id = send(relay, mail.plain(), ["r@example.org"])
    raw = relay.call(relay.relay.store.messages.raw(message_id))
    with httpx.Client(base_url=relay.web_url) as web:
        eml = web.get(f"/message/{message_id}/source.eml")
    assert eml.content == raw
    assert eml.headers["content-type"] == "message/rfc822"
    assert eml.headers["content-disposition"] == f'attachment; filename="{message_id}.eml"'


def test_viewing_a_message_marks_it_read(relay: RunningRelay) -> None:
    """A message is bold (unread) in the list until its page is opened."""
    message_id = send(relay, mail.plain(), ["r@example.org"])
    with httpx.Client(base_url=relay.web_url) as web:
        assert 'class="row unread"' in web.get("/").text
        web.get(f"/message/{message_id}")
        assert 'class="row unread"' not in web.get("/").text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/message/NOPE", 404),
        ("/message/NOPE/source.eml", 404),
        ("/message/NOPE/body.html", 404),
        ("/?page=abc", 400),
        ("/healthz", 200),
    ],
)
def test_routes_answer_with_the_right_status(relay: RunningRelay, path: str, status: int) -> None:
    """Unknown messages are 404, bad parameters 400, /healthz 200: never a 500."""
    with httpx.Client(base_url=relay.web_url) as web:
        assert web.get(path).status_code == status


def test_unknown_tab_and_part_are_client_errors(relay: RunningRelay) -> None:
    """A tab that does not exist is 400; a part that does not exist is 404."""
    message_id = send(relay, mail.plain(), ["r@example.org"])
    with httpx.Client(base_url=relay.web_url) as web:
        assert web.get(f"/message/{message_id}", params={"tab": "nope"}).status_code == 400
        assert web.get(f"/message/{message_id}/part/99").status_code == 404


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("evil\r\nSet-Cookie: x.txt", "evil_Set-Cookie_ x.txt"),
        ("报告.pdf", "报告.pdf"),
        ("..", "fallback"),
        ("", "fallback"),
    ],
)
def test_download_names_are_safe(name: str, safe: str) -> None:
    """Attachment names lose paths and control characters; empty names get the fallback."""
    assert safe_filename(name, "fallback") == safe
