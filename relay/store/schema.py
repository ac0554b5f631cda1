"""The tables, as SQLAlchemy Core: portable between SQLite and PostgreSQL.

The raw bytes live in `message_raw` and the search text in `message_text`, apart from the
`message` summary row, so that lists never load bodies. Times are Unix epoch seconds (float)
on both backends.

On MySQL and MariaDB the DDL differs a little (relay/store/mysql.py: DOUBLE, LONGTEXT,
LONGBLOB, utf8mb4 with a binary collation, VARCHAR keys).

These tables are what the code queries; the database gets them from the Alembic migrations
in relay/store/migrations/, which must build exactly this (tests/test_migrations.py checks
it on both backends). Change a table here AND add a migration: docs/operations.md says how.

Not here: the free-text search index of revision 0004 (SQLite's FTS5 tables over
`message_text`, kept up to date by relay.store.indexer; PostgreSQL's pg_trgm index), which
relay.store.search refers to by name.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from relay.store.mysql import DIALECTS, key_text

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Every constraint has a predictable name, so that a migration can drop or alter it (on
SQLite too, where Alembic rebuilds the table in "batch" mode)."""

metadata = MetaData(naming_convention=NAMING_CONVENTION)

message = Table(
    "message",
    metadata,
    Column("id", String(26), primary_key=True),
    Column("received_at", Float, nullable=False),
    Column("mail_from", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("subject", Text, nullable=False, default=""),
    Column("from_header", Text, nullable=False, default=""),
    Column("to_header", Text, nullable=False, default=""),
    Column("cc_header", Text, nullable=False, default=""),
    Column("message_id_header", Text, nullable=False, default=""),
    Column("attachments", Integer, nullable=False, default=0),
    Column("snippet", Text, nullable=False, default=""),
    Column("listener", String(64), nullable=False),
    Column("peer", String(64), nullable=False),
    Column("helo", Text, nullable=False, default=""),
    Column("auth_user", String(255), nullable=True),
    Column("tls", Boolean, nullable=False, default=False),
    Column("read", Boolean, nullable=False, default=False),
    # The mailbox it is read from (relay/mailboxes.py); NULL: taken out of its mailbox over
    # POP3 while recipients still wait for delivery (relay/store/mailboxes.py); since 0008.
    Column("mailbox", String(255), nullable=True, server_default="default"),
)

# Newest first, within a listener or an authenticated user; unread counts.
Index("ix_message_listener", message.c.listener, message.c.id)
Index("ix_message_auth_user", message.c.auth_user, message.c.id)
Index("ix_message_read", message.c.read, message.c.id)
Index("ix_message_mailbox", message.c.mailbox, message.c.id)

message_raw = Table(
    "message_raw",
    metadata,
    Column(
        "message_id", String(26), ForeignKey("message.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("data", LargeBinary, nullable=False),
    # How `data` holds the bytes as received: relay.store.rawzip.PLAIN (0, every row from
    # before 0011) or ZLIB (1, compressed); read only through relay.store.rawzip; since 0011.
    Column("encoding", Integer, nullable=False, server_default=text("0")),
)

message_text = Table(
    "message_text",
    metadata,
    Column(
        "message_id", String(26), ForeignKey("message.id", ondelete="CASCADE"), primary_key=True
    ),
    # Lower-cased subject, addresses and body text (bounded) that free-text search looks in;
    # compressed at rest on SQLite (since 0011) and MySQL (a LONGBLOB since 0012): read
    # and written only as relay.store.rawzip says.
    Column("text", Text().with_variant(LargeBinary(), *DIALECTS), nullable=False),
)

recipient = Table(
    "recipient",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(26), ForeignKey("message.id", ondelete="CASCADE"), nullable=False),
    Column("address", Text, nullable=False),
    Column("address_key", key_text(), nullable=False),
    Column("domain", Text, nullable=False),
    Column("route", String(255), nullable=False, default="capture"),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("last_code", Integer, nullable=True),
    Column("last_enhanced", String(16), nullable=True),
    Column("last_text", Text, nullable=True),
    # last_text normalised for grouping by error (relay/store/error_key.py); since 0002.
    Column("last_error_key", Text, nullable=True),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("message_id", "address_key", name="uq_recipient_message_key"),
)
# Answers "does this message have a recipient in these states" from the index alone.
Index("ix_recipient_message", recipient.c.message_id, recipient.c.status)
Index("ix_recipient_status_due", recipient.c.status, recipient.c.next_attempt_at)

attempt = Table(
    "attempt",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recipient_id", Integer, ForeignKey("recipient.id", ondelete="CASCADE"), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("duration", Float, nullable=False),
    Column("host", Text, nullable=False, default=""),
    Column("code", Integer, nullable=True),
    Column("enhanced", String(16), nullable=True),
    Column("text", Text, nullable=False, default=""),
    # Made by a chaos rule of the delivery leg, not by an upstream: nothing was sent; since 0006.
    Column("injected", Boolean, nullable=False, default=False, server_default=false()),
)
Index("ix_attempt_recipient", attempt.c.recipient_id)

message_tag = Table(
    "message_tag",
    metadata,
    Column(
        "message_id", String(26), ForeignKey("message.id", ondelete="CASCADE"), primary_key=True
    ),
    # The tag as first spelled, and what makes two tags one: the name lower-cased.
    Column("tag", String(100), nullable=False),
    Column("tag_key", String(100), primary_key=True),
)
# The messages of a tag (tag: searches, renames, the list of tags); since 0005.
Index("ix_message_tag_key", message_tag.c.tag_key, message_tag.c.message_id)

message_check = Table(
    "message_check",
    metadata,
    Column(
        "message_id", String(26), ForeignKey("message.id", ondelete="CASCADE"), primary_key=True
    ),
    # "html", "links", "links-followed" or "spam" (relay/store/checks.py).
    Column("kind", String(16), primary_key=True),
    Column("checked_at", Float, nullable=False),
    # What searches ask of it: the HTML score, broken links, spam score; and is:spam,
    # has:broken-links. The answer itself, as the API gives it, in JSON.
    Column("score", Float, nullable=True),
    Column("flagged", Boolean, nullable=False, default=False),
    Column("result", Text, nullable=False),
)

destination_state = Table(
    "destination_state",
    metadata,
    # A destination's one text form (relay.routing.Destination); since 0006.
    Column("key", key_text(), primary_key=True),
    # Its rate limit's token bucket: tokens left as of tokens_at (None: full), and the
    # time of the last token promised to a message that waits for it.
    Column("tokens", Float, nullable=True),
    Column("tokens_at", Float, nullable=True),
    Column("booked_until", Float, nullable=True),
    # Its circuit breaker: push-backs in a row, the last pause's length, until when it is
    # paused (None: not paused), until when a probe is out, and the push-back's reply.
    Column("failures", Integer, nullable=False, default=0),
    Column("pause", Float, nullable=False, default=0.0),
    Column("paused_until", Float, nullable=True),
    Column("probe_until", Float, nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("updated_at", Float, nullable=False),
)

message_raw_chunk = Table(
    "message_raw_chunk",
    metadata,
    # MySQL and MariaDB only (relay/store/chunks.py): the raw bytes of a message beyond the
    # first chunk that message_raw holds, one row per chunk, in order of `seq`; since 0010.
    Column(
        "message_id", String(26), ForeignKey("message.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

change_log = Table(
    "change_log",
    metadata,
    # MySQL and MariaDB only (relay/store/changes.py): what each transaction changed, for
    # the other processes, which have no LISTEN/NOTIFY there; rows are kept a minute.
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("at", Float, nullable=False),
    Column("payload", Text, nullable=False),
)
Index("ix_change_log_at", change_log.c.at)


webhook_event = Table(
    "webhook_event",
    metadata,
    # The outbox (relay/store/outbox.py): one row per event per webhook, written in the
    # transaction of the change that raised it; since 0009.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False, unique=True),
    # The receiver's URL ([[webhook]] url): what picks the webhook out of the config.
    Column("webhook", key_text(), nullable=False),
    Column("event", String(16), nullable=False),
    Column("message_id", String(26), nullable=False),
    Column("created_at", Float, nullable=False),
    # The JSON body, made once when the event is written: every attempt sends the same.
    Column("body", Text, nullable=False),
    # pending (to send, at next_attempt_at), sent, or expired (gave up at expires_at).
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("lease_until", Float, nullable=True),
    Column("last_error", Text, nullable=False, default=""),
    Column("done_at", Float, nullable=True),
)
# What the sender looks for (pending, in order), and one webhook's recent events.
Index("ix_webhook_event_state", webhook_event.c.state, webhook_event.c.id)
Index("ix_webhook_event_webhook", webhook_event.c.webhook, webhook_event.c.id)

webhook_attempt = Table(
    "webhook_attempt",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, ForeignKey("webhook_event.id", ondelete="CASCADE"), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("duration", Float, nullable=False),
    # The receiver's HTTP status, None when it did not answer (refused, timed out).
    Column("status", Integer, nullable=True),
    Column("error", Text, nullable=False, default=""),
)
Index("ix_webhook_attempt_event", webhook_attempt.c.event_id)

suppression = Table(
    "suppression",
    metadata,
    # An address relay no longer sends to (relay/store/suppressions.py); since 0009.
    Column("address_key", key_text(), primary_key=True),
    Column("address", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    # None: until an operator removes it.
    Column("expires_at", Float, nullable=True),
    # The upstream's reply that caused it ("550 5.1.1 no such user"), or the operator's words.
    Column("reason", Text, nullable=False, default=""),
    Column("enhanced", String(16), nullable=True),
)


MAX_ID = 2**31 - 1
"""The largest recipient id the schema's integer column holds, on both backends."""


def possible_ids(ids: Collection[int]) -> list[int]:
    """The ids that can name a recipient (1 to MAX_ID); any other matches nothing, and
    would be refused by the database driver."""
    return [i for i in ids if 0 < i <= MAX_ID]
