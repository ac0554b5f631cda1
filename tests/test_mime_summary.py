"""The summary kept on the message row, and the view's fallbacks for broken mail."""

from __future__ import annotations

from relay import mime
from tests import mail


def test_summary_of_chinese_alternative() -> None:
    """Subject decoded from RFC 2047, addresses decoded, snippet from the GBK text part."""
    summary = mime.summary.full(mail.chinese_alternative())
    assert summary.subject == mail.CHINESE_SUBJECT
    assert summary.from_ == "张三 <zhang@example.cn>"
    assert summary.snippet == mail.GBK_TEXT
    assert summary.attachments == 0


def test_summary_counts_attachments_not_inline_images() -> None:
    """The PDF counts as an attachment; the inline cid: image does not."""
    summary = mime.summary.full(mail.with_attachments())
    assert summary.attachments == 1
    view = mime.view.of(mail.with_attachments())
    assert sorted((a.filename, a.inline) for a in view.attachments) == [
        ("logo.png", True),
        ("report.pdf", False),
    ]
    assert len(view.cid_map) == 1


def test_unknown_charset_is_shown_with_a_warning() -> None:
    """A body in a charset Python does not know is shown as UTF-8 with a warning."""
    raw = (
        b"Subject: =?x-unknown?q?caf=E9?=\r\nContent-Type: text/plain; charset=x-klingon\r\n"
        b"\r\nhello \xc3\xa9\r\n"
    )
    view = mime.view.of(raw)
    assert view.text == "hello é\r\n"
    assert any("x-klingon" in w for w in view.warnings)
    assert "caf" in view.subject


def test_missing_boundary_never_raises() -> None:
    """A multipart without its boundary still gives a view, with a warning."""
    raw = b"Subject: broken\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\n\r\nbody\r\n--x--\r\n"
    view = mime.view.of(raw)
    assert view.subject == "broken"
    assert view.warnings
    assert mime.summary.full(raw).subject == "broken"
