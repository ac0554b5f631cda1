"""Messages as Mailpit's API shapes them (field names and types of its swagger), from our
store rows and MIME views. Each shape is described once (web/api/oas.py's `Shape`): the
objects the routes answer with and the schemas of the OpenAPI document both come from it.
Pure functions; the routes fetch, these shape.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime

from relay import mime
from relay.store import Counts, MessageRow
from web.api.oas import (
    BOOLEAN,
    INTEGER,
    JSON,
    STRING,
    STRINGS,
    TIME,
    Field,
    Shape,
    array,
    described,
)


def timestamp(epoch: float) -> str:
    """An epoch as RFC 3339 UTC with milliseconds, as Mailpit's Created and Date."""
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


ADDRESS: Shape[tuple[str, str]] = Shape(
    "Address",
    (Field("Name", STRING, lambda a: a[0]), Field("Address", STRING, lambda a: a[1])),
)
"""A (display name, address) pair."""

ATTACHMENT: Shape[mime.view.Attachment] = Shape(
    "Attachment",
    (
        Field("PartID", STRING, lambda p: p.part_id),
        Field("FileName", STRING, lambda p: p.filename),
        Field("ContentType", STRING, lambda p: p.content_type),
        Field("ContentID", STRING, lambda p: p.content_id),
        Field("Size", INTEGER, lambda p: p.size),
    ),
)


def addresses(value: str) -> list[JSON]:
    """An address header's value as [{"Name", "Address"}]."""
    if not value:
        return []
    return [ADDRESS(pair) for pair in email.utils.getaddresses([value]) if pair[0] or pair[1]]


def first_address(value: str) -> JSON | None:
    """The first address of a header as {"Name", "Address"}, or None."""
    found = addresses(value)
    return found[0] if found else None


def blind_copies(row: MessageRow, bcc_header: str) -> list[JSON]:
    """Bcc: the Bcc header's addresses, then envelope recipients no To or Cc names."""
    out = addresses(bcc_header)
    named = {
        a["Address"].lower() for a in addresses(row.to_header) + addresses(row.cc_header) + out
    }
    for rcpt in row.recipients:
        if rcpt.address.lower() not in named:
            named.add(rcpt.address.lower())
            out.append(ADDRESS(("", rcpt.address)))
    return out


@dataclass(frozen=True)
class Listed:
    """A stored message with the two headers its shapes read beyond the row."""

    row: MessageRow
    bcc: str
    reply_to: str


@dataclass(frozen=True)
class Viewed(Listed):
    """A stored message with its decoded view, for the whole Message."""

    view: mime.view.MessageView


_ADDRESS_LIST = array(ADDRESS.ref)
_ID: Field[Listed] = Field("ID", STRING, lambda m: m.row.id)
_MESSAGE_ID: Field[Listed] = Field("MessageID", STRING, lambda m: m.row.message_id_header)
_ADDRESSES: tuple[Field[Listed], ...] = (
    Field("From", {**ADDRESS.ref, "nullable": True}, lambda m: first_address(m.row.from_header)),
    Field("To", _ADDRESS_LIST, lambda m: addresses(m.row.to_header)),
    Field("Cc", _ADDRESS_LIST, lambda m: addresses(m.row.cc_header)),
    Field("Bcc", _ADDRESS_LIST, lambda m: blind_copies(m.row, m.bcc)),
    Field("ReplyTo", _ADDRESS_LIST, lambda m: addresses(m.reply_to)),
)
_SUBJECT: Field[Listed] = Field("Subject", STRING, lambda m: m.row.subject)
_CREATED: Field[Listed] = Field("Created", TIME, lambda m: timestamp(m.row.received_at))
_SIZE: Field[Listed] = Field("Size", INTEGER, lambda m: m.row.size)
_TAGS: Field[Listed] = Field("Tags", STRINGS, lambda m: list(m.row.tags))

MESSAGE_SUMMARY: Shape[Listed] = Shape(
    "MessageSummary",
    (
        _ID,
        _MESSAGE_ID,
        Field("Read", BOOLEAN, lambda m: m.row.read),
        *_ADDRESSES,
        _SUBJECT,
        _CREATED,
        _SIZE,
        Field("Attachments", INTEGER, lambda m: m.row.attachments),
        Field("Snippet", STRING, lambda m: m.row.snippet),
        _TAGS,
        Field(
            "Status",
            described(STRING, "relay: the derived delivery status"),
            lambda m: m.row.status,
        ),
    ),
)


def message_date(view: mime.view.MessageView, received_at: float) -> str:
    """The Date header as RFC 3339, else the time the message was received."""
    try:
        parsed = email.utils.parsedate_to_datetime(view.date) if view.date else None
    except (TypeError, ValueError):
        parsed = None
    if parsed is None:
        return timestamp(received_at)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat(timespec="milliseconds")


_PARTS = array(ATTACHMENT.ref)

MESSAGE: Shape[Viewed] = Shape(
    "Message",
    (
        _ID,
        _MESSAGE_ID,
        Field("Read", BOOLEAN, lambda m: True),
        *_ADDRESSES,
        Field("ReturnPath", STRING, lambda m: m.row.mail_from),
        _SUBJECT,
        Field("Date", TIME, lambda m: message_date(m.view, m.row.received_at)),
        _CREATED,
        Field("Text", STRING, lambda m: m.view.text or ""),
        Field("HTML", STRING, lambda m: m.view.html or ""),
        _SIZE,
        Field("Inline", _PARTS, lambda m: [ATTACHMENT(a) for a in m.view.attachments if a.inline]),
        Field(
            "Attachments",
            _PARTS,
            lambda m: [ATTACHMENT(a) for a in m.view.attachments if not a.inline],
        ),
        _TAGS,
        Field("Status", STRING, lambda m: m.row.status),
    ),
)


def summary(row: MessageRow, head: bytes) -> JSON:
    """Mailpit's MessageSummary of a stored message; `head` is the start of its raw bytes."""
    headers = mime.view.parse_headers(head)
    bcc, reply_to = (mime.headers.header(headers, name) for name in ("Bcc", "Reply-To"))
    return MESSAGE_SUMMARY(Listed(row, bcc, reply_to))


def message(row: MessageRow, view: mime.view.MessageView) -> JSON:
    """Mailpit's Message: the summary's addresses plus bodies and parts."""
    header = dict((k.lower(), v) for k, v in reversed(view.headers))
    return MESSAGE(Viewed(row, header.get("bcc", ""), header.get("reply-to", ""), view))


@dataclass(frozen=True)
class Listing:
    """One page of a message list, with the totals Mailpit's answer carries."""

    counts: Counts
    matching: int
    unread: int
    start: int
    messages: list[JSON]
    tags: list[str]
    """Every tag in use (Mailpit's list answers carry them)."""


MESSAGES_SUMMARY: Shape[Listing] = Shape(
    "MessagesSummary",
    (
        Field("total", INTEGER, lambda s: s.counts.total),
        Field("unread", INTEGER, lambda s: s.counts.unread),
        Field("count", INTEGER, lambda s: len(s.messages)),
        Field("messages_count", INTEGER, lambda s: s.matching),
        Field("messages_unread", INTEGER, lambda s: s.unread),
        Field("start", INTEGER, lambda s: s.start),
        Field("tags", STRINGS, lambda s: s.tags),
        Field("messages", array(MESSAGE_SUMMARY.ref), lambda s: s.messages),
    ),
)


def canonical_key(name: str) -> str:
    """A header name as Go's textproto (and so Mailpit) spells it: Message-Id, Mime-Version."""
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))


def headers(view: mime.view.MessageView) -> dict[str, list[str]]:
    """Every header as {Name: [values in order]}, names in alphabetical order."""
    found: dict[str, list[str]] = {}
    for name, value in view.headers:
        found.setdefault(canonical_key(name), []).append(value)
    return dict(sorted(found.items()))
