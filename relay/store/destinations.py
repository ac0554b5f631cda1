"""Each destination's rate limit and circuit breaker, kept in the database so that every
process on it shares them (a row of `destination_state` per destination that has one).

Both act when recipients are claimed (`admit`, inside the claim's transaction): a
recipient whose destination is paused, or has no token left in its bucket, is not leased
but made to wait (its next attempt moved, no attempt counted), and the claim goes on with
the others. The bucket holds `max_messages_per_minute` tokens and refills at that rate; a
message (one transaction) takes one, and one that finds none is promised the next token
nobody was promised yet (`booked_until`), and waits until then: those over the limit go
one by one, as the tokens come, without being claimed again and again meanwhile.

The breaker acts when results are recorded (`record`, inside the results' transaction):
a push-back (refused connection, 421, 4.7.x) counts one more failure in a row, anything
else the destination answers resets the count. At `breaker_failures` the destination
pauses for `breaker_pause`: every recipient waiting for it waits until then, together.
When the pause ends one message is let through as a probe (the others wait for its
result, at most a lease); a probe that is pushed back pauses the destination again for
twice as long (up to `breaker_max_pause`), one that gets an answer closes the breaker
and the waiting recipients are due at once. Rows are locked while they change (FOR
UPDATE on PostgreSQL; SQLite's write lock serialises writers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.engine import Connection

from relay.config.limits import DestinationLimits
from relay.routing import Destination
from relay.status import Status
from relay.store.mysql import is_mysql
from relay.store.queue_view import destination_is
from relay.store.schema import destination_state, recipient

if TYPE_CHECKING:
    from relay.store.queue import Claim

log = logging.getLogger(__name__)

WAITING = (Status.QUEUED.value, Status.DEFERRED.value)
WAITING_AGAIN = case((recipient.c.attempts == 0, Status.QUEUED.value), else_=Status.DEFERRED.value)
"""A recipient that goes back to waiting is "queued" before its first attempt, else
"deferred"."""

_WAIT = (
    update(recipient)
    .where(recipient.c.id == bindparam("rid"))
    .values(
        status=WAITING_AGAIN,
        next_attempt_at=bindparam("until"),
        lease_owner=None,
        lease_until=None,
        updated_at=bindparam("updated"),
    )
)
"""A picked recipient made to wait until `until`, without an attempt (built once)."""


@dataclass
class State:
    """One destination's bucket and breaker, as its row holds them."""

    key: str
    tokens: float | None = None
    tokens_at: float | None = None
    booked_until: float | None = None
    failures: int = 0
    pause: float = 0.0
    paused_until: float | None = None
    probe_until: float | None = None
    reason: str = ""

    def admit(self, now: float, per_minute: int, probe_window: float) -> float | None:
        """None when a message may go now (taking a token, or as the probe), else until
        when it waits: the time its token comes, after those promised to others."""
        if self.paused_until is not None:
            if now < self.paused_until:
                return self.paused_until
            if self.probe_until is not None and now < self.probe_until:
                return self.probe_until
            self.probe_until = now + probe_window  # this message is the probe
            return None
        if per_minute <= 0:
            return None
        rate = per_minute / 60.0
        tokens = float(per_minute) if self.tokens is None else self.tokens
        tokens = min(float(per_minute), tokens + (now - (self.tokens_at or now)) * rate)
        self.tokens_at = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return None
        self.tokens = tokens
        slot = now + (1.0 - tokens) / rate
        if self.booked_until is not None and self.booked_until >= slot:
            slot = self.booked_until + 1.0 / rate
        self.booked_until = slot
        return slot

    def failed(self, now: float, limits: DestinationLimits, reason: str) -> bool:
        """Count a push-back; True when it pauses the destination (again)."""
        self.failures += 1
        self.reason = reason
        if self.paused_until is not None:
            if now < self.paused_until:  # a delivery that began before the pause
                return False
            self.pause = min(max(self.pause, limits.breaker_pause) * 2, limits.breaker_max_pause)
        elif self.failures >= limits.breaker_failures:
            self.pause = min(limits.breaker_pause, limits.breaker_max_pause)
        else:
            return False
        self.paused_until, self.probe_until = now + self.pause, None
        return True

    def answered(self) -> float | None:
        """The destination answered: close the breaker; return until when it held its
        recipients back (None when it did not)."""
        held = None
        if self.paused_until is not None:
            held = max(self.paused_until, self.probe_until or 0.0)
        self.failures, self.pause, self.reason = 0, 0.0, ""
        self.paused_until = self.probe_until = None
        return held

    @property
    def clean(self) -> bool:
        """No failure counted and no pause: nothing to reset."""
        return self.failures == 0 and self.paused_until is None


_STATE_FIELDS = tuple(f.name for f in fields(State))


@dataclass(frozen=True)
class Outcome:
    """What one transaction to a destination tells its breaker: `pushback` is the reply
    that pushed back (a refused connection, 421, 4.7.x), None when it answered."""

    key: str
    pushback: str | None
    limits: DestinationLimits


@dataclass
class Changes:
    """What recording outcomes changed: the messages it made due (to announce), and the
    states of the destinations it counted in."""

    due: list[str] = field(default_factory=list)
    states: list[State] = field(default_factory=list)


@dataclass
class Seen:
    """What one process last saw of the destinations' breakers (the database has them
    all): those paused, until when, so that its sends still waiting their turn know at
    once; and those with push-backs counted, whose next answer must reset them (an answer
    from any other destination writes nothing)."""

    paused: dict[str, float] = field(default_factory=dict)
    troubled: set[str] = field(default_factory=set)

    def note(self, states: Collection[State]) -> None:
        """Remember `states`, as just read or written."""
        for state in states:
            if state.clean:
                self.troubled.discard(state.key)
            else:
                self.troubled.add(state.key)
            if state.paused_until is None:
                self.paused.pop(state.key, None)
            else:
                self.paused[state.key] = state.paused_until

    def worth_recording(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """The outcomes that may change a breaker: push-backs, and answers from
        destinations with push-backs counted."""
        return [o for o in outcomes if o.pushback is not None or o.key in self.troubled]


def _insert(conn: Connection) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the connection's database (on MySQL: ON
    DUPLICATE KEY UPDATE of the key to itself). Each dialect's module is imported here:
    the connection's own is loaded already, and the others cost start-up time for nothing
    (PostgreSQL's and MySQL's took about 60 ms of a SQLite relay's start)."""
    if is_mysql(conn.dialect.name):  # a no-op update: the row stays as another made it
        from sqlalchemy.dialects import mysql

        statement = mysql.insert(destination_state)
        return statement.on_duplicate_key_update(key=statement.inserted.key)
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(destination_state).on_conflict_do_nothing(index_elements=["key"])
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(destination_state).on_conflict_do_nothing(index_elements=["key"])


def _states(
    conn: Connection, keys: Collection[str], create: Collection[str], now: float
) -> dict[str, State]:
    """The rows of `keys`, locked; those of `create` made first when missing."""

    def read(wanted: Collection[str]) -> dict[str, State]:
        query = destination_state.select().where(destination_state.c.key.in_(sorted(wanted)))
        rows = conn.execute(query.with_for_update())
        return {row.key: State(**{f: getattr(row, f) for f in _STATE_FIELDS}) for row in rows}

    found = read(keys) if keys else {}
    missing = [k for k in create if k not in found]
    if missing:
        conn.execute(
            _insert(conn),
            [
                {"key": k, "failures": 0, "pause": 0.0, "reason": "", "updated_at": now}
                for k in missing
            ],
        )
        found.update(read(missing))
    return found


_SAVED = tuple(f for f in _STATE_FIELDS if f != "key")
_SAVE = (
    update(destination_state)
    .where(destination_state.c.key == bindparam("k"))
    .values({f: bindparam(f"v_{f}") for f in (*_SAVED, "updated_at")})
)
"""Write one destination's state (built once)."""


def _save(conn: Connection, states: Sequence[State], now: float) -> None:
    if states:
        rows = [{"k": s.key, **{f"v_{f}": getattr(s, f) for f in _SAVED}} for s in states]
        conn.execute(_SAVE, [{**row, "v_updated_at": now} for row in rows])


def admit(
    conn: Connection,
    claims: Sequence[Claim],
    now: float,
    probe_window: float,
    rate: Callable[[Destination], int],
) -> tuple[list[Claim], list[State]]:
    """The `claims` that may go now (the others are made to wait, see the module), and
    the states of their destinations that have one."""
    per_minute = {str(c.destination): rate(c.destination) for c in claims}
    limited = [key for key, n in per_minute.items() if n > 0]
    states = _states(conn, per_minute, limited, now)
    if not states:
        return list(claims), []
    before = {key: replace(state) for key, state in states.items()}
    decided: dict[tuple[str, str], float | None] = {}  # per message and destination
    for claim in claims:
        key = str(claim.destination)
        group = (claim.message_id, key)
        if group in decided or key not in states:
            continue
        decided[group] = states[key].admit(now, per_minute[key], probe_window)
    _save(conn, [s for key, s in states.items() if s != before[key]], now)
    waits = [
        {"rid": c.id, "until": until, "updated": now}
        for c in claims
        if (until := decided.get((c.message_id, str(c.destination)))) is not None
    ]
    if waits:
        conn.execute(_WAIT, waits)
    waiting = {w["rid"] for w in waits}
    return [c for c in claims if c.id not in waiting], list(states.values())


def record(conn: Connection, outcomes: Sequence[Outcome], now: float) -> Changes:
    """Count each outcome in its destination's breaker; pause or resume destinations as
    it says."""
    changes = Changes()
    counted = [o for o in outcomes if o.pushback is None or o.limits.breaker_failures > 0]
    if not counted:
        return changes
    pushed = {o.key for o in counted if o.pushback is not None}
    states = _states(conn, {o.key for o in counted}, pushed, now)
    changed: dict[str, State] = {}
    for outcome in counted:
        state = states.get(outcome.key)
        if state is None or (outcome.pushback is None and state.clean):
            continue
        changed[outcome.key] = state
        if outcome.pushback is None:
            held = state.answered()
            if held is not None:
                log.info("destination %s answers again: its mail goes on", outcome.key)
                changes.due += _resume(conn, outcome.key, held, now)
        elif state.failed(now, outcome.limits, outcome.pushback):
            assert state.paused_until is not None
            log.warning(
                "destination %s paused for %.0fs after %d push-backs in a row (%s)",
                outcome.key, state.pause, state.failures, outcome.pushback,
            )  # fmt: skip
            _hold(conn, outcome.key, state.paused_until, now)
    _save(conn, list(changed.values()), now)
    changes.states = list(states.values())
    return changes


def _hold(conn: Connection, key: str, until: float, now: float) -> None:
    """Every recipient waiting for `key` waits until `until`, together."""
    conn.execute(
        update(recipient)
        .where(
            destination_is(key),
            recipient.c.status.in_(WAITING),
            recipient.c.next_attempt_at < until,
        )
        .values(next_attempt_at=until, updated_at=now)
    )


def _resume(conn: Connection, key: str, held: float, now: float) -> list[str]:
    """The recipients `key`'s breaker held back (waiting until `held` at most) are due now;
    returns their messages."""
    where = (
        destination_is(key),
        recipient.c.status.in_(WAITING),
        recipient.c.next_attempt_at > now,
        recipient.c.next_attempt_at <= held,
    )
    messages = list(conn.execute(select(recipient.c.message_id).where(*where).distinct()).scalars())
    if messages:
        conn.execute(update(recipient).where(*where).values(next_attempt_at=now, updated_at=now))
    return messages
