"""The store: the only place that runs SQL. Ingest writes to it, delivery claims from it
(queue.py), the web and the CLI read it and act through its operator actions (actions.py).

What this package exports is imported on first use (PEP 562): a command that opens only
the database, like `relay stats`, loads relay.store.database and the modules it uses,
not the queue, retention, webhooks or the MIME code the Store pulls in.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from relay.store import async_engine

if TYPE_CHECKING:
    from relay.store.accepted import NewMessage, NewRecipient
    from relay.store.actions import Actions, Released
    from relay.store.checks import Checks, Kind
    from relay.store.counts import Counts, RecipientStats
    from relay.store.database import Database
    from relay.store.error_key import ErrorKey
    from relay.store.events import Event, Events
    from relay.store.indexer import Indexer
    from relay.store.mailboxes import Entry, InUse, Mailboxes, Removed
    from relay.store.messages import MessageRow, Page, RecipientRow
    from relay.store.migrate import SchemaState
    from relay.store.outbox import Outbox
    from relay.store.queue import Claim, Queue, Result
    from relay.store.queue_view import (
        Group,
        Paused,
        QueueFilter,
        QueuePage,
        QueueRow,
        QueueSummary,
        QueueView,
    )
    from relay.store.search import Filter
    from relay.store.shape import QueueShape, ShapeRow
    from relay.store.store import Store
    from relay.store.suppressions import Suppressed, Suppressions
    from relay.store.tags import Tags
    from relay.store.timeline import AttemptRow, RecipientTimeline
    from relay.store.webhooks import EventRow, HookAttempt, HookStats, Outgoing, Webhooks

__all__ = [
    "Actions",
    "AttemptRow",
    "Checks",
    "Claim",
    "Counts",
    "Database",
    "Entry",
    "ErrorKey",
    "Event",
    "EventRow",
    "Events",
    "Filter",
    "Group",
    "HookAttempt",
    "HookStats",
    "InUse",
    "Indexer",
    "Kind",
    "Mailboxes",
    "MessageRow",
    "NewMessage",
    "NewRecipient",
    "Outbox",
    "Outgoing",
    "Page",
    "Paused",
    "Queue",
    "QueueFilter",
    "QueuePage",
    "QueueRow",
    "QueueShape",
    "QueueSummary",
    "QueueView",
    "RecipientRow",
    "RecipientStats",
    "RecipientTimeline",
    "Released",
    "Removed",
    "Result",
    "SchemaState",
    "ShapeRow",
    "Store",
    "Suppressed",
    "Suppressions",
    "Tags",
    "Webhooks",
]

async_engine.load()  # before any module here imports sqlalchemy.ext.asyncio

_HOMES: dict[str, str] = {
    "Actions": "relay.store.actions",
    "AttemptRow": "relay.store.timeline",
    "Checks": "relay.store.checks",
    "Claim": "relay.store.queue",
    "Counts": "relay.store.counts",
    "Database": "relay.store.database",
    "Entry": "relay.store.mailboxes",
    "ErrorKey": "relay.store.error_key",
    "Event": "relay.store.events",
    "EventRow": "relay.store.webhooks",
    "Events": "relay.store.events",
    "Filter": "relay.store.search",
    "Group": "relay.store.queue_view",
    "HookAttempt": "relay.store.webhooks",
    "HookStats": "relay.store.webhooks",
    "InUse": "relay.store.mailboxes",
    "Indexer": "relay.store.indexer",
    "Kind": "relay.store.checks",
    "Mailboxes": "relay.store.mailboxes",
    "MessageRow": "relay.store.messages",
    "NewMessage": "relay.store.accepted",
    "NewRecipient": "relay.store.accepted",
    "Outbox": "relay.store.outbox",
    "Outgoing": "relay.store.webhooks",
    "Page": "relay.store.messages",
    "Paused": "relay.store.queue_view",
    "Queue": "relay.store.queue",
    "QueueFilter": "relay.store.queue_view",
    "QueuePage": "relay.store.queue_view",
    "QueueRow": "relay.store.queue_view",
    "QueueShape": "relay.store.shape",
    "QueueSummary": "relay.store.queue_view",
    "QueueView": "relay.store.queue_view",
    "RecipientRow": "relay.store.messages",
    "RecipientStats": "relay.store.counts",
    "RecipientTimeline": "relay.store.timeline",
    "Released": "relay.store.actions",
    "Removed": "relay.store.mailboxes",
    "Result": "relay.store.queue",
    "SchemaState": "relay.store.migrate",
    "ShapeRow": "relay.store.shape",
    "Store": "relay.store.store",
    "Suppressed": "relay.store.suppressions",
    "Suppressions": "relay.store.suppressions",
    "Tags": "relay.store.tags",
    "Webhooks": "relay.store.webhooks",
}
"""The module that defines each exported name."""

if not TYPE_CHECKING:  # mypy reads the imports above; a __getattr__ would hide typos

    def __getattr__(name: str) -> Any:
        """An exported name, imported from its module on first use."""
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value
