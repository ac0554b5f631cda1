"""Search and filters as SQL: a parsed `relay.query.Query` and list filters → WHERE clauses.

A message's status is derived from its recipients (relay/status.py): "failed" means some
recipient failed and none is in a state that shows first. Both are EXISTS subqueries on
`recipient`, which its (message_id, status) index answers without touching the table.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Select,
    Text,
    and_,
    case,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import column, literal_column, table
from sqlalchemy.sql.visitors import InternalTraversal

from relay import tagging
from relay.query import (
    ATTACHMENT,
    BROKEN_LINKS,
    READ,
    SPAM,
    TAGGED,
    UNREAD,
    Field,
    Query,
    Term,
    parse_date,
    parse_score,
    parse_size,
)
from relay.status import PRECEDENCE, Status
from relay.store.checks import LINK_KINDS, Kind
from relay.store.rawzip import MYSQL_TEXT_SQL, TEXT_SQL
from relay.store.schema import message, message_check, message_tag, message_text, recipient

TRIGRAM = 3
"""Characters in a trigram: shorter search terms cannot use the index."""
FEW = 5000
"""A term found in fewer index rows than this is looked up in the index; a commoner one
is scanned for (see `_text_condition`); PostgreSQL's threshold is `FEW_PG`."""
FEW_PG = 1000
"""PostgreSQL: the same, lower because counting a candidate there means reading its text
(the trigram index only narrows, LIKE rechecks each row), not just an index row."""
SAMPLE_PG = 3000
"""PostgreSQL: the newest texts read first to tell a common term without the index (about
10 µs each at a million messages: 30 ms at most, the price a rare term pays)."""

# SQLite's search index (revision 0004; relay.store.indexer fills it), not in schema.py.
fts = table("message_fts", column("rowid"), column("message_fts"))  # the table: MATCH
fts_state = table("message_fts_state", column("indexed_to"))
text_rowid: ColumnElement[int] = literal_column("message_text.rowid", Integer)


class ByDialect(ColumnElement[bool]):
    """One condition on SQLite, another on other databases (PostgreSQL and MySQL their
    own when given), chosen as the statement is compiled (the filters are built without
    knowing the database)."""

    inherit_cache = True
    type = Boolean()
    _traverse_internals = [  # noqa: RUF012 - SQLAlchemy's convention
        ("sqlite", InternalTraversal.dp_clauseelement),
        ("other", InternalTraversal.dp_clauseelement),
        ("postgresql", InternalTraversal.dp_clauseelement),
        ("mysql", InternalTraversal.dp_clauseelement),
    ]

    def __init__(
        self,
        sqlite: ColumnElement[bool],
        other: ColumnElement[bool],
        postgresql: ColumnElement[bool] | None = None,
        mysql: ColumnElement[bool] | None = None,
    ) -> None:
        self.sqlite = sqlite
        self.other = other
        self.postgresql = other if postgresql is None else postgresql
        self.mysql = other if mysql is None else mysql


@compiles(ByDialect)
def _compile_other(element: ByDialect, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.other, **kw)


@compiles(ByDialect, "postgresql")
def _compile_postgresql(element: ByDialect, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.postgresql, **kw)


@compiles(ByDialect, "mysql")
@compiles(ByDialect, "mariadb")
def _compile_mysql(element: ByDialect, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.mysql, **kw)


@compiles(ByDialect, "sqlite")
def _compile_sqlite(element: ByDialect, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.sqlite, **kw)


@dataclass(frozen=True)
class Filter:
    """What the list shows: a status, a listener, an authenticated user, a mailbox (None:
    every message) and a search."""

    status: str | None = None
    listener: str | None = None
    user: str | None = None
    query: Query = field(default_factory=Query)
    unread: bool = False
    mailbox: str | None = None


def like_pattern(value: str) -> str:
    """A LIKE pattern matching `value` anywhere, with LIKE's wildcards escaped."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: ColumnElement[str], value: str) -> ColumnElement[bool]:
    return column.ilike(like_pattern(value), escape="\\")


def _has_recipient(statuses: Iterable[str]) -> ColumnElement[bool]:
    return exists().where(
        recipient.c.message_id == message.c.id, recipient.c.status.in_(list(statuses))
    )


def shown_as(status: Status) -> set[str]:
    """Recipient statuses that make a message show `status`."""
    return {Status.QUEUED, Status.SENDING} if status is Status.QUEUED else {status}


def outranking(status: Status) -> set[str]:
    """Recipient statuses that a message shows before `status` (relay.status.PRECEDENCE)."""
    before: set[str] = set()
    for candidate in PRECEDENCE:
        if candidate in shown_as(status):
            break
        before.add(candidate)
    return before


def status_condition(value: str) -> ColumnElement[bool]:
    """Messages whose derived status (relay.status.message_status) is `value`."""
    try:
        status = Status(value)
    except ValueError:
        return false()
    if status is Status.SENDING:
        status = Status.QUEUED
    before = outranking(status)
    condition = _has_recipient(shown_as(status))
    if status is Status.CAPTURED:
        # A message without recipients shows as captured too.
        condition = or_(condition, ~exists().where(recipient.c.message_id == message.c.id))
    if before:
        condition = and_(condition, ~_has_recipient(before))
    return condition


def fts_query(value: str) -> str:
    """An FTS5 query for the rows holding every trigram of `value` that a substring match
    needs: the candidates (a superset) of rows holding `value`. Trigrams that do not
    overlap, plus the last one, are enough: fewer doclists to read."""
    starts = dict.fromkeys([*range(0, len(value) - TRIGRAM + 1, TRIGRAM), len(value) - TRIGRAM])
    grams = (value[i : i + TRIGRAM].replace('"', '""') for i in starts)
    return " AND ".join(f'"{gram}"' for gram in grams)


def _text_scan(value: str) -> ColumnElement[bool]:
    """The search text holds `value`: on SQLite and MySQL, where it is compressed, read
    as relay.store.rawzip says."""
    pattern = like_pattern(value)
    sqlite = getattr(func, TEXT_SQL)(message_text.c.text).like(pattern, escape="\\")
    # Typed as text, so that the LIKE pattern beside it is bound as text.
    unpacked = type_coerce(getattr(func, MYSQL_TEXT_SQL)(message_text.c.text), Text())
    mysql = unpacked.like(pattern, escape="\\")
    return ByDialect(sqlite, message_text.c.text.like(pattern, escape="\\"), mysql=mysql)


def _text_condition(value: str) -> ColumnElement[bool]:
    """Free text: the search text holds subject, addresses and body, lower-cased at ingest.

    PostgreSQL's LIKE uses the trigram index by itself (revision 0004). On SQLite a term
    of three characters or more first asks the FTS5 trigram index for the rows holding
    its trigrams, at most `FEW` of them. Fewer: the term is rare, and the messages are
    those rows where the text holds the term (the indexer's rows), plus a scan of the
    rows it has not reached yet. `FEW` or more: the term is common, and a scan newest
    first fills a page sooner than checking every candidate would. Either way the text
    itself decides: the results are exactly those of a scan."""
    value = value.lower().replace("\x00", "")  # as in search_text (and NUL ends SQLite's)
    plain = exists().where(message_text.c.message_id == message.c.id, _text_scan(value))
    if len(value) < TRIGRAM:
        return plain
    hits = select(fts.c.rowid).where(fts.c.message_fts.match(fts_query(value))).limit(FEW).cte()
    few = select(func.count()).select_from(hits).scalar_subquery() < FEW
    watermark = select(fts_state.c.indexed_to).scalar_subquery()
    found = select(message_text.c.message_id).where(
        text_rowid <= watermark, text_rowid.in_(select(hits.c.rowid)), _text_scan(value)
    )
    unindexed = select(message_text.c.message_id).where(text_rowid > watermark, _text_scan(value))
    rare = message.c.id.in_(found.union_all(unindexed))
    return ByDialect(case((few, rare), else_=plain), plain, _pg_text_condition(value))


def _pg_text_condition(value: str) -> ColumnElement[bool]:
    """PostgreSQL, a term of three characters or more: the same choice as on SQLite
    (MySQL has no trigram index to ask: it scans, `plain`). The
    planner cannot tell a common term from a rare one (the trigram index's estimate is a
    handful of rows either way), and read every match through the index before taking the
    newest: 913 ms for a word in every message at 100,000. So the term is common when
    `FEW_PG` of the newest `SAMPLE_PG` texts hold it, or else when the index finds
    `FEW_PG` texts that do (each asked once per query, the index only if the newest texts
    did not settle it: for a word in most messages its bitmap alone took 230 ms at a
    million). A common term's messages are checked as the newest-first scan reaches
    them, which fills a page after a few rows; a rare one's are the ids the index found."""
    pattern = like_pattern(value)
    matches = select(message_text.c.message_id).where(_text_scan(value))
    newest = (
        select(message_text.c.text)
        .order_by(message_text.c.message_id.desc())
        .limit(SAMPLE_PG)
        .subquery()
    )
    recent = select(newest.c.text).where(newest.c.text.like(pattern, escape="\\"))
    common = or_(_at_least(recent), _at_least(matches))
    text_of = select(message_text.c.text).where(message_text.c.message_id == message.c.id)
    scanned = text_of.scalar_subquery().like(pattern, escape="\\")
    return case((common, scanned), else_=message.c.id.in_(matches))


def _at_least(rows: Select[Any]) -> ColumnElement[bool]:
    """`rows` returns at least `FEW_PG` rows (it is asked for no more)."""
    counted = rows.limit(FEW_PG).subquery()
    return select(func.count()).select_from(counted).scalar_subquery() >= FEW_PG


def _to_condition(value: str) -> ColumnElement[bool]:
    return or_(
        _contains(message.c.to_header, value),
        _contains(message.c.cc_header, value),
        exists().where(
            recipient.c.message_id == message.c.id, _contains(recipient.c.address, value)
        ),
    )


def _tagged(value: str | None) -> ColumnElement[bool]:
    """Messages with the tag `value` (any case), or with any tag when None."""
    condition = exists().where(message_tag.c.message_id == message.c.id)
    if value is None:
        return condition
    return condition.where(message_tag.c.tag_key == tagging.key(value))


def _checked(kinds: Iterable[Kind], found: ColumnElement[bool]) -> ColumnElement[bool]:
    """Messages a check of one of `kinds` has run on, with a result that `found`."""
    return exists().where(
        message_check.c.message_id == message.c.id, message_check.c.kind.in_(list(kinds)), found
    )


_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _html_score(value: str) -> ColumnElement[bool]:
    compare, number = parse_score(value)
    found: ColumnElement[bool] = _COMPARE[compare](message_check.c.score, number)
    return _checked([Kind.HTML], found)


def term_condition(term: Term) -> ColumnElement[bool]:
    """The WHERE clause of one search term (negation included)."""
    condition: ColumnElement[bool]
    match term.field:
        case Field.TEXT:
            condition = _text_condition(term.value)
        case Field.FROM:
            condition = or_(
                _contains(message.c.from_header, term.value),
                _contains(message.c.mail_from, term.value),
            )
        case Field.TO:
            condition = _to_condition(term.value)
        case Field.SUBJECT:
            condition = _contains(message.c.subject, term.value)
        case Field.IS if term.value == UNREAD:
            condition = message.c.read == false()
        case Field.IS if term.value == READ:
            condition = message.c.read == true()
        case Field.IS if term.value == TAGGED:
            condition = _tagged(None)
        case Field.IS if term.value == SPAM:
            condition = _checked([Kind.SPAM], message_check.c.flagged == true())
        case Field.IS:
            condition = status_condition(term.value)
        case Field.HAS if term.value == ATTACHMENT:
            condition = message.c.attachments > 0
        case Field.HAS if term.value == BROKEN_LINKS:
            condition = _checked(LINK_KINDS, message_check.c.flagged == true())
        case Field.LISTENER:
            condition = message.c.listener == term.value
        case Field.USER:
            condition = message.c.auth_user == term.value
        case Field.MAILBOX:
            condition = message.c.mailbox == term.value
        case Field.MESSAGE_ID:
            condition = _contains(message.c.message_id_header, term.value.strip("<> "))
        case Field.ADDRESSED:
            condition = or_(
                _contains(message.c.from_header, term.value),
                _contains(message.c.mail_from, term.value),
                _to_condition(term.value),
            )
        case Field.AFTER:
            condition = message.c.received_at >= parse_date(term.value)
        case Field.BEFORE:
            condition = message.c.received_at < parse_date(term.value)
        case Field.LARGER:
            condition = message.c.size >= parse_size(term.value)
        case Field.SMALLER:
            condition = message.c.size < parse_size(term.value)
        case Field.TAG:
            condition = _tagged(term.value)
        case Field.HTML_SCORE:
            condition = _html_score(term.value)
        case _:
            condition = true()
    return not_(condition) if term.negated else condition


def where(filter_: Filter) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a list filter (empty: every message), cheapest first: SQLite
    tests them in this order, so body text is only read for rows that pass the rest.
    A search with a term that could not be read matches nothing, never everything."""
    if filter_.query.problems:
        return [false()]
    clauses: list[ColumnElement[bool]] = []
    if filter_.mailbox is not None:
        clauses.append(message.c.mailbox == filter_.mailbox)
    if filter_.listener:
        clauses.append(message.c.listener == filter_.listener)
    if filter_.user:
        clauses.append(message.c.auth_user == filter_.user)
    if filter_.unread:
        clauses.append(message.c.read == false())
    if filter_.status:
        clauses.append(status_condition(filter_.status))
    terms = sorted(filter_.query.terms, key=lambda t: t.field is Field.TEXT)
    clauses.extend(term_condition(t) for t in terms)
    return clauses


def search_text(subject: str, addresses: Iterable[str], body: str, limit: int) -> str:
    """The lower-cased text free-text search looks in, at most `limit` characters of body.

    NUL characters are dropped: PostgreSQL text cannot hold them, and they match nothing.
    """
    head = " ".join([subject, *addresses])
    return f"{head}\n{body[:limit]}".lower().replace("\x00", "")


def ids_matching(filter_: Filter) -> ColumnElement[bool]:
    """A condition `message.id IN (ids matching filter_)`, for bulk actions."""
    return message.c.id.in_(select(message.c.id).where(*where(filter_)))
