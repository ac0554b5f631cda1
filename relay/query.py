"""The search box's language, parsed into terms (pure; the store turns terms into SQL).

    invoice                 free text: subject, addresses and body text
    "quarterly report"      a phrase, matched as written (case-insensitive)
    from:alice              the From header or the envelope sender
    to:bob@example.com      To or Cc header, or an envelope recipient
    subject:"daily digest"  the subject
    is:unread  is:read      the read marker
    is:failed               a message status (captured, queued, deferred, delivered,
                            failed, held, cancelled)
    has:attachment          at least one attachment
    listener:smtp  user:app the listener it came in on, the authenticated user
    mailbox:tenant-a        the mailbox it is in (docs/pop3.md)
    message-id:abc@host     the Message-ID header
    addressed:bob           From, To or Cc header, the envelope sender or a recipient
    after:2024-05-01        received on or after a date (or ISO 8601 time; UTC unless
    before:2024-05-31       the time carries an offset), or received before it
    larger:10k smaller:2M   size in bytes (k, M, G: powers of 1024)
    tag:invoice  is:tagged  a tag (case-insensitive; tag:"two words"), or any tag
    is:spam                 the spam check found it spam (once that check has run)
    has:broken-links        the link check found a link that fails (once it has run)
    html-score:<80          the HTML check's score (% of clients that support all it
                            uses): <, <=, > or >= a number (once that check has run)
    -term  !term            negation of any of the above (-from:noreply, -"out of office")

Terms are combined with AND. An unknown `key:` is searched as free text; an unknown
`is:` or `has:` value, or a date or size that cannot be read, is reported as a problem,
and a search with a problem is not run: the UI and the API answer 400 and the store
matches nothing for it, so a typo never widens a search (or a bulk delete) to every
message. The keys Mailpit's search knows mean the same here (bcc: looks at the
envelope recipients, which include the Bcc ones).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from relay.status import Status


class Field(StrEnum):
    """What one search term looks at."""

    TEXT = "text"
    FROM = "from"
    TO = "to"
    SUBJECT = "subject"
    IS = "is"
    HAS = "has"
    LISTENER = "listener"
    USER = "user"
    MESSAGE_ID = "message-id"
    ADDRESSED = "addressed"
    AFTER = "after"
    BEFORE = "before"
    LARGER = "larger"
    SMALLER = "smaller"
    TAG = "tag"
    HTML_SCORE = "html-score"
    MAILBOX = "mailbox"


READ = "read"
UNREAD = "unread"
TAGGED = "tagged"
SPAM = "spam"
ATTACHMENT = "attachment"
BROKEN_LINKS = "broken-links"
STATUSES = tuple(s.value for s in Status if s is not Status.SENDING)
"""The statuses a message can show (a sending recipient shows its message as queued)."""

IS_VALUES = (UNREAD, READ, *STATUSES, TAGGED, SPAM)
HAS_VALUES = (ATTACHMENT, BROKEN_LINKS)
_HAS_ALIASES = {
    "attachment": ATTACHMENT,
    "attachments": ATTACHMENT,
    "attach": ATTACHMENT,
    "broken-links": BROKEN_LINKS,
    "broken-link": BROKEN_LINKS,
}
_KEYS = {f.value: f for f in Field if f is not Field.TEXT}
_KEYS.update({"cc": Field.TO, "bcc": Field.TO, "rcpt": Field.TO, "auth": Field.USER})
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmg]?)b?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_SCORE = re.compile(r"(<=|>=|<|>)\s*(\d+(?:\.\d+)?)%?")
SCORE_OPERATORS = ("<", "<=", ">", ">=")

# A token: optional "-" or "!", optional "key:", then a quoted string or a run of non-space.
_TOKEN = re.compile(r'([-!]?)(?:([A-Za-z][A-Za-z-]*):)?(?:"([^"]*)"?|(\S+))?')


def parse_date(value: str) -> float:
    """Epoch seconds of a date (YYYY-MM-DD, midnight UTC) or an ISO 8601 time (UTC unless
    it carries an offset); raises ValueError."""
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_size(value: str) -> int:
    """Bytes in a size such as 500, 10k, 2M or 1.5GB (powers of 1024); raises ValueError."""
    match = _SIZE.fullmatch(value.strip())
    if match is None:
        raise ValueError(value)
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_score(value: str) -> tuple[str, float]:
    """The comparison and the number of a score bound such as <80, >=90.5 or <=75%;
    raises ValueError."""
    match = _SCORE.fullmatch(value.strip())
    if match is None:
        raise ValueError(value)
    return match.group(1), float(match.group(2))


@dataclass(frozen=True)
class Term:
    """One condition: `field` matches `value`, or does not when `negated`."""

    field: Field
    value: str
    negated: bool = False

    def __str__(self) -> str:
        value = f'"{self.value}"' if (" " in self.value or not self.value) else self.value
        key = "" if self.field is Field.TEXT else f"{self.field.value}:"
        return f"{'-' if self.negated else ''}{key}{value}"


@dataclass(frozen=True)
class Query:
    """A parsed search: every term must hold. `problems` names the terms that could not be
    read; a query with problems matches nothing."""

    terms: tuple[Term, ...] = ()
    problems: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.terms)

    def __str__(self) -> str:
        return " ".join(str(t) for t in self.terms)


def _term(negated: bool, key: str | None, value: str, raw: str) -> Term | str | None:
    """A term, or a problem (str), or None for an empty token."""
    if key is None:
        return Term(Field.TEXT, value, negated) if value else None
    found = _KEYS.get(key.lower())
    if found is None:
        return Term(Field.TEXT, raw.removeprefix("-"), negated)
    if not value:
        return f"{key}: needs a value"
    if found is Field.IS:
        value = value.lower()
        if value not in IS_VALUES:
            return f"is:{value} is not one of {', '.join(IS_VALUES)}"
    elif found is Field.HAS:
        has = _HAS_ALIASES.get(value.lower())
        if has is None:
            return f"has:{value} is not one of {', '.join(HAS_VALUES)}"
        value = has
    elif found in (Field.AFTER, Field.BEFORE):
        try:
            parse_date(value)
        except ValueError:
            return f"{found.value}:{value} is not a date such as 2024-05-31"
    elif found in (Field.LARGER, Field.SMALLER):
        try:
            parse_size(value)
        except ValueError:
            return f"{found.value}:{value} is not a size such as 500, 10k or 2M"
    elif found is Field.HTML_SCORE:
        try:
            parse_score(value)
        except ValueError:
            return f"html-score:{value} is not a bound such as <80 or >=90"
    return Term(found, value, negated)


def parse(text: str) -> Query:
    """Parse the search box's text into a Query; never raises."""
    terms: list[Term] = []
    problems: list[str] = []
    for match in _TOKEN.finditer(text):
        minus, key, quoted, bare = match.groups()
        value = quoted if quoted is not None else bare or ""
        if not match.group(0):
            continue
        made = _term(bool(minus), key, value.strip(), match.group(0))
        if isinstance(made, str):
            problems.append(made)
        elif made is not None and made not in terms:
            terms.append(made)
    return Query(tuple(terms), tuple(problems))
