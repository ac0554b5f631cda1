"""Messages as Mailpit's API shapes them (field names and types of its swagger), from our
store rows and MIME views. Pure functions; the routes fetch, these shape.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import Any

from relay import mime
from relay.store import MessageRow

JSON = dict[str, Any]


def timestamp(epoch: float) -> str:
    """An epoch as RFC 3339 UTC with milliseconds, as Mailpit's Created and Date."""
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def addresses(value: str) -> list[JSON]:
    """An address header's value as [{"Name", "Address"}]."""
    if not value:
        return []
    return [
        {"Name": name, "Address": addr}
        for name, addr in email.utils.getaddresses([value])
        if name or addr
    ]


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
            out.append({"Name": "", "Address": rcpt.address})
    return out


def summary(row: MessageRow, head: bytes) -> JSON:
    """Mailpit's MessageSummary of a stored message; `head` is the start of its raw bytes."""
    headers = mime.view.parse_headers(head)
    return {
        "ID": row.id,
        "MessageID": row.message_id_header,
        "Read": row.read,
        "From": first_address(row.from_header),
        "To": addresses(row.to_header),
        "Cc": addresses(row.cc_header),
        "Bcc": blind_copies(row, mime.headers.header(headers, "Bcc")),
        "ReplyTo": addresses(mime.headers.header(headers, "Reply-To")),
        "Subject": row.subject,
        "Created": timestamp(row.received_at),
        "Size": row.size,
        "Attachments": row.attachments,
        "Snippet": row.snippet,
        "Tags": [],
        "Status": row.status,
    }


def attachment(part: mime.view.Attachment) -> JSON:
    """Mailpit's Attachment of one part."""
    return {
        "PartID": part.part_id,
        "FileName": part.filename,
        "ContentType": part.content_type,
        "ContentID": part.content_id,
        "Size": part.size,
    }


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


def message(row: MessageRow, view: mime.view.MessageView) -> JSON:
    """Mailpit's Message: the summary's addresses plus bodies and parts."""
    header = dict((k.lower(), v) for k, v in reversed(view.headers))
    return {
        "ID": row.id,
        "MessageID": row.message_id_header,
        "Read": True,
        "From": first_address(row.from_header),
        "To": addresses(row.to_header),
        "Cc": addresses(row.cc_header),
        "Bcc": blind_copies(row, header.get("bcc", "")),
        "ReplyTo": addresses(header.get("reply-to", "")),
        "ReturnPath": row.mail_from,
        "Subject": row.subject,
        "Date": message_date(view, row.received_at),
        "Created": timestamp(row.received_at),
        "Text": view.text or "",
        "HTML": view.html or "",
        "Size": row.size,
        "Inline": [attachment(a) for a in view.attachments if a.inline],
        "Attachments": [attachment(a) for a in view.attachments if not a.inline],
        "Tags": [],
        "Status": row.status,
    }


def canonical_key(name: str) -> str:
    """A header name as Go's textproto (and so Mailpit) spells it: Message-Id, Mime-Version."""
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))


def headers(view: mime.view.MessageView) -> dict[str, list[str]]:
    """Every header as {Name: [values in order]}, names in alphabetical order."""
    found: dict[str, list[str]] = {}
    for name, value in view.headers:
        found.setdefault(canonical_key(name), []).append(value)
    return dict(sorted(found.items()))
