"""The queue as operators see it: recipients that need a look (deferred, failed, held),
grouped by destination and by error, listed, and acted on one by one or all at once.

A destination is where delivery goes (relay.routing.Destination, in its text form): a
named upstream ("relay:smarthost"), or for direct delivery the recipient's domain
("relay:mx:example.com"), as the worker pools them. An error group is a reply code,
enhanced code and normalised text (error_key.py), kept in `recipient.last_error_key` when
a result is recorded. The web UI, the JSON API and the CLI all read through this module;
they act through actions.py.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from relay.routing import MX_PREFIX, MX_ROUTE, Destination
from relay.status import SHOWN, Status
from relay.store.database import Database
from relay.store.error_key import ErrorKey, normalize
from relay.store.memo import Memo
from relay.store.messages import RecipientRow, recipient_columns
from relay.store.schema import destination_state, message, possible_ids, recipient
from relay.store.search import like_pattern

GROUP_LIMIT = 100
GroupBy = Literal["destination", "error"]


@dataclass(frozen=True)
class QueueFilter:
    """Which recipients: a status (one of SHOWN; None: all of them), a destination key,
    an error group key, free text over address, sender, subject and last reply, and a
    recipient domain (exact, case-insensitive)."""

    status: str | None = None
    destination: str | None = None
    error: ErrorKey | None = None
    search: str = ""
    domain: str | None = None

    @classmethod
    def of(
        cls,
        status: str | None = None,
        destination: str | None = None,
        error: str | None = None,
        search: str | None = None,
        domain: str | None = None,
    ) -> QueueFilter:
        """A filter from text as people and scripts write it (empty: no condition);
        ValueError naming what is wrong with a status or an error group."""
        if status and status not in SHOWN:
            raise ValueError(f"status must be one of {', '.join(SHOWN)}, not {status!r}")
        try:
            key = ErrorKey.parse(error) if error else None
        except ValueError:
            raise ValueError(
                f"error must be an error group like 550|5.1.1|user unknown, not {error!r}"
            ) from None
        return cls(
            status=status or None,
            destination=destination or None,
            error=key,
            search=(search or "").strip(),
            domain=domain_key(domain) if domain and domain.strip() else None,
        )


@dataclass(frozen=True)
class Group:
    """Recipients sharing a destination or an error: how many, in which states, since when.

    `oldest` is when the first of their messages was received (message ids are
    time-ordered, so the smallest is the oldest); `next_attempt_at` the
    earliest retry among the deferred ones. For an error group, `code`, `enhanced` and
    `sample` (one reply text as received) describe the error; a destination group says in
    `paused` whether its circuit breaker paused it.
    """

    key: str
    count: int
    deferred: int
    failed: int
    held: int
    oldest: float
    next_attempt_at: float | None
    code: int | None = None
    enhanced: str | None = None
    sample: str = ""
    paused: Paused | None = None

    @property
    def mix(self) -> dict[str, int]:
        """The states present in the group, with their counts: failed, deferred, held."""
        counts = {"failed": self.failed, "deferred": self.deferred, "held": self.held}
        return {status: n for status, n in counts.items() if n}


@dataclass(frozen=True)
class Paused:
    """A destination its circuit breaker paused: until when, and the reply that paused it
    (it stays paused after `until` until its probe is answered)."""

    until: float
    reason: str
    failures: int


async def paused_destinations(
    conn: AsyncConnection, keys: Collection[str] | None = None
) -> dict[str, Paused]:
    """The paused destinations (among `keys`; None: all), by their text form."""
    query = select(destination_state).where(destination_state.c.paused_until.is_not(None))
    if keys is not None:
        query = query.where(destination_state.c.key.in_(sorted(keys)))
    rows = await conn.execute(query)
    return {r.key: Paused(float(r.paused_until), r.reason, r.failures) for r in rows}


@dataclass(frozen=True)
class QueueRow(RecipientRow):
    """One recipient in the queue view, with its destination and its message's sender
    and subject."""

    message_id: str
    destination: str
    updated_at: float
    received_at: float
    mail_from: str
    subject: str

    @property
    def error(self) -> ErrorKey:
        """The error group this recipient is in."""
        return ErrorKey(self.last_code, self.last_enhanced, normalize(self.last_text))


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue view, newest recipients first."""

    rows: list[QueueRow]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class QueueSummary:
    """How many recipients are in each state of the queue."""

    queued: int = 0
    sending: int = 0
    deferred: int = 0
    failed: int = 0
    held: int = 0

    @property
    def attention(self) -> int:
        """Deferred and failed: what an operator may want to look at."""
        return self.deferred + self.failed


def domain_key(domain: str) -> str:
    """A domain as recipients' domains are stored: lower case, no trailing dot."""
    return domain.strip().lower().rstrip(".")


DESTINATION = case(
    (recipient.c.route == MX_ROUTE, literal(MX_PREFIX) + recipient.c.domain),
    else_=recipient.c.route,
)
"""A recipient's destination in its one text form, in SQL."""


def destination_is(key: str) -> ColumnElement[bool]:
    """Recipients of the destination whose text form is `key` (a route alone: all its)."""
    destination = Destination.parse(key)
    if destination.domain is None:
        return recipient.c.route == destination.route
    return and_(recipient.c.route == destination.route, recipient.c.domain == destination.domain)


# Recipients never tried have no key; they group as an empty text.
_error_text = func.coalesce(recipient.c.last_error_key, "")


def _error_is(key: ErrorKey) -> ColumnElement[bool]:
    return and_(
        recipient.c.last_code.is_not_distinct_from(key.code),
        recipient.c.last_enhanced.is_not_distinct_from(key.enhanced),
        _error_text == key.text,
    )


# Its own name, so that the subquery stays correlated to the recipient alone when the
# outer query joins `message` too.
_searched = message.alias("searched")


def _search(text: str) -> list[ColumnElement[bool]]:
    conditions = []
    for word in text.split():
        pattern = like_pattern(word)
        in_message = exists().where(
            _searched.c.id == recipient.c.message_id,
            or_(
                _searched.c.subject.ilike(pattern, escape="\\"),
                _searched.c.mail_from.ilike(pattern, escape="\\"),
            ),
        )
        conditions.append(
            or_(
                recipient.c.address.ilike(pattern, escape="\\"),
                recipient.c.last_text.ilike(pattern, escape="\\"),
                in_message,
            )
        )
    return conditions


def conditions(
    filter_: QueueFilter, statuses: Collection[str] = SHOWN, facet: GroupBy | None = None
) -> list[ColumnElement[bool]]:
    """WHERE clauses for `filter_` among recipients in `statuses` (narrowed by its status);
    the `facet` being grouped by is left out, so that its other groups stay visible."""
    wanted = [s for s in statuses if filter_.status in (None, s)]
    clauses: list[ColumnElement[bool]] = [recipient.c.status.in_(wanted)]
    if filter_.destination and facet != "destination":
        clauses.append(destination_is(filter_.destination))
    if filter_.error is not None and facet != "error":
        clauses.append(_error_is(filter_.error))
    if filter_.domain:
        clauses.append(recipient.c.domain == domain_key(filter_.domain))
    clauses += _search(filter_.search)
    return clauses


def _count_of(status: str) -> Any:
    return func.sum(case((recipient.c.status == status, 1), else_=0))


class QueueView:
    """Reads and bulk actions over the queue, for operators."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._summary = Memo(db, self._summary_now)

    async def summary(self) -> QueueSummary:
        """Recipients per queue state (from the status index alone; counted again only
        after the database changed)."""
        return await self._summary.get()

    async def _summary_now(self) -> QueueSummary:
        states = [Status.QUEUED, Status.SENDING, Status.DEFERRED, Status.FAILED, Status.HELD]
        async with self.db.reader.connect() as conn:
            rows = await conn.execute(
                select(recipient.c.status, func.count())
                .where(recipient.c.status.in_([s.value for s in states]))
                .group_by(recipient.c.status)
            )
            counts = {str(status): int(n) for status, n in rows}
        return QueueSummary(**counts)

    async def counts(self, filter_: QueueFilter | None = None) -> dict[str, int]:
        """Recipients matching `filter_` per status (its own status left out), for tabs."""
        filter_ = filter_ or QueueFilter()
        everywhere = replace(filter_, status=None)
        async with self.db.reader.connect() as conn:
            rows = await conn.execute(
                select(recipient.c.status, func.count())
                .where(*conditions(everywhere))
                .group_by(recipient.c.status)
            )
            found = {str(status): int(n) for status, n in rows}
        return {status: found.get(status, 0) for status in SHOWN}

    async def groups(
        self, by: GroupBy, filter_: QueueFilter | None = None, limit: int = GROUP_LIMIT
    ) -> list[Group]:
        """Recipients matching `filter_` (all but its own `by` facet) grouped `by`
        destination or error, largest group first."""
        filter_ = filter_ or QueueFilter()
        if by == "destination":
            keys: list[Any] = [DESTINATION.label("key")]
        else:
            keys = [
                recipient.c.last_code,
                recipient.c.last_enhanced,
                _error_text.label("key"),
            ]
        query = (
            select(
                *keys,
                func.count().label("n"),
                _count_of(Status.DEFERRED.value).label("deferred"),
                _count_of(Status.FAILED.value).label("failed"),
                _count_of(Status.HELD.value).label("held"),
                func.min(recipient.c.message_id).label("first"),
                func.min(
                    case((recipient.c.status == Status.DEFERRED.value, recipient.c.next_attempt_at))
                ).label("next_at"),
                func.max(func.coalesce(recipient.c.last_text, "")).label("sample"),
            )
            .where(*conditions(filter_, facet=by))
            .group_by(*keys)
            .order_by(func.count().desc(), *keys)
            .limit(limit)
        )
        async with self.db.reader.connect() as conn:
            rows = (await conn.execute(query)).all()
            # Ids are time-ordered: a group's first message is its oldest.
            firsts = {row.first for row in rows}
            found = await conn.execute(
                select(message.c.id, message.c.received_at).where(message.c.id.in_(firsts))
            )
            received = {str(m.id): float(m.received_at) for m in found}
            paused = await paused_destinations(conn, {r.key for r in rows}) if by != "error" else {}
        return [_group(by, row, received.get(row.first, 0.0), paused) for row in rows]

    async def page(
        self, filter_: QueueFilter | None = None, offset: int = 0, limit: int = 50
    ) -> QueuePage:
        """Recipients matching `filter_`, newest first (a stable order while their states
        change), with their total."""
        clauses = conditions(filter_ or QueueFilter())
        # The page's ids first, from the recipient table alone; then their messages.
        picked = (
            select(recipient.c.id)
            .where(*clauses)
            .order_by(recipient.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        async with self.db.reader.connect() as conn:
            # In a derived table: MySQL takes no LIMIT in an IN subquery itself.
            rows = await _rows(conn, recipient.c.id.in_(select(picked.subquery().c.id)))
            total = (
                await conn.execute(select(func.count()).select_from(recipient).where(*clauses))
            ).scalar_one()
        return QueuePage(rows=rows, total=int(total), offset=offset, limit=limit)

    async def find(self, ids: Collection[int]) -> list[QueueRow]:
        """The recipients `ids` in whatever state they are (those that exist), newest first."""
        ids = possible_ids(ids)
        if not ids:
            return []
        async with self.db.reader.connect() as conn:
            return await _rows(conn, recipient.c.id.in_(ids))


async def _rows(conn: AsyncConnection, where: ColumnElement[bool]) -> list[QueueRow]:
    """Queue rows (recipient and message summary) of the recipients `where` picks."""
    query = (
        select(
            *recipient_columns(),
            recipient.c.message_id,
            DESTINATION.label("destination"),
            recipient.c.updated_at,
            message.c.received_at,
            message.c.mail_from,
            message.c.subject,
        )
        .join(message, message.c.id == recipient.c.message_id)
        .where(where)
        .order_by(recipient.c.id.desc())
    )
    return [QueueRow(**row._asdict()) for row in await conn.execute(query)]


def _group(by: GroupBy, row: Any, oldest: float, paused: dict[str, Paused]) -> Group:
    error = by == "error"
    return Group(
        key=str(ErrorKey(row.last_code, row.last_enhanced, str(row.key))) if error else row.key,
        count=int(row.n),
        deferred=int(row.deferred),
        failed=int(row.failed),
        held=int(row.held),
        oldest=oldest,
        next_attempt_at=None if row.next_at is None else float(row.next_at),
        code=row.last_code if error else None,
        enhanced=row.last_enhanced if error else None,
        sample=str(row.sample) if error else "",
        paused=None if error else paused.get(row.key),
    )
