"""End to end: SMTP in over loopback, committed to a real SQLite file, shown on the web."""

from __future__ import annotations

import re
import smtplib
import sqlite3
from pathlib import Path

import httpx
import pytest

from relay.status import Status
from tests import mail
from tests.support import RunningRelay

RECEIVED = re.compile(rb"\AReceived: [^\r\n]*(?:\r\n[ \t][^\r\n]*)*\r\n")


def send(relay: RunningRelay, data: bytes, rcpts: list[str], sender: str = "s@example.com") -> str:
    """Send one message; return the queue id from the 250 reply."""
    with relay.smtp() as client:
        client.ehlo("client.example")
        client.mail(sender)
        for rcpt in rcpts:
            code, _ = client.rcpt(rcpt)
            assert code == 250
        code, reply = client.data(data)
    assert code == 250, reply
    match = re.search(rb"queued as (\w+)", reply)
    assert match, reply
    return match.group(1).decode()


def db_file(relay: RunningRelay) -> Path:
    """The SQLite file of a running relay."""
    return Path(relay.config.storage.url.split("///", 1)[1])


@pytest.mark.parametrize(
    "build",
    [mail.plain, mail.chinese_alternative, mail.with_attachments],
    ids=["plain", "chinese-gbk", "attachments"],
)
def test_message_is_stored_byte_exact_after_received_header(relay: RunningRelay, build) -> None:  # type: ignore[no-untyped-def]
    """The stored raw bytes are our Received header followed by exactly what was sent."""
    data = build()
    message_id = send(relay, data, ["rcpt@example.org"])
    raw = relay.call(relay.relay.store.messages.raw(message_id))
    assert raw is not None
    header = RECEIVED.match(raw)
    assert header, raw[:200]
    assert raw[header.end() :] == mail.wire_form(data)
    assert f"id {message_id}".encode() in header.group(0)


def test_recipients_are_deduplicated_on_domain_case_only(relay: RunningRelay) -> None:
    """USER@Example.com and USER@example.com are one recipient; user@example.com another."""
    message_id = send(
        relay,
        mail.plain(),
        ["USER@Example.com", "USER@example.com", "user@example.com", "USER@EXAMPLE.COM"],
    )
    row = relay.call(relay.relay.store.messages.get(message_id))
    assert row is not None
    assert [r.address for r in row.recipients] == ["USER@Example.com", "user@example.com"]
    assert all(r.status == Status.CAPTURED for r in row.recipients)


def test_list_and_message_pages_show_decoded_subject_and_bodies(relay: RunningRelay) -> None:
    """The list shows the RFC 2047 subject decoded; the message page the GBK text and HTML."""
    message_id = send(relay, mail.chinese_alternative(), ["li@example.com"])
    with httpx.Client(base_url=relay.web_url) as web:
        listing = web.get("/")
        assert listing.status_code == 200
        assert mail.CHINESE_SUBJECT in listing.text
        assert "=?utf-8?" not in listing.text
        text_tab = web.get(f"/message/{message_id}", params={"tab": "text"})
        assert text_tab.status_code == 200
        assert mail.CHINESE_SUBJECT in text_tab.text
        assert mail.GBK_TEXT in text_tab.text
        html = web.get(f"/message/{message_id}/body.html")
        assert "<b>世界</b>" in html.text


def test_attachments_and_inline_image_are_served(relay: RunningRelay) -> None:
    """The PDF downloads with its name and type; the cid: image points at its part URL."""
    message_id = send(relay, mail.with_attachments(), ["ops@example.com"])
    with httpx.Client(base_url=relay.web_url) as web:
        page = web.get(f"/message/{message_id}", params={"tab": "attachments"})
        assert "report.pdf" in page.text and "logo.png" in page.text
        pdf_link = re.search(
            r'href="(/message/[^"]+/part/\d+)"[^>]*>(?:(?!</a>).)*report.pdf', page.text, re.S
        )
        assert pdf_link
        pdf = web.get(pdf_link.group(1))
        assert pdf.content == mail.PDF
        assert pdf.headers["content-type"] == "application/pdf"
        assert pdf.headers["content-disposition"] == (
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"
        )
        html = web.get(f"/message/{message_id}/body.html").text
        image = re.search(r'src="(/message/[^"]+/part/\d+)"', html)
        assert image, html
        assert web.get(image.group(1)).content == mail.PNG


def test_store_failure_answers_451_and_the_next_message_is_stored(relay: RunningRelay) -> None:
    """When the commit fails the client gets 451 4.3.0, never 250; after the fault, 250."""
    path = db_file(relay)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER test_fault BEFORE INSERT ON message "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    with relay.smtp() as client:
        client.ehlo("client.example")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("s@example.com", ["r@example.org"], mail.plain())
        assert refused.value.smtp_code == 451
        assert refused.value.smtp_error.startswith(b"4.3.0")
        with sqlite3.connect(path) as db:
            db.execute("DROP TRIGGER test_fault")
        client.sendmail("s@example.com", ["r@example.org"], mail.plain())
    with sqlite3.connect(path) as db:
        (messages,) = db.execute("SELECT count(*) FROM message").fetchone()
        (raws,) = db.execute("SELECT count(*) FROM message_raw").fetchone()
        (rcpts,) = db.execute("SELECT count(*) FROM recipient").fetchone()
    assert (messages, raws, rcpts) == (1, 1, 1)


def test_sqlite_database_is_in_wal_mode(relay: RunningRelay) -> None:
    """The SQLite file is switched to WAL on start."""
    with sqlite3.connect(db_file(relay)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
