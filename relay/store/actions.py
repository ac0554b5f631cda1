"""The operators' actions on the queue: retry, hold, release and cancel recipients (of one
message, by id, or all that a queue filter matches), and release captured mail to chosen
addresses. The web UI, the JSON API and the CLI all act through here.

Routing is not done here: a release takes each address with the decision its caller made
(relay.routing.route_all). Every action updates, NOTIFYs the other processes at commit,
then tells this one's subscribers; one that makes recipients due now also wakes workers.
A recipient being sent is left alone.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from relay import address
from relay.routing import NOT_AN_ADDRESS, Routed
from relay.status import ACTIONS, SHOWN, Status
from relay.store.database import Database
from relay.store.events import Events
from relay.store.outbox import Change, Outbox
from relay.store.queue_view import QueueFilter, conditions
from relay.store.returning import update_returning_rows
from relay.store.schema import message, possible_ids, recipient


@dataclass(frozen=True)
class Released:
    """What releasing a captured message did: addresses queued (with their route) and
    addresses left alone, each with the reason (its route, or its status)."""

    queued: dict[str, str]
    skipped: dict[str, str]


def action_update(action: str, now: float) -> tuple[list[str], dict[str, object]]:
    """For an operator action: the statuses it applies to, and the values it sets."""
    sources, target, due_now = ACTIONS[action]
    values: dict[str, object] = {"status": target.value, "updated_at": now}
    if due_now:
        values["next_attempt_at"] = now
    if target is Status.CANCELLED:
        values["next_attempt_at"] = None
    return sorted(s.value for s in sources), values


def makes_due(action: str) -> bool:
    """Whether an operator action makes its recipients due now (retry, release)."""
    return ACTIONS[action][2]


class Actions:
    """Operator actions: each returns how many recipients it changed."""

    def __init__(self, db: Database, events: Events, outbox: Outbox | None = None) -> None:
        self.db = db
        self.events = events
        self.outbox = outbox or Outbox()

    async def affected(self, action: str, filter_: QueueFilter) -> int:
        """How many recipients `act_matching(action, filter_)` would change now."""
        sources, _values = action_update(action, 0.0)
        shown = [s for s in sources if s in SHOWN]
        async with self.db.reader.connect() as conn:
            query = select(func.count()).select_from(recipient)
            result = await conn.execute(query.where(*conditions(filter_, statuses=shown)))
            return int(result.scalar_one())

    async def act(
        self,
        action: str,
        message_id: str,
        now: float,
        recipient_ids: Collection[int] | None = None,
    ) -> int:
        """An operator action (a key of ACTIONS) on a message's recipients (those in
        `recipient_ids`, else all) in states it applies to."""
        sources, values = action_update(action, now)
        where = [recipient.c.message_id == message_id, recipient.c.status.in_(sources)]
        if recipient_ids is not None:
            where.append(recipient.c.id.in_(possible_ids(recipient_ids)))
        return await self._update(where, values, action, now)

    async def act_on(self, action: str, ids: Sequence[int], now: float) -> int:
        """An operator action on the recipients `ids`, those in states it applies to."""
        ids = possible_ids(ids)
        if not ids:
            return 0
        sources, values = action_update(action, now)
        where = [recipient.c.id.in_(ids), recipient.c.status.in_(sources)]
        return await self._update(where, values, action, now)

    async def act_matching(self, action: str, filter_: QueueFilter, now: float) -> int:
        """An operator action on every recipient `filter_` matches among those the queue
        view shows that it applies to (retry: the deferred and failed ones)."""
        sources, values = action_update(action, now)
        shown = [s for s in sources if s in SHOWN]
        where = conditions(filter_, statuses=shown)
        return await self._update(where, values, action, now)

    async def _update(
        self,
        where: Sequence[ColumnElement[bool]],
        values: dict[str, object],
        action: str,
        now: float,
    ) -> int:
        """Update; write the events it raises (held, released); NOTIFY other processes at
        commit, then tell this one's subscribers."""
        due = makes_due(action)
        async with self.db.writer.begin() as conn:
            columns = [recipient.c.id, recipient.c.message_id]
            rows = await update_returning_rows(conn, recipient, where, values, columns)
            changed = [str(message_id) for _, message_id in rows]
            event = RAISES.get(action)
            if event is not None and rows:
                raised = [Change(event, recipient_id) for recipient_id, _ in rows]
                await conn.run_sync(self.outbox.record_sync, raised, now)
            await self.db.notify_changes(conn, changed, due)
        self.events.announce(changed, due)
        return len(changed)

    async def release_captured(
        self, message_id: str, routed: Sequence[Routed], now: float
    ) -> Released | None:
        """Queue a stored message for the addresses of `routed`, each with its route.

        An address already a captured recipient of the message is queued in place; a new
        one is added. Addresses whose decision does not relay them (or that have none: no
        address), and those whose recipient is in another state, are left alone and
        reported. None when there is no such message.
        """
        queued: dict[str, str] = {}
        skipped: dict[str, str] = {}
        async with self.db.writer.begin() as conn:
            found = await conn.execute(select(message.c.id).where(message.c.id == message_id))
            if found.first() is None:
                return None
            existing = await _recipient_states(conn, message_id)
            for one in routed:
                if one.decision is None or one.decision.action != "relay":
                    skipped[one.address] = one.decision.label if one.decision else NOT_AN_ADDRESS
                    continue
                status = await _queue(
                    conn, message_id, one.address, one.decision.label, now, existing
                )
                if status is None:
                    queued[one.address] = one.decision.label
                else:
                    skipped[one.address] = status
            if queued:
                keys = [address.dedup_key(a) for a in queued]
                await conn.run_sync(self._released, message_id, keys, now)
                await self.db.notify_changes(conn, [message_id], due=True)
        if queued:
            self.events.announce([message_id], due=True)
        return Released(queued, skipped)

    def _released(self, conn: Connection, message_id: str, keys: list[str], now: float) -> None:
        """The `released` events of the recipients of `message_id` whose keys are `keys`."""
        found = select(recipient.c.id).where(
            recipient.c.message_id == message_id, recipient.c.address_key.in_(keys)
        )
        raised = [Change("released", i) for i in conn.execute(found).scalars()]
        self.outbox.record_sync(conn, raised, now)


RAISES = {"hold": "held", "release": "released"}
"""The webhook event an operator action raises for each recipient it changes."""


async def _recipient_states(conn: AsyncConnection, message_id: str) -> dict[str, tuple[int, str]]:
    """The message's recipients by dedup key: (recipient id, status)."""
    rows = await conn.execute(
        select(recipient.c.id, recipient.c.address_key, recipient.c.status).where(
            recipient.c.message_id == message_id
        )
    )
    return {row.address_key: (row.id, row.status) for row in rows}


async def _queue(
    conn: AsyncConnection,
    message_id: str,
    rcpt: str,
    route: str,
    now: float,
    existing: dict[str, tuple[int, str]],
) -> str | None:
    """Queue `rcpt` on `route`: a new recipient, or a captured one in place. None when
    queued, else the state that kept it from being queued."""
    key = address.dedup_key(rcpt)
    values = {
        "route": route,
        "status": Status.QUEUED.value,
        "next_attempt_at": now,
        "updated_at": now,
    }
    row = existing.get(key)
    if row is None:
        await conn.execute(
            insert(recipient).values(
                message_id=message_id,
                address=rcpt,
                address_key=key,
                domain=address.domain_of(rcpt),
                **values,
            )
        )
    elif row[1] == Status.CAPTURED.value:
        await conn.execute(update(recipient).where(recipient.c.id == row[0]).values(**values))
    else:
        return row[1]
    return None
