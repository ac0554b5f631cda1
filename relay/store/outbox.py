"""The webhooks' outbox: the events a state change raises, written in its transaction.

An event is a row of `webhook_event` per webhook that asks for it ([[webhook]] `events`)
and whose `match` selects the message. It is written by the transaction that makes the
change: ingest's group commit for `received` (the search judged in memory, by
relay.matching, as for the `[[tag]]` rules), the queue's results for `delivered`,
`deferred`, `failed` and `bounced`, the operators' actions for `held` and `released`
(the search then run in SQL on the stored message). A crash can lose neither the change
nor its event, and never one without the other. The JSON body is made here, once: every
attempt of relay/events/ sends the same bytes.
"""

from __future__ import annotations

import collections
import email.utils
import functools
import json
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.engine import Connection, Engine

from relay import ids, query, tagging
from relay.config import WebhookConfig
from relay.matching import Facts, matches
from relay.mime.summary import TEXT_LIMIT
from relay.routing import Destination
from relay.store.accepted import NewMessage
from relay.store.claims import IDS
from relay.store.schema import message, recipient, webhook_event
from relay.store.search import Filter, search_text, where

PENDING = "pending"
SENT = "sent"
EXPIRED = "expired"
STATES = (PENDING, SENT, EXPIRED)
"""An event's states: waiting to be sent (again), accepted by its receiver, given up."""


def iso(epoch: float) -> str:
    """An epoch as RFC 3339 UTC with milliseconds (as Mailpit writes its times)."""
    moment = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


@dataclass(frozen=True)
class Change:
    """One recipient's change of state that may raise `event`; `attempt` is the
    delivery attempt behind it (host, code, enhanced, text, duration), if any."""

    event: str
    recipient_id: int
    attempt: dict[str, Any] | None = None


def _addresses(value: str) -> list[dict[str, str]]:
    """An address header's value as Mailpit writes it: [{"Name", "Address"}]."""
    return [{"Name": name, "Address": addr} for name, addr in _pairs(value)]


@functools.lru_cache(maxsize=4096)
def _pairs(value: str) -> tuple[tuple[str, str], ...]:
    """(name, address) pairs of a header value: a plain address at once, else parsed
    (kept: the same senders come back again and again, and parsing is slow)."""
    if not value:
        return ()
    plain = value.strip()
    if "@" in plain and not any(c in plain for c in ' ,<>"()'):
        return (("", plain),)
    return tuple((n, a) for n, a in email.utils.getaddresses([value]) if n or a)


def _destination(route: str, domain: str) -> str | None:
    """The text form of a relayed recipient's destination; None for captured mail."""
    found = Destination.stored(route, domain)
    return str(found) if found.relays else None


def mailpit_summary(new: NewMessage) -> dict[str, Any]:
    """The fields of Mailpit's message summary, which its webhook POSTs on receipt."""
    s = new.summary
    to, cc = _addresses(s.to), _addresses(s.cc)
    named = {a["Address"].lower() for a in to + cc}
    bcc = [{"Name": "", "Address": r.address} for r in new.recipients]
    return {
        "ID": new.id,
        "MessageID": s.message_id,
        "Read": False,
        "From": next(iter(_addresses(s.from_)), None),
        "To": to,
        "Cc": cc,
        "Bcc": [a for a in bcc if a["Address"].lower() not in named],
        "ReplyTo": [],
        "Subject": s.subject,
        "Created": iso(new.received_at),
        "Username": new.auth_user or "",
        "Tags": list(new.tags),
        "Size": len(new.raw),
        "Attachments": s.attachments,
        "Snippet": s.snippet,
    }


Raised = Callable[[Mapping[tuple[str, str], int]], None]
"""Told of committed events: how many per (webhook URL, event)."""


def tally(rows: Iterable[Mapping[str, Any]]) -> collections.Counter[tuple[str, str]]:
    """How many of the outbox `rows` there are per (webhook URL, event)."""
    return collections.Counter((r["webhook"], r["event"]) for r in rows)


def _ignore(_counts: Mapping[tuple[str, str], int]) -> None:
    """No one counts raised events."""


class Outbox:
    """Which webhooks an event goes to, and its rows; the [[webhook]] tables are set by
    the composition root (`configure`), none by default. `raised` is told of the events
    once the transaction that wrote them commits (the metrics count them)."""

    def __init__(self, hooks: Sequence[WebhookConfig] = ()) -> None:
        self.configure(hooks)
        self.raised: Raised = _ignore
        self._written: weakref.WeakKeyDictionary[Connection, collections.Counter[tuple[str, str]]]
        self._written = weakref.WeakKeyDictionary()

    def watch(self, engines: Iterable[Engine]) -> None:
        """Tell `raised` of the events a transaction of `engines` wrote when it commits
        (and forget them when it rolls back, as a retried deadlock's victim does)."""
        for engine in engines:
            event.listen(engine, "commit", self._committed)
            event.listen(engine, "rollback", self._rolled_back)

    def _committed(self, conn: Connection) -> None:
        written = self._written.pop(conn, None)
        if written:
            self.raised(written)

    def _rolled_back(self, conn: Connection) -> None:
        self._written.pop(conn, None)

    def configure(self, hooks: Sequence[WebhookConfig]) -> None:
        """Use these [[webhook]] tables from now on."""
        self.hooks = tuple(hooks)
        self._queries = {h.url: query.parse(h.match) for h in self.hooks if h.match}

    def wanting(self, event: str) -> list[WebhookConfig]:
        """The webhooks that ask for `event` (match aside)."""
        return [h for h in self.hooks if event in h.events]

    def row(
        self, hook: WebhookConfig, event: str, message_id: str, body: dict[str, Any], now: float
    ) -> dict[str, Any]:
        """The outbox row of one event for one webhook, its ID and time put in its body."""
        event_id = ids.new_id(now)
        full = {"event": event, "id": event_id, "time": iso(now), **body}
        return {
            "event_id": event_id,
            "webhook": hook.url,
            "event": event,
            "message_id": message_id,
            "created_at": now,
            "body": json.dumps(full, separators=(",", ":"), ensure_ascii=False),
            "state": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "expires_at": now + hook.max_age_seconds,
            "lease_until": None,
            "last_error": "",
            "done_at": None,
        }

    def received(self, new: NewMessage) -> list[dict[str, Any]]:
        """The `received` rows of a message being stored (none without webhooks)."""
        hooks = self.wanting("received")
        if not hooks:
            return []
        if any(h.url in self._queries for h in hooks):  # a search to judge it by
            facts = _facts(new)
            hooks = [h for h in hooks if self._judge(h, facts)]
        if not hooks:
            return []
        body = {
            "message": {
                "id": new.id,
                "message_id": new.summary.message_id,
                "subject": new.summary.subject,
                "sender": new.mail_from,
                "from": new.summary.from_,
                "received_at": iso(new.received_at),
            },
            "recipients": [
                {
                    "address": r.address,
                    "status": r.status.value,
                    "destination": _destination(r.route, r.address.rpartition("@")[2].lower()),
                }
                for r in new.recipients
            ],
            **mailpit_summary(new),
        }
        return [self.row(h, "received", new.id, body, new.received_at) for h in hooks]

    def _judge(self, hook: WebhookConfig, facts: Facts) -> bool:
        """Whether `hook`'s match selects the message of `facts` (no match: every one)."""
        parsed = self._queries.get(hook.url)
        return parsed is None or matches(parsed, facts)

    def record_sync(self, conn: Connection, changes: Sequence[Change], now: float) -> int:
        """Write the events `changes` raise in `conn`'s transaction; return how many."""
        wanted = {c.event: self.wanting(c.event) for c in changes}
        changes = [c for c in changes if wanted[c.event]]
        if not changes:
            return 0
        rows = {r.id: r for r in conn.execute(_READ, {"ids": [c.recipient_id for c in changes]})}
        selected = self._selected(conn, {r.message_id for r in rows.values()})
        out: list[dict[str, Any]] = []
        for change in changes:
            found = rows.get(change.recipient_id)
            if found is None:
                continue
            body = _body(found, change.attempt)
            for hook in wanted[change.event]:
                if found.message_id in selected.get(hook.url, {found.message_id}):
                    out.append(self.row(hook, change.event, found.message_id, body, now))
        if out:
            conn.execute(insert(webhook_event), out)
            self._written.setdefault(conn, collections.Counter()).update(tally(out))
        return len(out)

    def _selected(self, conn: Connection, message_ids: set[str]) -> dict[str, set[str]]:
        """For each webhook with a `match`: which of `message_ids` it selects."""
        selected: dict[str, set[str]] = {}
        for url, parsed in self._queries.items():
            found = select(message.c.id).where(
                message.c.id.in_(sorted(message_ids)), *where(Filter(query=parsed))
            )
            selected[url] = set(conn.execute(found).scalars())
        return selected


_READ = (
    select(
        recipient.c.id,
        recipient.c.message_id,
        recipient.c.address,
        recipient.c.status,
        recipient.c.route,
        recipient.c.domain,
        message.c.message_id_header,
        message.c.subject,
        message.c.mail_from,
        message.c.from_header,
        message.c.received_at,
    )
    .join(message, message.c.id == recipient.c.message_id)
    .where(recipient.c.id.in_(IDS))
)
"""What an event's body says of its recipient and message."""


def _body(row: Any, attempt: dict[str, Any] | None) -> dict[str, Any]:
    """The body of a recipient's event (without its name, ID and time)."""
    return {
        "message": {
            "id": row.message_id,
            "message_id": row.message_id_header,
            "subject": row.subject,
            "sender": row.mail_from,
            "from": row.from_header,
            "received_at": iso(row.received_at),
        },
        "recipient": {"address": row.address, "status": row.status},
        "destination": _destination(row.route, row.domain),
        "attempt": attempt,
    }


def _facts(new: NewMessage) -> Facts:
    """What a search looks at in a message being stored (as relay.matching reads it)."""
    s = new.summary
    recipients = tuple(r.address for r in new.recipients)
    text = functools.partial(
        search_text, s.subject, [s.from_, s.to, s.cc, new.mail_from, *recipients], s.text,
        TEXT_LIMIT,
    )  # fmt: skip
    return Facts(
        subject=s.subject,
        from_header=s.from_,
        to_header=s.to,
        cc_header=s.cc,
        message_id=s.message_id,
        mail_from=new.mail_from,
        recipients=recipients,
        statuses=tuple(r.status.value for r in new.recipients),
        size=len(new.raw),
        attachments=s.attachments,
        listener=new.listener,
        auth_user=new.auth_user,
        received_at=new.received_at,
        search_text=functools.cache(text),
        tag_keys=frozenset(map(tagging.key, new.tags)),
        mailbox=new.mailbox,
    )
