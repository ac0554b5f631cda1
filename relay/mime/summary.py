"""The summary row's fields of a raw message, reading only what they need (pure).

Most mail that arrives in bulk is a single text/plain part with plain ASCII headers. For
such a message the header block is scanned for the few headers the row keeps, the common
header forms are decoded directly, and the body is decoded in one step: no parse tree, no
object per header. Everything else (multipart mail, attachments, base64 bodies, 8-bit or
RFC 2047 headers, anything unusual) goes through the full MIME parse, `full`.
Both roads give the same Summary; tests/test_summary.py checks it on a table of messages.
"""

from __future__ import annotations

import logging
import quopri
import re
from dataclasses import dataclass
from email.message import Message

from relay.mime import charsets, headers, view
from relay.mime.headers import clean, header
from relay.mime.structure import Tree

log = logging.getLogger(__name__)

SNIPPET_LENGTH = 250
TEXT_LIMIT = 64 * 1024
"""Characters of body text kept on the message for search."""
SUMMARY_READ = 256 * 1024
"""Bytes of the text body a summary decodes: base64 of this size holds well over TEXT_LIMIT."""


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
    tags: str = ""
    """The X-Tags header, as written (relay.tagging reads the tags from it)."""


_HEADER_END = re.compile(rb"\r?\n\r?\n")
# One header field: a name of printable ASCII without colon, its value, folded lines.
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+):[ \t]*([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)(?:\r?\n|\Z)")
_UNFOLD = re.compile(r"\r?\n")
_KEPT = {
    b"subject",
    b"from",
    b"to",
    b"cc",
    b"message-id",
    b"content-type",
    b"content-transfer-encoding",
    b"content-disposition",
    b"x-tags",
}
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_ADDR = rf"{_DOT_ATOM}@{_DOT_ATOM}"
# "addr", "<addr>" and "Words Of Atext <addr>": what email's parser renders unchanged
# (the name's white space folded, brackets dropped around a bare address).
_BARE = re.compile(rf"[ \t]*(?:({_ADDR})|<({_ADDR})>)[ \t]*")
_NAMED = re.compile(rf"[ \t]*({_ATEXT}(?:[ \t]+{_ATEXT})*)[ \t]*<({_ADDR})>[ \t]*")
_MSG_ID = re.compile(rf"<{_ADDR}>")
_TEXT_PLAIN = re.compile(r"\s*text/plain\s*(?:;(.*))?", re.IGNORECASE | re.DOTALL)
_PARAM = re.compile(r'\s*([A-Za-z0-9-]+)\s*=\s*("[^"\\]*"|[^;\s"]+)\s*(?:;|$)')
_IDENTITY = {"", "7bit", "8bit", "binary"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # what headers.clean drops
QUICK_MAX = SUMMARY_READ
"""Larger messages are left to `full`, which reads at most this of a text body."""


def _fields(block: bytes) -> dict[bytes, bytes] | None:
    """The first value of each kept header, or None when a line is not a header field."""
    found: dict[bytes, bytes] = {}
    pos, end = 0, len(block)
    while pos < end:
        match = _FIELD.match(block, pos)
        if match is None:
            return None
        name = match[1].lower()
        if name in _KEPT and name not in found:
            found[name] = match[2]
        pos = match.end()
    return found


def _address(value: str) -> str | None:
    """An address header of the simple forms, as email's parser renders it; else None."""
    match = _BARE.fullmatch(value)
    if match:
        return match[1] or match[2]
    match = _NAMED.fullmatch(value)
    if match and "=?" not in match[1]:
        return f"{' '.join(match[1].split())} <{match[2]}>"
    return None


def _header(name: str, value: str) -> str:
    """A header value decoded as `headers.header` does, taking the short way when it can."""
    if "=?" not in value:
        unfolded = _UNFOLD.sub("", value) if "\n" in value else value
        if name in ("from", "to", "cc"):
            simple = _address(unfolded)
            if simple is not None:
                return simple
        elif name in ("subject", "x-tags"):  # unstructured: text as written
            return _clean(unfolded)
        elif name == "message-id" and _MSG_ID.fullmatch(value):
            return value
    return headers.value(name, value)


def _charset(content_type: str | None) -> tuple[bool, str | None]:
    """(whether this is a text/plain part with plain parameters, its charset label)."""
    if content_type is None:
        return True, None
    match = _TEXT_PLAIN.fullmatch(content_type)
    if match is None:
        return False, None
    charset = None
    params = (match[1] or "").strip()
    pos = 0
    while pos < len(params):
        param = _PARAM.match(params, pos)
        if param is None or param.end() == pos:
            return False, None
        key = param[1].lower()
        if key == "name":  # a file name makes the part an attachment
            return False, None
        if key == "charset":
            charset = param[2].strip('"').lower()
        pos = param.end()
    return True, charset


def _clean(text: str) -> str:
    """clean of text without undecoded bytes; in one pass when there is no control
    character to drop (a CR before LF dropped or taken as white space gives the same, and
    str.split and re's \\s both follow str.isspace)."""
    text = text.replace("\r\n", "\n")
    return clean(text) if _CONTROL.search(text) else " ".join(text.split())


def quick(raw: bytes) -> Summary | None:
    """The summary of a single-part text/plain message with plain headers, else None.

    Large messages (over QUICK_MAX) are left to `full`, which bounds what it reads
    of a big body."""
    if len(raw) > QUICK_MAX:
        return None
    split = _HEADER_END.search(raw)
    if split is None or raw.startswith((b"\r\n", b"\n")):
        return None
    fields = _fields(raw[: split.start()])
    if fields is None or b"content-disposition" in fields:
        return None
    try:
        values = {k.decode(): v.decode("ascii") for k, v in fields.items()}
    except UnicodeDecodeError:  # 8-bit headers: the full parse knows what to do
        return None
    plain, charset = _charset(values.get("content-type"))
    encoding = values.get("content-transfer-encoding", "").strip().lower()
    if not plain or (encoding not in _IDENTITY and encoding != "quoted-printable"):
        return None
    body = raw[split.end() :]
    if encoding == "quoted-printable":
        body = quopri.decodestring(body)
    # As the full parse: decoded as declared (or guessed), never raising; no undecoded
    # bytes are left in it, so _clean may skip clean's repair step.
    text = charsets.decode(body, charset).text[:TEXT_LIMIT]
    header = {n: _header(n, values[n]) if n in values else "" for n in _HEADERS}
    return Summary(
        subject=header["subject"],
        from_=header["from"],
        to=header["to"],
        cc=header["cc"],
        message_id=header["message-id"].strip("<> "),
        attachments=0,
        snippet=_clean(text[: SNIPPET_LENGTH * 4])[:SNIPPET_LENGTH],
        text=text,
        tags=header["x-tags"],
    )


_HEADERS = ("subject", "from", "to", "cc", "message-id", "x-tags")


def summarize(raw: bytes) -> Summary:
    """The summary row's fields of a raw message: the short way when possible. Never
    raises: reading a message never decides whether it is stored."""
    try:
        found = quick(raw)
    except Exception:  # the full road reads what can be read
        log.warning("the quick summary failed; reading the message in full", exc_info=True)
        found = None
    return found or full(raw)


def full(raw: bytes) -> Summary:
    """The summary row's fields of a raw message (of its text, the first SUMMARY_READ
    bytes). Never raises: what cannot be read is left empty and logged."""
    try:
        return _full(view.structure(raw))
    except Exception:  # a summary never decides whether mail is stored
        log.warning("could not read the message's summary; kept what could be read", exc_info=True)
        return _salvage(raw)


def _full(tree: Tree) -> Summary:
    top, fallback = tree.root.headers, view.header_charset(tree)
    texts = view.texts(tree, [], SUMMARY_READ)
    text = (texts.text or "")[:TEXT_LIMIT]
    return Summary(
        subject=header(top, "Subject", fallback),
        from_=header(top, "From", fallback),
        to=header(top, "To", fallback),
        cc=header(top, "Cc", fallback),
        message_id=header(top, "Message-ID").strip("<> "),
        attachments=sum(1 for a in view.attachments(tree, None) if not a.inline),
        snippet=clean(text[: SNIPPET_LENGTH * 4])[:SNIPPET_LENGTH],
        text=text,
        tags=header(top, "X-Tags", fallback),
    )


def _salvage(raw: bytes) -> Summary:
    """The header fields that can be read one by one, when the message as a whole cannot."""
    try:
        top = view.parse_headers(raw)
    except Exception:  # noqa: BLE001
        top = Message()

    def read(name: str) -> str:
        try:
            return header(top, name)
        except Exception:  # noqa: BLE001
            return ""

    fields = ("Subject", "From", "To", "Cc", "Message-ID", "X-Tags")
    subject, from_, to, cc, message_id, tags = (read(name) for name in fields)
    return Summary(subject, from_, to, cc, message_id.strip("<> "), 0, "", tags=tags)
