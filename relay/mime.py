"""Raw message bytes → a view of the message: decoded headers, text, HTML, attachments.

Pure functions over `email` with `policy.default`. Nothing here raises on bad input:
a broken charset, a missing boundary or bad base64 yields the best text that can be had
and a warning saying what was wrong.
"""

from __future__ import annotations

import email
import email.feedparser
import email.header
import email.parser
import re
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message

from relay import charsets
from relay.htmltext import html_to_text
from relay.skeleton import skeleton

__all__ = [
    "Attachment",
    "MessageView",
    "Summary",
    "clean",
    "header",
    "html_to_text",
    "parse",
    "part",
    "summarize",
    "view",
]

SNIPPET_LENGTH = 250
TEXT_LIMIT = 64 * 1024
PARSE_IN_THREAD = 256 * 1024
"""Callers parse messages larger than this in a worker thread, off the event loop."""
"""Characters of body text kept on the message for search."""

TOO_DEEP = "malformed message: too many nested parts to follow: shown as text"
MAX_MULTIPARTS = 100
"""More multipart containers than this and the body is shown as text, not parsed."""
_MULTIPART = re.compile(rb"content-type:\s*multipart/")
"""Searched for in the lower-cased message: lower() and a case-sensitive search take a
fifth of the time re.IGNORECASE does (2 ms instead of 12 for 1 MB)."""
FEED_SIZE = 64 * 1024
"""Bytes handed to the parser at a time."""

_WS = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class Summary:
    """The few fields kept on the message row for lists and search."""

    subject: str
    from_: str
    to: str
    cc: str
    message_id: str
    attachments: int
    snippet: str
    text: str = ""
    """The body as plain text (HTML converted), at most TEXT_LIMIT characters."""


@dataclass(frozen=True)
class Attachment:
    """One attachment or inline part; `part_id` addresses it within the message."""

    part_id: str
    filename: str
    content_type: str
    size: int
    content_id: str
    inline: bool


@dataclass(frozen=True)
class MessageView:
    """Everything a page shows about one message, decoded."""

    subject: str
    from_: str
    to: str
    cc: str
    date: str
    message_id: str
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    attachments: list[Attachment]
    warnings: list[str] = field(default_factory=list)
    raw_headers: str = ""
    text_from_html: bool = False
    """True when there is no text part and `text` was made from the HTML."""

    @property
    def cid_map(self) -> dict[str, str]:
        """Content-ID (without angle brackets) → part id, for rewriting `cid:` URLs."""
        return {a.content_id: a.part_id for a in self.attachments if a.content_id}


def parse(raw: bytes) -> EmailMessage:
    """Parse raw bytes into an EmailMessage (policy.default); never raises on bad MIME.

    The bytes are fed to the parser in slices: `email.message_from_bytes` would first make
    one string of the whole message and a StringIO over it (four bytes per character),
    about eight times the message size at its peak.
    """
    parser = email.feedparser.BytesFeedParser(policy=policy.default)
    view = memoryview(raw)
    for start in range(0, len(raw), FEED_SIZE):
        parser.feed(bytes(view[start : start + FEED_SIZE]))
    msg = parser.close()
    assert isinstance(msg, EmailMessage)
    return msg


def parse_headers(raw: bytes) -> EmailMessage:
    """Parse only the header block (cheap for large messages)."""
    msg = email.parser.BytesHeaderParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def clean(text: str) -> str:
    """Fold white space, drop control characters and undecoded bytes, for one-line display."""
    text = charsets.repair(text)
    return _WS.sub(" ", _CONTROL.sub("", text)).strip()


def _fallback_charset(msg: Message) -> str | None:
    """The first charset declared in the message: the best guess for raw 8-bit headers."""
    for part in msg.walk():
        charset = part.get_param("charset")
        if isinstance(charset, str):
            return charset
    return None


def decode_words(raw_value: str, fallback: str | None = None) -> str:
    """Decode raw 8-bit bytes and RFC 2047 encoded words in a header value, as far as can be."""
    value = charsets.repair(raw_value, fallback)
    try:
        pieces = email.header.decode_header(value)
    except Exception:  # noqa: BLE001 - broken encoded words: show them raw
        return clean(value)
    out: list[str] = []
    for chunk, label in pieces:
        if isinstance(chunk, str):
            out.append(chunk)
        else:
            out.append(charsets.decode(chunk, label).text)
    return clean("".join(out))


def _value(raw_value: str, fallback: str | None) -> str:
    if charsets.has_surrogates(raw_value) or "=?" in raw_value:
        return decode_words(raw_value, fallback)
    return clean(raw_value)


def header(msg: Message, name: str, fallback: str | None = None) -> str:
    """The decoded value of header `name` ("" when absent), even when it is malformed."""
    for key, raw_value in msg.raw_items():
        if key.lower() != name.lower():
            continue
        if charsets.has_surrogates(str(raw_value)):
            return _value(str(raw_value), fallback or _fallback_charset(msg))
        try:
            return clean(str(msg.get(name)))
        except Exception:  # noqa: BLE001 - malformed headers must never break a page
            return _value(str(raw_value), fallback)
    return ""


def _decoded_headers(msg: Message) -> list[tuple[str, str]]:
    fallback = _fallback_charset(msg)
    out = []
    for key, raw_value in msg.raw_items():
        value = str(raw_value)
        if charsets.has_surrogates(value):
            out.append((key, _value(value, fallback)))
            continue
        try:
            out.append((key, clean(str(msg.policy.header_fetch_parse(key, value)))))
        except Exception:  # noqa: BLE001
            out.append((key, _value(value, fallback)))
    return out


def _raw_headers(raw: bytes) -> str:
    match = _HEADER_END.search(raw)
    block = raw[: match.start()] if match else raw
    return charsets.decode(block, "utf-8").text.replace("\r\n", "\n")


def _payload(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes()
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a decoder that gives up: keep the encoded bytes
        payload = str(part.get_payload()).encode("ascii", errors="surrogateescape")
    return payload if isinstance(payload, bytes) else b""


def _part_text(part: Message, warnings: list[str]) -> str:
    """The decoded text of a text/* part, falling back as needed."""
    decoded = charsets.decode(_payload(part), part.get_content_charset())
    if decoded.warning and decoded.warning not in warnings:
        warnings.append(decoded.warning)
    return decoded.text


def _is_attachment(part: Message) -> bool:
    if part.get_content_type() == "message/rfc822":
        return True
    if part.is_multipart():
        return False
    disposition = part.get_content_disposition()
    if disposition == "attachment" or part.get_filename():
        return True
    if part.get("Content-ID") and part.get_content_maintype() != "text":
        return True
    return part.get_content_maintype() not in ("text", "multipart", "message")


def _walk(msg: Message) -> list[tuple[str, Message]]:
    """Every part with its id: the position in a depth-first walk ("0" is the message)."""
    return [(str(i), part) for i, part in enumerate(msg.walk())]


def _filename(part: Message) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:  # noqa: BLE001 - a broken RFC 2231 parameter
        name = ""
    if not name and part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        subject = header(first, "Subject") if isinstance(first, Message) else ""
        name = f"{subject or 'message'}.eml"
    return clean(name)


def _attachments(msg: Message, sizes: bool = True) -> list[Attachment]:
    """The attachments of `msg`; without `sizes` their payloads are not decoded (size 0)."""
    out = []
    for part_id, part in _walk(msg):
        if not _is_attachment(part):
            continue
        content_id = header(part, "Content-ID").strip("<> ")
        out.append(
            Attachment(
                part_id=part_id,
                filename=_filename(part),
                content_type=part.get_content_type(),
                size=len(_payload(part)) if sizes else 0,
                content_id=content_id,
                inline=part.get_content_disposition() != "attachment" and bool(content_id),
            )
        )
    return out


def _body(msg: EmailMessage, subtype: str, warnings: list[str]) -> str | None:
    try:
        part = msg.get_body(preferencelist=(subtype,))
    except Exception:  # noqa: BLE001
        part = None
    if part is None:
        return None
    return _part_text(part, warnings)


def _unparsed_multipart(msg: EmailMessage, warnings: list[str]) -> str | None:
    """A multipart whose parts could not be found (no boundary): its body as text."""
    if msg.get_content_maintype() != "multipart" or msg.is_multipart():
        return None
    payload = msg.get_payload()
    text = payload if isinstance(payload, str) else ""
    return charsets.repair(text, _fallback_charset(msg))


def _defects(msg: Message) -> list[str]:
    found: list[str] = []
    for part in msg.walk():
        for defect in getattr(part, "defects", []):
            name = type(defect).__name__.removesuffix("Defect")
            words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()
            if words not in found:
                found.append(words)
    return [f"malformed message: {d}" for d in found]


def _texts(msg: EmailMessage, warnings: list[str]) -> tuple[str | None, str | None, bool]:
    """(text, html, text_from_html) of a parsed message."""
    text = _body(msg, "plain", warnings)
    html = _body(msg, "html", warnings)
    if text is None and html is None:
        text = _unparsed_multipart(msg, warnings)
    if text is None and html is not None:
        return html_to_text(html, keep_lines=True), html, True
    return text, html, False


def parse_flat(raw: bytes) -> EmailMessage:
    """The header section parsed and the rest kept as one body, unparsed: for a message
    whose parts are nested deeper than Python's recursion limit lets the email package go."""
    parser = email.parser.BytesParser(policy=policy.default)
    msg = parser.parsebytes(raw, headersonly=True)
    assert isinstance(msg, EmailMessage)
    return msg


def too_many_multiparts(raw: bytes) -> bool:
    """Whether `raw` declares more multipart containers than may be nested safely: the
    email package recurses once per level, and a hostile message nests a thousand."""
    found = _MULTIPART.finditer(raw.lower())
    return any(index >= MAX_MULTIPARTS for index, _ in enumerate(found))


def summarize(raw: bytes) -> Summary:
    """The summary row's fields of a raw message (of a large one, from its skeleton: the
    structure and the start of each part, which is all a summary shows)."""
    shape = skeleton(raw)
    try:
        if not too_many_multiparts(shape):
            return _summary(parse(shape))
    except RecursionError:
        pass
    return _summary(parse_flat(shape))


def _summary(msg: EmailMessage) -> Summary:
    warnings: list[str] = []
    text, _html, _derived = _texts(msg, warnings)
    text = (text or "")[:TEXT_LIMIT]
    return Summary(
        subject=header(msg, "Subject"),
        from_=header(msg, "From"),
        to=header(msg, "To"),
        cc=header(msg, "Cc"),
        message_id=header(msg, "Message-ID").strip("<> "),
        attachments=sum(1 for a in _attachments(msg, sizes=False) if not a.inline),
        snippet=clean(text[: SNIPPET_LENGTH * 4])[:SNIPPET_LENGTH],
        text=text,
    )


def view(raw: bytes) -> MessageView:
    """The full decoded view of a raw message."""
    try:
        if not too_many_multiparts(raw):
            return _view(raw, parse(raw), [])
    except RecursionError:
        pass
    return _view(raw, parse_flat(raw), [TOO_DEEP])


def _view(raw: bytes, msg: EmailMessage, warnings: list[str]) -> MessageView:
    text, html, derived = _texts(msg, warnings)
    attachments = _attachments(msg)  # decodes payloads, so defects are known after it
    return MessageView(
        subject=header(msg, "Subject"),
        from_=header(msg, "From"),
        to=header(msg, "To"),
        cc=header(msg, "Cc"),
        date=header(msg, "Date"),
        message_id=header(msg, "Message-ID").strip("<> "),
        headers=_decoded_headers(msg),
        text=text,
        html=html,
        attachments=attachments,
        warnings=_defects(msg) + warnings,
        raw_headers=_raw_headers(raw),
        text_from_html=derived,
    )


def part(raw: bytes, part_id: str) -> tuple[Attachment, bytes] | None:
    """The attachment `part_id` of a raw message with its decoded bytes, or None (also
    when the parts are nested too deep to follow)."""
    if too_many_multiparts(raw):
        return None
    try:
        msg = parse(raw)
        for attachment in _attachments(msg):
            if attachment.part_id == part_id:
                found = dict(_walk(msg))[part_id]
                return attachment, _payload(found)
    except RecursionError:
        pass
    return None
