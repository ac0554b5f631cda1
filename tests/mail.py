"""Sample messages for the tests, and the form smtplib puts them in on the wire."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import make_msgid

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n\x00\xff\xfe binary \x80\n%%EOF\n"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99"
    b"=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)
CHINESE_SUBJECT = "季度报告：销售数据"
GBK_TEXT = "你好，世界。这是用GBK编码的正文。"


def wire_form(data: bytes) -> bytes:
    """What the server receives for bytes sent with smtplib: as given, ending in CRLF."""
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def plain() -> bytes:
    """A plain-text message with a line that needs dot-stuffing on the wire."""
    return (
        b"From: Alice <alice@example.com>\r\n"
        b"To: Bob <bob@example.org>\r\n"
        b"Subject: Plain hello\r\n"
        b"Message-ID: <plain-1@example.com>\r\n"
        b"\r\n"
        b"Hello Bob,\r\n"
        b".leading dot survives\r\n"
        b"\r\n"
        b"-- Alice\r\n"
    )


def chinese_alternative() -> bytes:
    """multipart/alternative: RFC 2047 UTF-8 subject, a GBK text part and an HTML part."""
    msg = EmailMessage()
    msg["From"] = "张三 <zhang@example.cn>"
    msg["To"] = "li@example.com"
    msg["Subject"] = CHINESE_SUBJECT
    msg.set_content(GBK_TEXT, charset="gbk")
    msg.add_alternative("<p>你好，<b>世界</b></p>", subtype="html", charset="utf-8")
    data = msg.as_bytes(policy=policy.SMTP)
    assert b"=?utf-8?" in data and b'charset="gbk"' in data
    return data


def with_attachments() -> bytes:
    """HTML with an inline cid: image, a text part, and a PDF attachment."""
    cid = make_msgid(domain="example.com")
    msg = EmailMessage()
    msg["From"] = "reports@example.com"
    msg["To"] = "ops@example.com"
    msg["Subject"] = "Monthly report"
    msg.set_content("See the attached report.")
    msg.add_alternative(f'<p>Logo: <img src="cid:{cid[1:-1]}" alt="logo"></p>', subtype="html")
    html_part = msg.get_payload()[1]
    html_part.add_related(
        PNG, maintype="image", subtype="png", cid=cid, filename="logo.png", disposition="inline"
    )
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="report.pdf")
    return msg.as_bytes(policy=policy.SMTP)
