"""An accepted message as the rows it becomes: its summary row, raw bytes, search text,
deduplicated recipients and tags, and their insert (one executemany per table, in foreign-key
order) that a single write and the group commit share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from relay import address, tagging
from relay.mime.summary import TEXT_LIMIT, Summary
from relay.status import Status
from relay.store.chunks import chunked, split
from relay.store.rawzip import Stored, pack, text_at_rest
from relay.store.schema import (
    message,
    message_raw,
    message_raw_chunk,
    message_tag,
    message_text,
    recipient,
    webhook_event,
)
from relay.store.search import search_text


@dataclass(frozen=True)
class NewRecipient:
    """An envelope recipient as accepted, with the route chosen for it."""

    address: str
    route: str = "capture"
    status: Status = Status.CAPTURED


@dataclass(frozen=True)
class NewMessage:
    """A message accepted by SMTP (or the API), ready to be stored."""

    id: str
    received_at: float
    mail_from: str
    recipients: list[NewRecipient]
    raw: bytes
    summary: Summary
    listener: str
    peer: str
    helo: str = ""
    auth_user: str | None = None
    tls: bool = False
    tags: tuple[str, ...] = ()
    """Its tags (relay.tagging.tags_of), each once."""
    mailbox: str = "default"
    """The mailbox it is read from (relay.mailboxes.mailbox_for)."""
    stored: Stored | None = None
    """`raw` as message_raw keeps it (relay.store.rawzip.pack), when the caller made it
    already (relay.ingest does, in a thread for large mail); None: made when stored."""


@dataclass(frozen=True)
class MessageRows:
    """The rows one accepted message becomes: summary, raw bytes, recipients, tags, events."""

    message: dict[str, Any]
    raw: dict[str, Any]
    text: dict[str, Any]
    recipients: list[dict[str, Any]]
    tags: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Its `received` events for the webhooks (relay.store.outbox), in the same commit."""


# Built once: SQLAlchemy memoizes a statement's cache key on the object, so reusing the
# same objects skips that work on every execution (the compiled SQL is cached as well).
MESSAGE_TABLES = (message, message_raw, message_text, recipient, message_tag, webhook_event)
"""The tables an accepted message is written to, in foreign-key order."""

_INSERTS = [insert(table) for table in MESSAGE_TABLES]
_CHUNKS = insert(message_raw_chunk)


def table_rows(batch: Sequence[MessageRows]) -> list[list[dict[str, Any]]]:
    """The rows of several messages for each of MESSAGE_TABLES, in that order."""
    return [
        [rows.message for rows in batch],
        [rows.raw for rows in batch],
        [rows.text for rows in batch],
        [r for rows in batch for r in rows.recipients],
        [t for rows in batch for t in rows.tags],
        [e for rows in batch for e in rows.events],
    ]


def insert_rows(conn: Connection, batch: Sequence[MessageRows]) -> None:
    """Insert the rows of several messages in `conn`'s transaction: one executemany per
    table, in foreign-key order (on MySQL the raw bytes in chunks: relay.store.chunks).
    Blocking: run it with `AsyncConnection.run_sync` or in a thread of its own."""
    tables = table_rows(batch)
    rest: list[dict[str, Any]] = []
    if chunked(conn.dialect.name):
        tables[1], rest = split(tables[1])
    for statement, rows in zip(_INSERTS, tables, strict=True):
        if rows:
            conn.execute(statement, rows)
    for row in rest:  # one statement each: a chunk is as large as a statement should be
        conn.execute(_CHUNKS, row)


def message_rows(new: NewMessage, dialect: str = "") -> MessageRows:
    """The rows of an accepted message, recipients deduplicated (first spelling kept);
    its raw bytes compressed, and its search text as the database `dialect` names keeps
    it (relay.store.rawzip.text_at_rest; "": as it is)."""
    seen: set[str] = set()
    recipients: list[dict[str, Any]] = []
    for rcpt in new.recipients:
        key = address.dedup_key(rcpt.address)
        if key in seen:
            continue
        seen.add(key)
        recipients.append(
            {
                "message_id": new.id,
                "address": rcpt.address,
                "address_key": key,
                "domain": address.domain_of(rcpt.address),
                "route": rcpt.route,
                "status": rcpt.status.value,
                "next_attempt_at": new.received_at if rcpt.status is Status.QUEUED else None,
                "updated_at": new.received_at,
            }
        )
    s = new.summary
    row = {
        "id": new.id,
        "received_at": new.received_at,
        "mail_from": new.mail_from,
        "size": len(new.raw),
        "subject": s.subject,
        "from_header": s.from_,
        "to_header": s.to,
        "cc_header": s.cc,
        "message_id_header": s.message_id,
        "attachments": s.attachments,
        "snippet": s.snippet,
        "listener": new.listener,
        "peer": new.peer,
        "helo": new.helo,
        "auth_user": new.auth_user,
        "tls": new.tls,
        "read": False,
        "mailbox": new.mailbox,
    }
    text = search_text(
        s.subject,
        [s.from_, s.to, s.cc, new.mail_from, *(r["address"] for r in recipients)],
        s.text,
        TEXT_LIMIT,
    )
    stored = new.stored if new.stored is not None else pack(new.raw)
    return MessageRows(
        row,
        {"message_id": new.id, "data": stored.data, "encoding": stored.encoding},
        {"message_id": new.id, "text": text_at_rest(text, dialect)},
        recipients,
        tag_rows(new.id, new.tags),
    )


def tag_rows(message_id: str, tags: Iterable[str]) -> list[dict[str, Any]]:
    """The message_tag rows of a message's tags (each key once, the first spelling)."""
    if not tags:
        return []
    return [
        {"message_id": message_id, "tag": tag, "tag_key": tagging.key(tag)}
        for tag in tagging.unique(tags)
    ]
