"""MIME as real-world mailers write it, read by relay/mime/view.py: encoded headers under loose
charset labels, ISO-2022-JP with Microsoft's extensions, the HTML root of a
multipart/related (RFC 2387, hypothesis), and one part decoded without the others."""

from __future__ import annotations

import email.message
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay import mime
from tests import mime_samples as s


@pytest.mark.parametrize("label", s.LABELS)
def test_encoded_subject_and_names_take_the_charset_table(label: str) -> None:
    """Subject, From and To display names in each label read as browsers read them, in the
    view and in the summary the list and search use."""
    text, data = s.encoded(label)
    raw = s.message(
        [
            f"From: {s.word(label, data)} <sender@example.com>",
            f"To: {s.word(label, data)} <one@example.com>, Two <two@example.com>",
            f"Subject: Re: {s.word(label, data)}",
        ]
    )
    view, summary = mime.view.of(raw), mime.summary.full(raw)
    assert view.subject == summary.subject == f"Re: {text}"
    assert view.from_ == summary.from_ == f"{text} <sender@example.com>"
    assert view.to == summary.to == f"{text} <one@example.com>, Two <two@example.com>"
    assert ("Subject", f"Re: {text}") in view.headers


@pytest.mark.parametrize("label", s.LABELS)
@pytest.mark.parametrize(
    "disposition",
    [
        "attachment; filename*={ext}",
        "attachment; filename*0*={ext}; filename*1=.txt",
        'attachment; filename="{word}"',
        "inline; filename={word}",
    ],
    ids=["rfc2231", "rfc2231-continued", "quoted-word", "bare-word"],
)
def test_attachment_names_take_the_charset_table(label: str, disposition: str) -> None:
    """File names in RFC 2231 parameters (continued or not) and in encoded words, in each
    label: the listed name, and the download's."""
    text, data = s.encoded(label)
    value = disposition.format(ext=s.rfc2231(label, data), word=s.word(label, data))
    part = s.leaf("application/octet-stream", b"data", f"Content-Disposition: {value}")
    raw = s.multipart("mixed", [s.leaf("text/plain", b"See the file.\r\n"), part], "b")
    (attachment,) = mime.view.of(raw).attachments
    assert attachment.filename in (text, text + ".txt")
    found = mime.view.part(raw, attachment.part_id)
    assert found is not None and found[0].filename == attachment.filename
    assert found[1] == b"data"


def test_a_character_split_across_two_words_is_whole() -> None:
    """Two adjacent words of one charset are one text: a GBK character whose two bytes
    are in different words survives."""
    data = s.GBK_NAME.encode("gbk")
    subject = f"{s.word('gb2312', data[:3])} {s.word('gb2312', data[3:])}"
    assert mime.view.of(s.message([f"Subject: {subject}"])).subject == s.GBK_NAME


@pytest.mark.parametrize("label", ["iso-2022-jp", "ISO-2022-JP", "csISO2022JP", "cp50220"])
def test_iso_2022_jp_bodies_hold_the_nec_characters(label: str) -> None:
    """A body in ISO-2022-JP holding ① (as Outlook writes it) decodes whole, no warning."""
    body = s.jis("会議①の件です。") + b"\r\n"
    view = mime.view.of(s.message([f"Content-Type: text/plain; charset={label}"], body))
    assert view.text == "会議①の件です。\r\n"
    assert view.warnings == []


@pytest.mark.parametrize(
    ("label", "text"),
    [("shift_jis", "日本語 ✓"), ("iso-2022-jp", "Grüße ✓"), ("us-ascii", "café ✓")],
)
def test_utf8_under_another_label_is_shown_as_utf8_with_a_warning(label: str, text: str) -> None:
    """Text in UTF-8 that is not valid in the charset it is labelled with is shown as
    UTF-8, body and subject, and the body says so."""
    data = text.encode("utf-8")
    raw = s.message(
        [f"Subject: {s.word(label, data)}", f"Content-Type: text/plain; charset={label}"],
        data + b"\r\n",
    )
    view = mime.view.of(raw)
    assert view.subject == text
    assert view.text == text + "\r\n"
    assert any("shown as UTF-8" in w for w in view.warnings), view.warnings


def test_mhtml_root_is_the_html_the_type_parameter_names() -> None:
    """multipart/related; type="text/html" without start, image first: the HTML is the
    body, its text the text, the image an inline part; search gets the text."""
    view = mime.view.of(s.mhtml("quarterly"))
    assert view.html is not None and "quarterly" in view.html
    assert view.text == "The quarterly report" and view.text_from_html
    assert [a.content_type for a in view.attachments] == ["image/png"]
    assert "quarterly" in mime.summary.full(s.mhtml("quarterly")).text


@st.composite
def related_messages(draw: st.DrawFn) -> tuple[bytes, str]:
    """A message whose multipart/related has its root somewhere among other parts, found
    by `start`, by `type`, or by being first; nested in a multipart/mixed or not. Returns
    the message and the word only its root's HTML holds."""
    before = draw(st.integers(0, 3))
    by = draw(st.sampled_from(["start", "type", "first"] if before == 0 else ["start", "type"]))
    alternative = draw(st.booleans())
    root = s.leaf("text/html; charset=utf-8", s.html("rootword"), "Content-ID: <root@x>")
    kind = "text/html"
    if alternative:
        root = s.multipart(
            "alternative",
            [
                s.leaf("text/plain", b"The rootword report\r\n"),
                s.leaf("text/html", s.html("rootword")),
            ],
            "alt",
            headers=["Content-ID: <root@x>"],
        )
        kind = "multipart/alternative"
    decoy = s.leaf("text/html", s.html("decoyword"), "Content-ID: <decoy@x>")
    others = [s.image(f"img{i}") for i in range(before)]
    if by == "start":  # an HTML part before the root: only `start` says which is which
        others.append(decoy)
    after = [s.image("late"), decoy][: draw(st.integers(0, 2))]
    params = {"start": '; start="<root@x>"', "type": f'; type="{kind}"', "first": ""}[by]
    related = s.multipart("related", [*others, root, *after], "rel", params)
    if draw(st.booleans()):
        pdf = s.leaf("application/pdf", b"%PDF\r\n", "Content-Disposition: attachment")
        parts = [pdf, related] if draw(st.booleans()) else [related, pdf]
        return s.multipart("mixed", parts, "mix"), "rootword"
    return related, "rootword"


@settings(max_examples=150, deadline=None)
@given(related_messages())
def test_related_root_wherever_it_is(case: tuple[bytes, str]) -> None:
    """Wherever the root of a multipart/related is and however it is named, its HTML is
    the HTML body, its words the text and the summary's, and no decoy is taken."""
    raw, marker = case
    view = mime.view.of(raw)
    assert view.html is not None and marker in view.html and "decoy" not in view.html
    assert view.text is not None and marker in view.text
    assert marker in mime.summary.full(raw).text


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the bodies email's decoders are asked for (Message.get_payload(decode=True))."""
    calls: list[int] = []
    real: Callable[..., Any] = email.message.Message.get_payload

    def get_payload(self: email.message.Message, i: Any = None, decode: bool = False) -> Any:
        if decode:
            calls.append(1)
        return real(self, i, decode)

    monkeypatch.setattr(email.message.Message, "get_payload", get_payload)
    return calls


def test_one_part_is_decoded_without_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    """A download of one of 300 base64 attachments decodes that one body only."""
    files = [
        s.leaf(
            "application/octet-stream",
            b"cGFydCBudW1iZXIg" + str(i).encode() + b"\r\n",
            "Content-Transfer-Encoding: base64",
            f'Content-Disposition: attachment; filename="f{i}.bin"',
        )
        for i in range(300)
    ]
    raw = s.multipart("mixed", [s.leaf("text/plain", b"Files.\r\n"), *files], "many")
    wanted = mime.view.of(raw).attachments[150]
    calls = counting(monkeypatch)
    found = mime.view.part(raw, wanted.part_id)
    assert found is not None and found[0].filename == "f150.bin"
    assert len(calls) == 1
