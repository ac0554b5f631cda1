"""MIME done right: charsets, nested multiparts and damaged messages (table-driven)."""

from __future__ import annotations

import base64
import email.header

import pytest

from relay import mime
from tests import mail


def encoded(subject: str, body: str, charset: str, cte: str = "8bit") -> bytes:
    """A text message with its subject and body in `charset`."""
    word = email.header.Header(subject, charset).encode()
    data = body.encode(charset)
    if cte == "base64":
        data = base64.encodebytes(data)
    return (
        f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {word}\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: text/plain; charset="{charset}"\r\n'
        f"Content-Transfer-Encoding: {cte}\r\n\r\n"
    ).encode() + data


CHARSETS = [
    ("utf-8", "Grüße aus Köln — ✓", "base64"),
    ("gbk", "你好，世界。季度报告", "8bit"),
    ("gb18030", "你好，世界 𠀀 €", "base64"),
    ("gb2312", "你好世界", "8bit"),
    ("big5", "臺灣繁體中文測試", "8bit"),
    ("shift_jis", "日本語のテキストです", "8bit"),
    ("iso-2022-jp", "日本語のメールです", "7bit"),
    ("euc-jp", "日本語のテキスト", "8bit"),
    ("euc-kr", "안녕하세요 세계", "8bit"),
    ("koi8-r", "Привет, мир! Отчёт", "8bit"),
    ("windows-1251", "Привет из Москвы", "8bit"),
    ("windows-1252", "Café “quoted” €5 – déjà vu", "8bit"),
    ("iso-8859-1", "Café déjà vu naïve", "8bit"),
    ("iso-8859-15", "Prix: 10 € ŒUVRE", "8bit"),
    ("iso-8859-2", "Zażółć gęślą jaźń", "8bit"),
    ("windows-1256", "مرحبا بالعالم", "8bit"),
    ("iso-8859-7", "Καλημέρα κόσμε", "8bit"),
    ("tis-620", "สวัสดีชาวโลก", "8bit"),
    ("utf-16", "UTF-16 text ✓", "base64"),
]


@pytest.mark.parametrize(("charset", "text", "cte"), CHARSETS, ids=[c[0] for c in CHARSETS])
def test_charsets_decode_body_and_subject(charset: str, text: str, cte: str) -> None:
    """Body and RFC 2047 subject in each charset decode exactly, without warnings."""
    view = mime.view.of(encoded(text, text, charset, cte))
    assert view.subject == text
    assert view.text is not None and view.text.strip() == text
    assert view.warnings == []
    assert mime.summary.full(encoded(text, text, charset, cte)).text.strip() == text


@pytest.mark.parametrize(
    ("label", "data", "text"),
    [
        ("gb2312", "喆".encode("gbk"), "喆"),  # a GBK character outside GB2312
        ("iso-8859-1", "€ – “x”".encode("cp1252"), "€ – “x”"),  # 1252 bytes labelled latin-1
        ("big5", "堃".encode("big5hkscs"), "堃"),  # an HKSCS character labelled Big5
        ("ks_c_5601-1987", "똠".encode("cp949"), "똠"),
    ],
)
def test_labels_decode_as_their_real_world_superset(label: str, data: bytes, text: str) -> None:
    """Labels decode as the superset browsers use, so their extra characters survive."""
    raw = (
        f"Subject: x\r\nContent-Type: text/plain; charset={label}\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + data
    view = mime.view.of(raw)
    assert view.text is not None and view.text.strip() == text
    assert view.warnings == []


def part(headers: str, body: bytes) -> bytes:
    """One MIME part."""
    return headers.replace("\n", "\r\n").encode() + b"\r\n" + body + b"\r\n"


DAMAGED = [
    (
        "unknown charset",
        b"Subject: s\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nplain words\r\n",
        "plain words",
        "unknown charset 'x-klingon'",
    ),
    (
        "bytes not in the charset",
        b"Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xe9 ok\r\n",
        "ok",
        "text is not valid utf-8",
    ),
    (
        "8-bit text declared ascii",
        b"Subject: s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\ncaf\xc3\xa9\r\n",
        "café",
        "8-bit text declared as us-ascii",
    ),
    (
        "missing boundary",
        b"Subject: s\r\nContent-Type: multipart/mixed\r\n\r\n--x\r\n\r\nthe body text\r\n--x--\r\n",
        "the body text",
        "no boundary in multipart",
    ),
    (
        "boundary never found",
        b"Subject: s\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--x\r\n\r\nlost text\r\n",
        "lost text",
        "start boundary not found",
    ),
    (
        "bad base64",
        b"Subject: s\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"aGVsbG8gd29ybGQ@@@!\r\n",
        "hello world",
        "invalid base64",
    ),
    (
        "no closing boundary",
        b"Subject: s\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\n\r\ncut off here",
        "cut off here",
        "close boundary not found",
    ),
]


@pytest.mark.parametrize(
    ("raw", "shown", "warning"), [d[1:] for d in DAMAGED], ids=[d[0] for d in DAMAGED]
)
def test_damaged_messages_are_shown_with_a_warning(raw: bytes, shown: str, warning: str) -> None:
    """A damaged message shows what text it has and says what is wrong."""
    view = mime.view.of(raw)
    assert view.text is not None and shown in view.text
    assert any(warning in w for w in view.warnings), view.warnings


@pytest.mark.parametrize(
    ("raw", "subject"),
    [
        (
            "Subject: 季度报告\r\n".encode("gbk")
            + b"Content-Type: text/plain; charset=gbk\r\n\r\nx",
            "季度报告",
        ),
        (b"Subject: caf\xc3\xa9 \xe2\x9c\x93\r\n\r\nx", "café ✓"),
        (b"Subject: =?x-unknown?B?w6k=?= tail\r\n\r\nx", "é tail"),
        (b"Subject: =?utf-8?q?caf=C3?=\r\n\r\nx", "caf\ufffd"),
        (b"Subject: Re: =?iso-8859-1?q?caf=E9?= ok\r\n\r\nx", "Re: café ok"),
        (b"Subject: =?koi8-r?b?8NLJ18XU?=\r\n\r\nx", "Привет"),
    ],
    ids=["raw-gbk", "raw-utf8", "unknown-charset-word", "broken-word", "mixed", "koi8-r-word"],
)
def test_odd_subjects_decode_as_well_as_can_be(raw: bytes, subject: str) -> None:
    """Raw 8-bit headers and broken encoded words still give a readable subject."""
    assert mime.view.of(raw).subject == subject
    assert mime.summary.full(raw).subject == subject


def nested() -> bytes:
    """mixed(related(alternative(text, html), image), pdf, forwarded message)."""
    return b"".join(
        [
            b"From: a@example.com\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n',
            b'Content-Type: multipart/related; boundary="r"\r\n\r\n--r\r\n',
            b'Content-Type: multipart/alternative; boundary="a"\r\n\r\n--a\r\n',
            part("Content-Type: text/plain; charset=koi8-r\n", "Текст письма".encode("koi8-r")),
            b"--a\r\n",
            part("Content-Type: text/html; charset=utf-8\n", b'<p>HTML <img src="cid:logo@x"></p>'),
            b"--a--\r\n--r\r\n",
            part(
                "Content-Type: image/png\nContent-ID: <logo@x>\n"
                "Content-Transfer-Encoding: base64\n",
                base64.encodebytes(mail.PNG),
            ),
            b"--r--\r\n--m\r\n",
            part(
                "Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n"
                "Content-Disposition: attachment;\n filename*0*=utf-8''%E6%8A%A5%E5%91%8A%20;\n"
                " filename*1*=2024.pdf\n",
                base64.encodebytes(mail.PDF),
            ),
            b"--m\r\n",
            part(
                "Content-Type: message/rfc822\n",
                b"Subject: Forwarded one\r\nFrom: c@example.com\r\n\r\ninner body\r\n",
            ),
            b"--m--\r\n",
        ]
    )


def test_nested_multiparts_give_text_html_and_every_attachment() -> None:
    """Text and HTML are found deep inside; image, RFC 2231 PDF and forwarded mail listed."""
    view = mime.view.of(nested())
    assert view.text is not None and view.text.strip() == "Текст письма"
    assert view.html is not None and "cid:logo@x" in view.html
    by_type = {a.content_type: a for a in view.attachments}
    assert by_type["image/png"].inline and by_type["image/png"].content_id == "logo@x"
    assert by_type["application/pdf"].filename == "报告 2024.pdf"
    assert by_type["message/rfc822"].filename == "Forwarded one.eml"
    assert view.cid_map == {"logo@x": by_type["image/png"].part_id}
    found = mime.view.part(nested(), by_type["application/pdf"].part_id)
    assert found is not None and found[1] == mail.PDF
    forwarded = mime.view.part(nested(), by_type["message/rfc822"].part_id)
    assert forwarded is not None and b"inner body" in forwarded[1]
    assert mime.summary.full(nested()).attachments == 2
    assert view.warnings == []


def test_html_only_message_gets_text_from_its_html() -> None:
    """With no text part the Text tab and search get the HTML's visible text, in lines."""
    raw = (
        b"Subject: h\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><head><style>p{}</style><title>T</title></head>"
        b"<body><p>First&nbsp;line</p><p>Second <b>line</b></p><script>x()</script></body></html>"
    )
    view = mime.view.of(raw)
    assert view.text_from_html
    assert view.text == "First line\n\nSecond line"
    assert mime.summary.full(raw).snippet == "First line Second line"


def test_raw_headers_are_the_header_block_as_received() -> None:
    """The raw header view is the header block, folded lines kept, body left out."""
    raw = b"Subject: one\r\nX-Long: a\r\n b\r\n\r\nbody here\r\n"
    view = mime.view.of(raw)
    assert view.raw_headers == "Subject: one\nX-Long: a\n b"
    assert ("X-Long", "a b") in view.headers


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"Subject: only headers",
        b"\x00\x01\x02\xff\xfe binary junk \x80\x81",
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--",
        b'Content-Type: text/plain; charset="\r\n\r\nx',
        b"Content-Type: text/plain; charset=utf-7\r\n\r\n+ZeVnLIqe-+AGE-+/v8-",
        b"Content-Type: message/rfc822\r\n\r\nnot really a message",
        b"Content-Type: application/octet-stream; name*=bogus''%ZZ\r\n\r\nx",
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=3",
        b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f\r\n#86)C\r\nend\r\n",
        b"Subject: =?utf-8?q?\xff\xfe?=\r\nFrom: =?\r\n\r\nx",
    ],
)
def test_garbage_never_raises(raw: bytes) -> None:
    """Whatever the bytes, view, summarize and part return instead of raising."""
    view = mime.view.of(raw)
    mime.summary.full(raw)
    for attachment in view.attachments:
        mime.view.part(raw, attachment.part_id)
    for text in (view.subject, view.text or "", view.html or "", *(v for _, v in view.headers)):
        text.encode("utf-8")  # no lone surrogates: the page can always be encoded


@pytest.mark.parametrize("depth", [99, 1000])
def test_deeply_nested_parts_are_shown_not_recursed_into(depth: int) -> None:
    """Nesting the email package can follow is parsed; deeper nesting (a thousand levels)
    is shown as text with a warning instead of exhausting the recursion limit."""
    from tests.hostile_mail import nested

    raw = nested(depth)
    view = mime.view.of(raw)
    assert mime.summary.full(raw).subject == view.subject == "deep"
    if depth < mime.view.MAX_MULTIPARTS:
        assert view.text == "innermost\r\n"
        assert mime.view.TOO_DEEP not in view.warnings
    else:
        assert view.text is not None and "innermost" in view.text
        assert mime.view.TOO_DEEP in view.warnings


@pytest.mark.parametrize(
    "spelling",
    [b"Content-Type: multipart/", b"CONTENT-TYPE: MULTIPART/", b"content-type:multipart/"],
)
def test_nesting_is_counted_whatever_the_spelling(spelling: bytes) -> None:
    """Multipart containers count towards the limit in any letter case and spacing."""
    from tests.hostile_mail import nested

    raw = nested(mime.view.MAX_MULTIPARTS + 1).replace(b"Content-Type: multipart/", spelling)
    assert mime.view.too_many_multiparts(raw)
    assert not mime.view.too_many_multiparts(nested(mime.view.MAX_MULTIPARTS - 1))
    assert mime.view.TOO_DEEP in mime.view.of(raw).warnings


def test_lone_surrogates_from_utf7_are_replaced() -> None:
    """UTF-7 can encode half a surrogate pair; no database can store it: U+FFFD instead."""
    raw = b"Subject: =?utf-7?q?+2AA-?=\r\nContent-Type: text/plain; charset=utf-7\r\n\r\n+2AA-x\r\n"
    summary = mime.summary.full(raw)
    assert summary.text == "\ufffdx\r\n"
    assert "\ud800" not in summary.subject
