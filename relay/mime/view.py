"""Raw message bytes → a view of the message: decoded headers, text, HTML, attachments.

Pure functions over the message's structure (structure.py), which is found without
decoding any body: a view decodes the parts it shows, a download the part it sends, a
summary (summary.py) the start of the text it keeps. Headers are decoded by headers.py,
bodies by charsets.py. Nothing here raises on bad input: a broken charset, a missing
boundary or bad base64 yields the best text that can be had and a warning saying what
was wrong.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser

from relay.mime import charsets, headers
from relay.mime.headers import clean, header
from relay.mime.htmltext import html_to_text
from relay.mime.structure import Part, Tree, scan

log = logging.getLogger(__name__)

TOO_DEEP = "malformed message: too many nested parts to follow: shown as text"
MAX_MULTIPARTS = 100
"""More multipart containers than this and the body is shown as text, not parsed."""
_MULTIPART = re.compile(rb"content-type:\s*multipart/")
"""Searched for in the lower-cased message: lower() and a case-sensitive search take a
fifth of the time re.IGNORECASE does (2 ms instead of 12 for 1 MB)."""
_IDENTITY = ("", "7bit", "8bit", "binary")
_UNREADABLE = "malformed message: its structure could not be read: shown as text"
_HEADER_END = re.compile(rb"\r?\n\r?\n")


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
    text_part: str | None = None
    """The part id `text` was decoded from (the HTML part's when made from it)."""
    html_part: str | None = None
    """The part id `html` was decoded from."""

    @property
    def cid_map(self) -> dict[str, str]:
        """Content-ID (without angle brackets) → part id, for rewriting `cid:` URLs."""
        return {a.content_id: a.part_id for a in self.attachments if a.content_id}


def parse_headers(raw: bytes) -> Message:
    """The header section of a raw message, parsed (cheap for large messages)."""
    return BytesHeaderParser(policy=policy.compat32).parsebytes(raw)


def too_many_multiparts(raw: bytes) -> bool:
    """Whether `raw` declares more multipart containers than may be nested safely."""
    found = _MULTIPART.finditer(raw.lower())
    return any(index >= MAX_MULTIPARTS for index, _ in enumerate(found))


def structure(raw: bytes) -> Tree:
    """The parts of `raw` (when it nests too many, its headers and its body as one).
    Never raises: were the scan to fail, the message is one text part, with a warning."""
    try:
        return scan(raw, flat=too_many_multiparts(raw))
    except Exception:  # a bug must not cost the message its page, nor its sender a 451
        log.warning("could not read a message's structure; shown as text", exc_info=True)
        return _unread(raw)


def _unread(raw: bytes) -> Tree:
    """`raw` as one text part after its header block, as far as that can be found."""
    end = _HEADER_END.search(raw)
    body = end.end() if end else len(raw)
    root = Part("0", 0, body, len(raw), "text/plain", raw[:body])
    return Tree(raw, len(raw), [root], [_UNREADABLE])


def _words(defect: object) -> str:
    name = type(defect).__name__.removesuffix("Defect")
    return "malformed message: " + re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


def _payload(tree: Tree, part: Part, warnings: list[str], limit: int = 0) -> bytes:
    """The body of a leaf part with its transfer encoding undone; with `limit`, of its
    first `limit` bytes at most (cut at a line end, else where base64 can be cut)."""
    data = tree.body(part)
    if limit and len(data) > limit:
        data = data[: data.rfind(b"\n", 0, limit) + 1 or limit - limit % 4]
    encoding = str(part.headers.get("content-transfer-encoding", "")).strip().lower()
    if encoding in _IDENTITY:
        return data
    carrier = Message()  # email's decoders, on this part's bytes only
    carrier["Content-Transfer-Encoding"] = encoding
    carrier.set_payload(data.decode("ascii", errors="surrogateescape"))
    try:
        decoded = carrier.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a decoder that gives up: keep the encoded bytes
        decoded = data
    for defect in carrier.defects:
        if _words(defect) not in warnings:
            warnings.append(_words(defect))
    return decoded if isinstance(decoded, bytes) else data


def _charset(part: Part) -> str | None:
    try:
        return part.headers.get_content_charset()
    except Exception:  # noqa: BLE001 - a broken parameter: no charset
        return None


def _text(tree: Tree, part: Part, warnings: list[str], limit: int = 0) -> str:
    """The decoded text of a text/* part, falling back as needed."""
    decoded = charsets.decode(_payload(tree, part, warnings, limit), _charset(part))
    if decoded.warning and decoded.warning not in warnings:
        warnings.append(decoded.warning)
    return decoded.text


def _fallback_charset(tree: Tree) -> str | None:
    """The first charset declared in the message: the best guess for raw 8-bit headers."""
    for part in tree.parts:
        charset = _charset(part)
        if charset:
            return charset
    return None


def header_charset(tree: Tree) -> str | None:
    """The charset raw 8-bit bytes in the message's headers are read in, when they are not
    UTF-8: the first one the message declares (None when its headers are ASCII)."""
    if any(charsets.has_surrogates(str(v)) for _, v in tree.root.headers.raw_items()):
        return _fallback_charset(tree)
    return None


def _content_id(part: Part) -> str:
    return clean(str(part.headers.get("content-id", ""))).strip("<> ")


def _disposition(part: Part) -> str | None:
    return part.headers.get_content_disposition()


def _related_root(related: Part) -> Part | None:
    """The root of a multipart/related (RFC 2387): the part `start` names, else the first;
    when the first is not of the `type` the parameters give, the first part that is (as
    mail clients do with MHTML whose image comes first)."""
    if not related.children:
        return None
    start = (headers.param(related.headers, "start") or "").strip().strip("<>").strip()
    for child in related.children if start else ():
        if _content_id(child) == start:
            return child
    first = related.children[0]
    kind = (headers.param(related.headers, "type") or "").strip().lower()
    if kind and first.content_type != kind:
        return next((c for c in related.children if c.content_type == kind), first)
    return first


def _bodies(part: Part, subtype: str) -> Iterator[Part]:
    """Parts that may be the body of type text/`subtype`, best first (as email's get_body,
    with RFC 2387's root)."""
    maintype, _, sub = part.content_type.partition("/")
    if maintype not in ("text", "multipart") or _disposition(part) == "attachment":
        return
    if maintype == "text":
        if sub == subtype:
            yield part
    elif sub == "related":
        root = _related_root(part)
        if root is not None:
            yield from _bodies(root, subtype)
    else:
        for child in part.children:
            yield from _bodies(child, subtype)


@dataclass(frozen=True)
class Texts:
    text: str | None
    html: str | None
    from_html: bool = False
    text_part: str | None = None
    html_part: str | None = None


def texts(tree: Tree, warnings: list[str], limit: int = 0) -> Texts:
    """The text and HTML bodies of a message (text made from the HTML when there is none)."""
    plain = next(_bodies(tree.root, "plain"), None)
    rich = next(_bodies(tree.root, "html"), None)
    text = _text(tree, plain, warnings, limit) if plain else None
    html = _text(tree, rich, warnings, limit) if rich else None
    if plain is None and rich is None and tree.root.unparsed:
        shown = tree.body(tree.root).decode("ascii", errors="surrogateescape")
        return Texts(charsets.repair(shown, _fallback_charset(tree)), None)
    if plain is None and rich is not None and html is not None:
        return Texts(html_to_text(html, keep_lines=True), html, True, rich.part_id, rich.part_id)
    return Texts(
        text, html, False, plain.part_id if plain else None, rich.part_id if rich else None
    )


def _is_attachment(part: Part, filename: str) -> bool:
    """Whether a part (declaring `filename`) is listed as an attachment or inline part."""
    if part.content_type == "message/rfc822":
        return True
    if part.maintype in ("multipart", "message") and part.children:
        return False
    if _disposition(part) == "attachment" or filename:
        return True
    if part.headers.get("content-id") and part.maintype != "text":
        return True
    return part.maintype not in ("text", "multipart", "message")


def _filename(part: Part, declared: str) -> str:
    """The name shown for an attachment: the one it declares, or a forwarded message's
    subject."""
    if not declared and part.content_type == "message/rfc822":
        inner = part.children[0].headers if part.children else None
        subject = header(inner, "Subject") if inner is not None else ""
        declared = f"{subject or 'message'}.eml"
    return clean(declared)


def _declared_name(part: Part) -> str:
    """The file name a part declares ("" for a multipart; the header block is looked at
    before its parameters are parsed, which costs more)."""
    if part.maintype == "multipart" or b"name" not in part.block.lower():
        return ""
    return headers.filename(part.headers)


def _attachment(tree: Tree, part: Part, declared: str, warnings: list[str] | None) -> Attachment:
    """The Attachment of a part; its size is decoded unless `warnings` is None."""
    content_id = _content_id(part)
    return Attachment(
        part_id=part.part_id,
        filename=_filename(part, declared),
        content_type=part.content_type,
        size=0 if warnings is None else len(_contents(tree, part, warnings)),
        content_id=content_id,
        inline=_disposition(part) != "attachment" and bool(content_id),
    )


def _contents(tree: Tree, part: Part, warnings: list[str]) -> bytes:
    """What downloading a part gives: its decoded body (a message/* part's whole message)."""
    if part.children:
        return tree.raw[part.body : part.end]
    return _payload(tree, part, warnings)


def attachments(tree: Tree, warnings: list[str] | None) -> list[Attachment]:
    """The attachments of a message; with `warnings` None their bodies are not decoded
    (size 0)."""
    found = []
    for part in tree.parts:
        declared = _declared_name(part)
        if _is_attachment(part, declared):
            found.append(_attachment(tree, part, declared, warnings))
    return found


def of(raw: bytes, tree: Tree | None = None) -> MessageView:
    """The full decoded view of a raw message (whose structure is `tree` when known)."""
    try:
        return _view(raw, tree or structure(raw))
    except Exception:  # whatever went wrong, the page shows what it can
        log.warning("could not read a message; shown as text", exc_info=True)
        return _view(raw, _unread(raw))


def _view(raw: bytes, tree: Tree) -> MessageView:
    warnings: list[str] = []
    top, fallback = tree.root.headers, header_charset(tree)
    bodies = texts(tree, warnings)
    found = attachments(tree, warnings)
    return MessageView(
        subject=header(top, "Subject", fallback),
        from_=header(top, "From", fallback),
        to=header(top, "To", fallback),
        cc=header(top, "Cc", fallback),
        date=header(top, "Date", fallback),
        message_id=header(top, "Message-ID").strip("<> "),
        headers=headers.decoded(top, fallback),
        text=bodies.text,
        html=bodies.html,
        attachments=found,
        warnings=tree.defects + warnings,
        raw_headers=headers.raw_block(raw),
        text_from_html=bodies.from_html,
        text_part=bodies.text_part,
        html_part=bodies.html_part,
    )


Found = tuple[Attachment, bytes]
"""A part as a download: what it is, and its decoded bytes."""


def part(raw: bytes, part_id: str) -> Found | None:
    """Part `part_id` of a raw message (an attachment, or a body part: anything but a
    multipart) with its decoded bytes, or None. Only that part is decoded."""
    return part_in(structure(raw), part_id)


def part_in(tree: Tree, part_id: str) -> Found | None:
    """Part `part_id` of the message `tree` is the structure of, as `part` gives it."""
    found = tree.find(part_id)
    if found is None or found.maintype == "multipart":
        return None
    data = _contents(tree, found, [])
    described = _attachment(tree, found, _declared_name(found), None)
    return dataclasses.replace(described, size=len(data)), data
