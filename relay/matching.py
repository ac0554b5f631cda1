"""A parsed search (`relay.query.Query`) judged against one message in memory (pure).

The store answers searches in SQL (`relay.store.search`); this answers the same question
for a message that is not stored yet, from what ingest knows of it (`Facts`), so that the
`[[tag]]` rules of relay.toml can tag mail on its way in without a query per message and
rule. The two agree term by term (tests/test_tags.py checks it against the store on a
table of searches): case-insensitive "contains" for headers and addresses, the lower-cased
search text for free text, the derived status of the recipients. What only exists once a
message is stored matches nothing here: `is:read` (new mail is unread) and the results of
checks (`is:spam`, `has:broken-links`, `html-score:`), which never ran on new mail.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field

from relay.query import (
    ATTACHMENT,
    READ,
    SPAM,
    TAGGED,
    UNREAD,
    Field,
    Query,
    Term,
    parse_date,
    parse_size,
)
from relay.status import message_status


@dataclass(frozen=True)
class Facts:
    """What the search terms look at in one message, as ingest knows it."""

    subject: str = ""
    from_header: str = ""
    to_header: str = ""
    cc_header: str = ""
    message_id: str = ""
    mail_from: str = ""
    recipients: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    size: int = 0
    attachments: int = 0
    listener: str = ""
    auth_user: str | None = None
    mailbox: str = "default"
    received_at: float = 0.0
    search_text: Callable[[], str] = field(default=lambda: "")
    """The lower-cased text free-text search looks in, made only when a term needs it."""
    tag_keys: frozenset[str] = frozenset()
    """The lower-cased tags the message has so far."""


def _contains(haystack: str | None, needle: str) -> bool:
    return needle.lower() in (haystack or "").lower()


def _to(facts: Facts, value: str) -> bool:
    return (
        _contains(facts.to_header, value)
        or _contains(facts.cc_header, value)
        or any(_contains(r, value) for r in facts.recipients)
    )


def _from(facts: Facts, value: str) -> bool:
    return _contains(facts.from_header, value) or _contains(facts.mail_from, value)


def _is(facts: Facts, value: str) -> bool:
    if value in (READ, SPAM):  # new mail is unread, and no check has run on it
        return False
    if value == UNREAD:
        return True
    if value == TAGGED:
        return bool(facts.tag_keys)
    return message_status(facts.statuses).value == value


_HOLDS: dict[Field, Callable[[Facts, str], bool]] = {
    Field.TEXT: lambda f, v: v.lower().replace("\x00", "") in f.search_text(),
    Field.FROM: _from,
    Field.TO: _to,
    Field.SUBJECT: lambda f, v: _contains(f.subject, v),
    Field.IS: _is,
    Field.HAS: lambda f, v: v == ATTACHMENT and f.attachments > 0,
    Field.LISTENER: lambda f, v: f.listener == v,
    Field.USER: lambda f, v: f.auth_user == v,
    Field.MESSAGE_ID: lambda f, v: _contains(f.message_id, v.strip("<> ")),
    Field.ADDRESSED: lambda f, v: _from(f, v) or _to(f, v),
    Field.AFTER: lambda f, v: f.received_at >= parse_date(v),
    Field.BEFORE: lambda f, v: f.received_at < parse_date(v),
    Field.LARGER: lambda f, v: f.size >= parse_size(v),
    Field.SMALLER: lambda f, v: f.size < parse_size(v),
    Field.TAG: lambda f, v: v.lower() in f.tag_keys,
    Field.HTML_SCORE: lambda f, v: False,
    Field.MAILBOX: lambda f, v: f.mailbox == v,
}


def holds(term: Term, facts: Facts) -> bool:
    """Whether one search term (negation included) holds for the message."""
    found = _HOLDS[term.field](facts, term.value)
    return operator.not_(found) if term.negated else found


def matches(query: Query, facts: Facts) -> bool:
    """Whether every term of `query` holds for the message; a query with problems (a term
    that could not be read) matches nothing, as in the store."""
    return not query.problems and all(holds(term, facts) for term in query.terms)
