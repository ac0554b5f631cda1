"""Real-world MIME through a running relay: encoded headers and names in the API, the pages
and search; the MHTML root served; a header the standard library cannot parse never
refuses mail (a property test over random header bytes and charsets); large messages
read in the view pool's threads, a bounded number at a time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay import mime, offload
from relay.mime import summary
from tests import mime_samples as s
from tests.mail import wire_form
from tests.support import RunningRelay, make_config
from tests.test_capture import send
from tests.traffic import without_received


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRelay]:
    """A capturing relay on a SQLite file, shared by the module's tests."""
    db = tmp_path_factory.mktemp("served") / "relay.db"
    running = RunningRelay(make_config(f"sqlite+aiosqlite:///{db}")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def web(served: RunningRelay) -> Iterator[httpx.Client]:
    """An HTTP client for the relay's web port."""
    with httpx.Client(base_url=served.web_url, timeout=30) as client:
        yield client


def names_message(label: str) -> bytes:
    """Subject, From and To names in `label`, and an attachment named in it (RFC 2231)."""
    _text, data = s.encoded(label)
    attached = s.leaf(
        "text/plain; charset=utf-8",
        b"minutes",
        f"Content-Disposition: attachment; filename*={s.rfc2231(label, data + b'.txt')}",
    )
    return s.multipart(
        "mixed",
        [s.leaf("text/plain", b"Agenda attached.\r\n"), attached],
        "names",
        headers=[
            f"From: {s.word(label, data)} <boss@example.com>",
            f"To: {s.word(label, data)} <team@example.com>",
            f"Subject: {s.word(label, data)} agenda",
        ],
    )


@pytest.mark.parametrize("label", s.LABELS)
def test_encoded_names_in_the_api_pages_and_search(
    served: RunningRelay, web: httpx.Client, label: str
) -> None:
    """The API's Subject, From, To and FileName, the list, the page and its download, and
    a search for the decoded subject all have the text as browsers read it."""
    text, _data = s.encoded(label)
    message_id = send(served, names_message(label), ["team@example.com"])
    api = web.get(f"/api/v1/message/{message_id}").json()
    assert api["Subject"] == f"{text} agenda"
    assert api["From"] == {"Name": text, "Address": "boss@example.com"}
    assert api["To"] == [{"Name": text, "Address": "team@example.com"}]
    assert [a["FileName"] for a in api["Attachments"]] == [f"{text}.txt"]
    page = web.get(f"/message/{message_id}", params={"tab": "attachments"}).text
    assert f"<title>{text} agenda" in page and f"{text}.txt" in page
    part = web.get(f"/message/{message_id}/part/{api['Attachments'][0]['PartID']}")
    assert f"filename*=UTF-8''{quote(text + '.txt')}" in part.headers["content-disposition"]
    listed = web.get("/", params={"q": f'"{text} agenda"'}).text
    assert f"m-{message_id}" in listed and f"{text} agenda" in listed
    found = web.get("/api/v1/search", params={"query": f'"{text} agenda"'}).json()
    assert [m["ID"] for m in found["messages"]] == [message_id]


def test_mhtml_is_shown_served_and_found(served: RunningRelay, web: httpx.Client) -> None:
    """A saved page (image first, HTML second, type="text/html"): the API's HTML and Text,
    /view/ID.html, the Text tab and a search for a word of its body."""
    message_id = send(served, s.mhtml("xylophone"), ["me@example.com"])
    api = web.get(f"/api/v1/message/{message_id}").json()
    assert "xylophone" in api["HTML"] and api["Text"] == "The xylophone report"
    assert [a["ContentType"] for a in api["Inline"]] == ["image/png"]
    view = web.get(f"/view/{message_id}.html")
    assert view.status_code == 200 and "xylophone" in view.text
    text_tab = web.get(f"/message/{message_id}", params={"tab": "text"}).text
    assert "The xylophone report" in text_tab and "no text part" not in text_tab
    found = web.get("/api/v1/search", params={"query": "xylophone"}).json()
    assert [m["ID"] for m in found["messages"]] == [message_id]


def test_a_parameter_the_stdlib_cannot_decode_is_accepted(
    served: RunningRelay, web: httpx.Client
) -> None:
    """filename*=iso-2022-jp''… holding ① (which makes email's header parser raise): 250,
    stored byte-exact, the name shown and served."""
    data = s.message(["Subject: minutes"], b"")[:-2] + names_message("iso-2022-jp")
    message_id = send(served, data, ["team@example.com"])
    assert without_received(served.raw(message_id)) == wire_form(data)
    api = web.get(f"/api/v1/message/{message_id}").json()
    assert [a["FileName"] for a in api["Attachments"]] == ["会議①.txt"]


def test_a_summary_that_fails_never_refuses_mail(
    served: RunningRelay,
    web: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Were reading the message to fail (the quick summary and the structure scan made to
    raise), the message is still accepted and stored byte-exact, with the header fields
    read one by one and a warning in the log; its page still answers, with a warning."""

    def broken(*_args: object) -> None:
        raise RuntimeError("a parser bug")

    monkeypatch.setattr(summary, "quick", broken)
    monkeypatch.setattr(mime.view, "scan", broken)
    data = s.mhtml("unreadable")
    with caplog.at_level(logging.WARNING, logger="relay"):
        message_id = send(served, data, ["me@example.com"])
    assert without_received(served.raw(message_id)) == wire_form(data)
    assert served.message(message_id).subject == "Saved page"
    assert any("summary" in r.getMessage() for r in caplog.records)
    page = web.get(f"/message/{message_id}")
    assert page.status_code == 200 and "its structure could not be read" in page.text


LABEL = st.sampled_from(
    [
        *["utf-8", "gb2312", "iso-8859-8-i", "shift_jis", "utf-16", "utf-7", "koi8-r"],
        *["x-unknown", "", "utf-8*en", "bogus'", "unicode-1-1-utf-7", "cp50220"],
        *["iso-2022-jp"] * 6,
    ]
)
EDGE_ROWS = [0x2D, 0x79, 0x7C, 0x29, 0x7E]
"""JIS rows CP50220 adds (13, 89, 92) and rows with no JIS X 0208 character (9, 94)."""
JIS_LEAD = st.one_of(st.sampled_from(range(0x21, 0x7F)), st.sampled_from(EDGE_ROWS))
JIS_PAIR = st.tuples(JIS_LEAD, st.sampled_from(range(0x21, 0x7F)))
JIS_LIKE = st.lists(JIS_PAIR, min_size=1, max_size=4).map(
    lambda pairs: b"\x1b$B" + b"".join(bytes(p) for p in pairs) + b"\x1b(B"
)
"""Two-byte JIS runs, valid or not: what made email's header parser raise under an
iso-2022-jp label."""
DATA = st.one_of(st.binary(max_size=30), JIS_LIKE)
TEXT = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b" ").replace(b"\n", b" "))
FORMS = ["raw", "b-word", "q-word", "rfc2231", "rfc2231", "continued", "continued"]


@st.composite
def header_values(draw: st.DrawFn) -> bytes:
    """A header value: raw bytes, encoded words or an RFC 2231 parameter, each in a random
    (or no, or a made-up) charset."""
    label, data = draw(LABEL).encode(), draw(DATA)
    form = draw(st.sampled_from(FORMS))
    if form == "raw":
        return draw(TEXT)
    if form == "b-word":
        return s.word(label.decode(), data).encode() + b" " + draw(TEXT)
    if form == "q-word":
        return b"=?%s?Q?%s?=" % (label, b"".join(b"=%02X" % c for c in data))
    value = quote(data, safe="").encode()
    if form == "rfc2231":
        return b"attachment; filename*=%s''%s" % (label, value)
    return b"attachment; filename*0*=%s''%s; filename*1*=%s" % (label, value, value)


NAMES = ["Subject", "From", "To", "Content-Type", "X-Note", "Message-ID"]
NAME = st.sampled_from([*NAMES, *["Content-Disposition"] * 6])


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(NAME, header_values(), st.booleans())
def test_any_header_bytes_are_accepted_and_stored_exactly(
    served: RunningRelay, web: httpx.Client, name: str, value: bytes, in_part: bool
) -> None:
    """Whatever the bytes and charset of a header, of the message or of a part: 250, the
    message stored byte for byte, its page answered."""
    line = name.encode() + b": " + value
    part = s.leaf("text/plain", b"body").replace(b"\r\n\r\n", b"\r\n" + line + b"\r\n\r\n", 1)
    if in_part:
        data = s.multipart("mixed", [part], "prop", headers=["Subject: property"])
    else:
        data = line + b"\r\n" + s.message(["Subject: property"], b"body\r\n")
    message_id = send(served, data, ["me@example.com"])
    assert without_received(served.raw(message_id)) == wire_form(data)
    assert web.get(f"/message/{message_id}").status_code == 200


def recording(
    monkeypatch: pytest.MonkeyPatch, names: list[str]
) -> tuple[list[str], Callable[[], int]]:
    """Wrap the functions `names` of relay.mime.view to record the thread each call runs
    in and the most calls running at once."""
    threads: list[str] = []
    running, peak = [0], [0]
    lock = threading.Lock()
    for name in names:
        real: Callable[..., Any] = getattr(mime.view, name)

        def wrapper(*args: Any, _real: Callable[..., Any] = real) -> Any:
            with lock:
                threads.append(threading.current_thread().name)
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                return _real(*args)
            finally:
                with lock:
                    running[0] -= 1

        monkeypatch.setattr(mime.view, name, wrapper)
    return threads, lambda: peak[0]


def many_files(files: int, tag: str) -> bytes:
    """A message of a text part and `files` attachments of 200 bytes."""
    attached = [
        s.leaf(
            "application/octet-stream",
            tag.encode() * 200,
            f'Content-Disposition: attachment; filename="f{i}"',
        )
        for i in range(files)
    ]
    return s.multipart("mixed", [s.leaf("text/plain", b"Many.\r\n"), *attached], "big")


def test_large_messages_are_read_once_in_a_bounded_pool(
    served: RunningRelay, web: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages and downloads of 8 messages of 400 attachments each (over PARSE_IN_THREAD),
    8 clients at once: every scan and view runs in the view pool's threads, never on the
    event loop, at most offload.THREADS at a time, and each message is scanned once
    however many of its parts are downloaded; every part comes back whole."""
    messages = {send(served, many_files(400, tag), ["me@example.com"]): tag for tag in "abcdefgh"}
    assert len(many_files(400, "a")) > offload.PARSE_IN_THREAD
    threads, peak = recording(monkeypatch, ["structure", "of"])
    jobs = [(m, str(p)) for p in range(2, 402, 50) for m in messages]

    def download(job: tuple[str, str]) -> bytes:
        return web.get(f"/message/{job[0]}/part/{job[1]}").content

    with ThreadPoolExecutor(8) as clients:
        pages = list(clients.map(lambda m: web.get(f"/message/{m}").status_code, messages))
        bodies = list(clients.map(download, jobs))
    assert pages == [200] * len(messages)
    assert bodies == [messages[m].encode() * 200 for m, _ in jobs]
    assert threads and all(t.startswith("relay-view") for t in threads), set(threads)
    assert len(threads) == 2 * len(messages)  # one scan and one view each
    assert peak() <= offload.THREADS
