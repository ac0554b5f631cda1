"""The Mailpit-compatible API against a running relay: list, search, one message, raw,
headers, parts, read markers, deletes, rendered bodies, errors."""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from email import message_from_bytes, policy

import httpx
import pytest

from relay.config import RouteConfig, UpstreamConfig
from tests import mail
from tests.support import RunningRelay, make_config
from tests.test_capture import send

SUMMARY_FIELDS = {
    "ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Created",
    "Size", "Attachments", "Snippet", "Tags",
}  # fmt: skip
LIST_FIELDS = {
    "total", "unread", "count", "messages_count", "messages_unread", "start", "tags", "messages",
}  # fmt: skip
MESSAGE_FIELDS = {
    "ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "ReturnPath", "Subject",
    "Date", "Text", "HTML", "Size", "Inline", "Attachments", "Tags",
}  # fmt: skip


def subject(text: str) -> bytes:
    """The plain sample message with another subject."""
    return mail.plain().replace(b"Plain hello", text.encode())


@pytest.fixture
def api(relay: RunningRelay) -> Iterator[httpx.Client]:
    """An HTTP client for the running relay's web port."""
    with httpx.Client(base_url=relay.web_url, timeout=10) as client:
        yield client


def test_list_has_mailpit_fields_newest_first_with_paging(
    relay: RunningRelay, api: httpx.Client
) -> None:
    """GET /api/v1/messages: Mailpit's list fields, newest first, start/limit paging."""
    ids = [send(relay, subject(f"Number {i}"), ["bob@example.org"]) for i in range(3)]
    body = api.get("/api/v1/messages").json()
    assert set(body) == LIST_FIELDS
    assert (body["total"], body["unread"], body["count"], body["messages_count"]) == (3, 3, 3, 3)
    assert [m["ID"] for m in body["messages"]] == ids[::-1]
    first = body["messages"][0]
    assert set(first) >= SUMMARY_FIELDS
    assert first["From"] == {"Name": "Alice", "Address": "alice@example.com"}
    assert first["To"] == [{"Name": "Bob", "Address": "bob@example.org"}]
    assert first["MessageID"] == "plain-1@example.com"
    assert first["Subject"] == "Number 2" and first["Read"] is False and first["Tags"] == []
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["Created"])
    page = api.get("/api/v1/messages", params={"start": 1, "limit": 1}).json()
    assert (page["start"], page["count"], page["messages_count"]) == (1, 1, 3)
    assert [m["ID"] for m in page["messages"]] == [ids[1]]


def test_summary_has_bcc_from_the_envelope_and_reply_to(
    relay: RunningRelay, api: httpx.Client
) -> None:
    """Envelope recipients no header names show as Bcc; Reply-To comes from the headers."""
    data = subject("Blind").replace(b"Subject:", b"Reply-To: Desk <desk@example.com>\r\nSubject:")
    send(relay, data, ["bob@example.org", "hidden@example.net"])
    first = api.get("/api/v1/messages").json()["messages"][0]
    assert first["Bcc"] == [{"Name": "", "Address": "hidden@example.net"}]
    assert first["ReplyTo"] == [{"Name": "Desk", "Address": "desk@example.com"}]


def test_search_uses_the_search_language_and_counts_matches(
    relay: RunningRelay, api: httpx.Client
) -> None:
    """GET /api/v1/search: matches only; messages_count and messages_unread exact over the
    matches; total and unread still the mailbox's."""
    send(relay, subject("Invoice 1"), ["bob@example.org"])
    wanted = send(relay, subject("Invoice 2"), ["carol@example.org"])
    send(relay, subject("Newsletter"), ["carol@example.org"])
    body = api.get("/api/v1/search", params={"query": "invoice to:carol"}).json()
    assert [m["ID"] for m in body["messages"]] == [wanted]
    assert (body["total"], body["messages_count"], body["messages_unread"]) == (3, 1, 1)
    read = send(relay, subject("Invoice 3"), ["carol@example.org"])
    assert api.put("/api/v1/messages", json={"IDs": [read], "Read": True}).status_code == 200
    body = api.get("/api/v1/search", params={"query": "invoice"}).json()
    assert (body["total"], body["unread"]) == (4, 3)
    assert (body["messages_count"], body["messages_unread"]) == (3, 2)


@pytest.mark.parametrize(
    ("query", "subjects"),
    [
        ('subject:"Invoice"', ["Invoice"]),
        ("message-id:plain-1@example.com", ["Invoice", "Report"]),
        ("!subject:invoice", ["Report"]),
        ("addressed:carol", ["Report"]),
        ("bcc:carol", ["Report"]),
        ("larger:1 smaller:100k", ["Invoice", "Report"]),
        ("larger:1M", []),
        ("after:2000-01-01 before:2999-01-01", ["Invoice", "Report"]),
        ("before:2000-01-01", []),
        ("tag:important", []),
        ("-is:tagged", ["Invoice", "Report"]),
    ],
)
def test_search_maps_mailpit_keys(
    relay: RunningRelay, api: httpx.Client, query: str, subjects: list[str]
) -> None:
    """Mailpit's search keys (message-id, addressed, bcc, sizes, dates, tags, !) work."""
    send(relay, subject("Invoice"), ["bob@example.org"])
    send(relay, subject("Report"), ["carol@example.org"])
    found = api.get("/api/v1/search", params={"query": query}).json()["messages"]
    assert sorted(m["Subject"] for m in found) == subjects


@pytest.mark.parametrize("query", ["", "is:sleepy", "after:yesterdayish", "larger:big"])
def test_bad_search_is_a_400_with_a_json_error(api: httpx.Client, query: str) -> None:
    """A missing or unreadable query answers 400 {"Error": ...}, it never matches all."""
    response = api.get("/api/v1/search", params={"query": query})
    assert response.status_code == 400
    assert response.json()["Error"]


def test_message_has_bodies_parts_and_is_marked_read(
    relay: RunningRelay, api: httpx.Client
) -> None:
    """GET /api/v1/message/{ID}: Mailpit's Message with text, HTML, inline and attachments."""
    message_id = send(relay, mail.with_attachments(), ["ops@example.com"])
    body = api.get(f"/api/v1/message/{message_id}").json()
    assert set(body) >= MESSAGE_FIELDS
    assert body["Subject"] == "Monthly report" and body["Text"].startswith("See the attached")
    assert "<img" in body["HTML"] and body["ReturnPath"] == "s@example.com"
    assert [a["FileName"] for a in body["Attachments"]] == ["report.pdf"]
    assert [(a["FileName"], a["ContentType"]) for a in body["Inline"]] == [
        ("logo.png", "image/png")
    ]
    assert body["Inline"][0]["ContentID"] and body["Attachments"][0]["Size"] == len(mail.PDF)
    assert relay.message(message_id).read is True
    part = api.get(f"/api/v1/message/{message_id}/part/{body['Attachments'][0]['PartID']}")
    assert part.content == mail.PDF and part.headers["content-type"] == "application/pdf"
    assert "sandbox" in part.headers["content-security-policy"]


def test_latest_names_the_newest_message(relay: RunningRelay, api: httpx.Client) -> None:
    """The ID `latest` means the newest message, in every message route."""
    assert api.get("/api/v1/message/latest").status_code == 404
    send(relay, subject("Old"), ["bob@example.org"])
    newest = send(relay, subject("New"), ["bob@example.org"])
    assert api.get("/api/v1/message/latest").json()["ID"] == newest
    assert b"Subject: New" in api.get("/api/v1/message/latest/raw").content
    assert api.get("/view/latest.txt").text.startswith("Hello Bob")


def test_raw_is_the_stored_message(relay: RunningRelay, api: httpx.Client) -> None:
    """GET /api/v1/message/{ID}/raw: byte for byte what the store holds, as text/plain."""
    message_id = send(relay, mail.chinese_alternative(), ["li@example.com"])
    response = api.get(f"/api/v1/message/{message_id}/raw")
    assert response.content == relay.raw(message_id)
    assert response.headers["content-type"].startswith("text/plain")


def test_headers_are_lists_under_canonical_names(relay: RunningRelay, api: httpx.Client) -> None:
    """GET /headers: {Name: [values]} in alphabetical order, names spelled as Mailpit does."""
    message_id = send(relay, mail.chinese_alternative(), ["li@example.com"])
    headers = api.get(f"/api/v1/message/{message_id}/headers").json()
    assert list(headers) == sorted(headers)
    assert headers["Subject"] == [mail.CHINESE_SUBJECT]
    assert headers["Mime-Version"] == ["1.0"] and len(headers["Received"]) == 1


def test_mark_read_and_unread_by_ids_and_all(relay: RunningRelay, api: httpx.Client) -> None:
    """PUT /api/v1/messages: by IDs, then every message when no IDs are given."""
    first = send(relay, subject("One"), ["bob@example.org"])
    second = send(relay, subject("Two"), ["bob@example.org"])
    assert api.put("/api/v1/messages", json={"IDs": [first], "Read": True}).text == "ok"
    assert [relay.message(i).read for i in (first, second)] == [True, False]
    assert api.put("/api/v1/messages", json={"Read": True}).status_code == 200
    assert api.get("/api/v1/messages").json()["unread"] == 0
    api.put("/api/v1/messages", json={"Read": False, "Search": "subject:two"})
    assert [relay.message(i).read for i in (first, second)] == [True, False]
    assert api.put("/api/v1/messages", json={"Read": "yes"}).status_code == 400


def test_delete_by_ids_by_search_and_all(relay: RunningRelay, api: httpx.Client) -> None:
    """DELETE by IDs, DELETE /search by query, then DELETE with no body: all gone."""
    ids = [send(relay, subject(s), ["bob@example.org"]) for s in ("Keep", "Drop", "Spam", "X")]
    assert api.request("DELETE", "/api/v1/messages", json={"IDs": [ids[1]]}).text == "ok"
    assert relay.message(ids[1]) is None and relay.count() == 3
    assert api.delete("/api/v1/search", params={"query": "subject:spam"}).status_code == 200
    assert relay.message(ids[2]) is None and relay.count() == 2
    assert api.delete("/api/v1/search").status_code == 400  # no query: not "everything"
    assert api.delete("/api/v1/messages").status_code == 200
    assert relay.count() == 0


def test_view_routes_render_bodies_under_a_strict_policy(
    relay: RunningRelay, api: httpx.Client
) -> None:
    """/view/{ID}.html: HTML body, cid: images → part URLs, sandboxing CSP; .txt: the text."""
    message_id = send(relay, mail.with_attachments(), ["ops@example.com"])
    html = api.get(f"/view/{message_id}.html")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    csp = html.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    assert f"/message/{message_id}/part/" in html.text and "cid:" not in html.text
    assert '<base target="_blank">' not in html.text
    assert '<base target="_blank">' in api.get(f"/view/{message_id}.html?embed=1").text
    assert api.get(f"/view/{message_id}.txt").text.startswith("See the attached report.")
    plain = send(relay, mail.plain(), ["bob@example.org"])
    assert api.get(f"/view/{plain}.html").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/message/NOPE",
        "/api/v1/message/NOPE/raw",
        "/api/v1/message/NOPE/headers",
        "/api/v1/message/NOPE/part/1",
        "/view/NOPE.html",
        "/view/NOPE.txt",
    ],
)
def test_unknown_message_is_a_json_404(api: httpx.Client, path: str) -> None:
    """Every message route answers 404 {"Error": ...} for an unknown ID."""
    response = api.get(path)
    assert response.status_code == 404 and response.json()["Error"]


def test_release_queues_relayed_addresses_and_refuses_the_rest(sqlite_url: str) -> None:
    """POST /release queues addresses that a route relays; captured-only addresses get 400."""
    config = make_config(
        sqlite_url,
        route=(RouteConfig(match="*@ourcompany.example", action="relay", upstream="up"),),
        upstream=types.MappingProxyType({"up": UpstreamConfig(host="127.0.0.1", port=9)}),
    )
    running = RunningRelay(config).start()
    try:
        message_id = send(running, mail.plain(), ["bob@example.org"])
        with httpx.Client(base_url=running.web_url) as client:
            url = f"/api/v1/message/{message_id}/release"
            assert client.post(url, json={}).status_code == 400
            refused = client.post(url, json={"To": ["someone@example.org"]})
            assert refused.status_code == 400 and "capture" in refused.json()["Error"]
            assert client.post(url, json={"To": ["ann@ourcompany.example"]}).text == "ok"
            missing = client.post("/api/v1/message/NOPE/release", json={"To": ["a@b.c"]})
            assert missing.status_code == 404
        row = running.call(running.relay.store.messages.get(message_id))
        assert row is not None
        released = {r.address: r.route for r in row.recipients}
        assert released == {"bob@example.org": "capture", "ann@ourcompany.example": "relay:up"}
    finally:
        running.stop()


def test_info_reports_version_totals_and_runtime(relay: RunningRelay, api: httpx.Client) -> None:
    """GET /api/v1/info: Mailpit's fields, with SMTP totals counted by this process."""
    send(relay, mail.plain(), ["bob@example.org"])
    info = api.get("/api/v1/info").json()
    assert info["Messages"] == 1 and info["Unread"] == 1 and info["DatabaseSize"] > 0
    assert info["RuntimeStats"]["SMTPAccepted"] == 1
    assert info["RuntimeStats"]["SMTPAcceptedSize"] == len(mail.wire_form(mail.plain()))
    assert info["Version"] and info["Database"].startswith("sqlite")


def test_raw_parses_back_to_the_message(relay: RunningRelay, api: httpx.Client) -> None:
    """The raw route's bytes parse to the same subject the JSON reports."""
    message_id = send(relay, mail.chinese_alternative(), ["li@example.com"])
    raw = api.get(f"/api/v1/message/{message_id}/raw").content
    parsed = message_from_bytes(raw, policy=policy.default)
    assert str(parsed["Subject"]) == api.get(f"/api/v1/message/{message_id}").json()["Subject"]
