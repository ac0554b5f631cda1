"""Hostile MIME: every malformed message of the corpus is accepted and stored byte-exact on
both backends, every page and API route about it answers without a 500, and downloads
carry safe file names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import unquote

import httpx
import pytest
from starlette.routing import Mount, Route

from relay import mime
from relay.smtp import replies
from tests.hostile_mail import CORPUS
from tests.mail import wire_form
from tests.support import RunningRelay, make_config, queue_id, smtplib_form
from tests.traffic import without_received

pytestmark = pytest.mark.slow

TABS = ("html", "text", "headers", "source", "attachments", "deliveries")
ID_PARAMS = {"id", "ID", "message_id", "messageId"}
PART_PARAMS = {"part_id", "partID", "PartID", "part"}
_QUOTED_NAME = re.compile(r'filename="([^"]*)"')
_EXTENDED_NAME = re.compile(r"filename\*=UTF-8''([^;]*)")


@pytest.fixture(scope="module")
def hostile(module_db_url: str) -> Iterator[RunningRelay]:
    """A capturing relay on SQLite, then on PostgreSQL."""
    running = RunningRelay(make_config(module_db_url)).start()
    try:
        yield running
    finally:
        running.stop()


def deliver(relay: RunningRelay, data: bytes) -> str:
    """Send `data` over SMTP; return the queue id of its 250."""
    with relay.smtp() as client:
        client.ehlo("mallory.example")
        client.mail("mallory@evil.example")
        client.rcpt("you@example.com")
        code, reply = client.data(data)
    assert code == 250, reply
    return queue_id(reply)


def safe_name(name: str) -> bool:
    """A downloaded file name that cannot reach another directory nor break a header."""
    return bool(
        name
        and len(name) <= 255
        and not re.search(r"[\x00-\x1f\x7f/\\]", name)
        and not name.startswith(".")
    )


def check_download(response: httpx.Response) -> None:
    """A download's Content-Disposition names a safe file, in both of its forms."""
    disposition = response.headers["content-disposition"]
    quoted = _QUOTED_NAME.search(disposition)
    assert quoted and safe_name(quoted.group(1)), disposition
    extended = _EXTENDED_NAME.search(disposition)
    if extended:
        assert safe_name(unquote(extended.group(1))), disposition


def api_paths(relay: RunningRelay, message_id: str, part_ids: list[str]) -> list[str]:
    """Every GET route under /api/v1 that exists, filled in for this message (routes with
    parameters other than a message id and a part id are left out)."""
    app = relay.relay._web.config.app if relay.relay._web else None
    paths: list[str] = []

    def visit(routes: list[object], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                visit(list(route.routes), prefix + route.path)
            elif isinstance(route, Route) and "GET" in (route.methods or ()):
                path = prefix + route.path
                if not path.startswith("/api/v1"):
                    continue
                params = set(route.param_convertors)
                if not params <= ID_PARAMS | PART_PARAMS:
                    continue
                fillings = part_ids if params & PART_PARAMS else [""]
                for part_id in fillings:
                    filled = path
                    for name in params:
                        value = part_id if name in PART_PARAMS else message_id
                        filled = re.sub(r"\{" + name + r"(:[^}]*)?\}", value, filled)
                    paths.append(filled)

    visit(list(getattr(app, "routes", [])), "")
    return paths


def stored_parts(relay: RunningRelay, message_id: str) -> list[str]:
    """The part ids the message view lists."""
    return [a.part_id for a in mime.view.of(relay.raw(message_id)).attachments]


@pytest.mark.parametrize("name", list(CORPUS))
def test_hostile_message_is_stored_and_every_page_answers(hostile: RunningRelay, name: str) -> None:
    """Stored byte-exact; the list, search, every tab, source, body and part answer < 500;
    downloads have safe names."""
    data = CORPUS[name]
    message_id = deliver(hostile, data)
    assert without_received(hostile.raw(message_id)) == wire_form(data)
    parts = stored_parts(hostile, message_id)
    pages = [
        "/?q=mallory",
        f"/live/rows?id={message_id}",
        f"/message/{message_id}",
        *(f"/message/{message_id}?tab={tab}" for tab in TABS),
        f"/message/{message_id}/body.html",
        f"/message/{message_id}/part/999999",
        f"/message/{message_id}/part/..%2F..%2Fetc%2Fpasswd",
    ]
    with httpx.Client(base_url=hostile.web_url, timeout=60) as web:
        for page in pages:
            response = web.get(page)
            assert response.status_code < 500, (page, response.text[:500])
        assert web.get(f"/message/{message_id}").status_code == 200
        source = web.get(f"/message/{message_id}/source.eml")
        assert source.content == hostile.raw(message_id)
        check_download(source)
        for part_id in parts:
            response = web.get(f"/message/{message_id}/part/{part_id}")
            assert response.status_code == 200, (part_id, response.text[:300])
            check_download(response)


def test_api_routes_answer_about_hostile_messages(hostile: RunningRelay) -> None:
    """Whatever /api/v1 GET routes exist answer < 500 about every message of the corpus."""
    ids = {name: deliver(hostile, data) for name, data in CORPUS.items()}
    first = api_paths(hostile, "X", ["1"])
    if not first:
        pytest.skip("this build has no /api/v1 routes yet")
    with httpx.Client(base_url=hostile.web_url, timeout=60) as web:
        for name, message_id in ids.items():
            for path in api_paths(hostile, message_id, stored_parts(hostile, message_id)):
                response = web.get(path)
                assert response.status_code < 500, (name, path, response.text[:500])


def test_a_line_over_the_limit_gets_5xx_and_the_session_goes_on(hostile: RunningRelay) -> None:
    """One line longer than max_line_length: 500 5.5.2 after the data, and the same session
    then sends a message that is stored."""
    limit = hostile.config.listener[0].max_line_length
    with hostile.smtp() as client:
        client.ehlo("mallory.example")
        client.mail("mallory@evil.example")
        client.rcpt("you@example.com")
        too_long = b"Subject: long\r\n\r\n" + b"x" * (limit + 1) + b"\r\n"
        assert client.data(too_long) == smtplib_form(replies.LINE_TOO_LONG)
        client.mail("mallory@evil.example")
        client.rcpt("you@example.com")
        code, reply = client.data(CORPUS["nul-bytes"])
    assert code == 250, reply
    assert without_received(hostile.raw(queue_id(reply))) == CORPUS["nul-bytes"]
