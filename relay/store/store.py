"""The Store: the database and its nouns, plus the event hub (relay.store says what each
noun is); imported on first use of `relay.store.Store`, so that a command that only
counts (`relay stats`) does not load the queue, retention, webhooks and MIME code."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Sequence

from relay.config import StorageConfig, SuppressionConfig, WebhookConfig
from relay.status import Status
from relay.store import retention
from relay.store.accepted import NewMessage, message_rows
from relay.store.actions import Actions
from relay.store.batch import GroupCommit
from relay.store.changes import ChangeFeed
from relay.store.checks import Checks
from relay.store.database import Database
from relay.store.events import Event, Events
from relay.store.fresh import FreshRaw
from relay.store.indexer import Indexer
from relay.store.mailboxes import Mailboxes, Removed
from relay.store.messages import Gone, Messages
from relay.store.notices import Notices
from relay.store.outbox import Outbox, tally
from relay.store.queue import Queue
from relay.store.queue_view import (
    QueueView,
)
from relay.store.search import Filter
from relay.store.shape import WAITING, QueueShape, shape
from relay.store.suppressions import Suppressions
from relay.store.tags import Tags
from relay.store.timeline import Timeline
from relay.store.webhooks import Webhooks


class Store:
    """The database and its nouns, plus the event hub that announces committed changes.

    `messages` stores and reads mail; `queue` claims and records what workers send;
    `queue_view` groups and lists the queue for operators, `actions` is what they do to
    it (retry, hold, release, cancel, release captured mail); `timeline` reads one
    message's attempts; `tags` lists the tags (changes go through `set_tags`,
    `rename_tag` and `delete_tag`, which announce them); `checks` keeps the results of
    checks run on a message; `mailboxes` is what POP3 reads (changes go through
    `remove_from_mailbox`, which announces them). `outbox` writes the webhooks' events
    with the changes that raise them, `webhooks` hands them to the sender and shows them;
    `suppressions` is the suppression list. `configure` gives them the [[webhook]] and
    [suppression] tables.
    """

    def __init__(self, storage: StorageConfig) -> None:
        self.db = Database(storage)
        self.events = Events()
        self.messages = Messages(self.db)
        self.timeline = Timeline(self.db)
        self.outbox = Outbox()
        # The engines whose transactions write events: the writer's, on SQLite the group
        # commit's and the queue's too.
        engines = (self.db.writer.sync_engine, self.db.commit_engine, self.db.queue_engine)
        self.outbox.watch(e for e in engines if e is not None)
        self.suppressions = Suppressions(self.db, self.events, self.outbox)
        self.webhooks = Webhooks(self.db, self.events)
        self.queue = Queue(self.db, self.events, self.suppressions)
        self.queue_view = QueueView(self.db)
        self.actions = Actions(self.db, self.events, self.outbox)
        self.tags = Tags(self.db)
        self.checks = Checks(self.db)
        self.mailboxes = Mailboxes(self.db)
        self.committer = GroupCommit(self.db)
        self.committer.lease_sync = self.queue.hand_off_sync  # a worker's hand-off's
        # SQLite's search index is filled in the background (PostgreSQL keeps its own).
        self.indexer = Indexer(self.db, self.committer) if self.db.is_sqlite else None
        self.notices: Notices | None = None
        self.changes: ChangeFeed | None = None
        self.fresh = FreshRaw()

    def configure(self, webhooks: Sequence[WebhookConfig], suppression: SuppressionConfig) -> None:
        """Raise events for these [[webhook]] tables, suppress as [suppression] says."""
        self.outbox.configure(webhooks)
        self.suppressions.settings = suppression

    async def open(self) -> None:
        """Check the schema: create it in an empty database, upgrade it when allowed
        (`auto_migrate`), else stop with a StoreError that says what to run."""
        await self.db.prepare()

    async def listen(self) -> None:
        """Hear the changes other processes commit, as events (PostgreSQL LISTEN, MySQL's
        change_log polled).

        On SQLite, where one process owns the database, there is nothing to hear.
        """
        if self.db.is_sqlite or self.notices is not None or self.changes is not None:
            return
        if self.db.is_mysql:
            interval = self.db.storage.change_poll
            self.changes = ChangeFeed(self.db.writer, self.db.origin, self.events, interval)
            await self.changes.start()
            return
        self.notices = Notices(self.db.listen_params(), self.db.origin, self.events)
        await self.notices.start()

    async def add_message(self, new: NewMessage) -> None:
        """Store an accepted message durably, then announce it.

        Messages that arrive together share one transaction (group commit); this returns
        only after the commit that holds `new`, so the caller may answer 250. Recipients
        handed to the worker in that commit (relay.store.batch) wake no claim.
        """
        rows = message_rows(new, self.db.dialect)
        events = self.outbox.received(new)
        if events:
            rows = dataclasses.replace(rows, events=events)
        due = any(r.status is Status.QUEUED for r in new.recipients)
        if due:  # before the commit: a hand-off sends it as soon as it is durable
            self.fresh.put(new.id, new.raw)
        try:
            handed = await self.committer.add(rows)
        except BaseException:
            self.fresh.drop([new.id])
            raise
        if events:
            self.outbox.raised(tally(events))
        self.events.publish(Event("message", new.id, due=due and not handed, mailbox=new.mailbox))

    async def raw_to_send(self, message_id: str) -> bytes | None:
        """The raw bytes of a message to deliver: from memory when it was just accepted
        here (taken: a later delivery of it reads the database), else from the database;
        None when it is gone."""
        raw = self.fresh.take(message_id)
        if raw is None:
            raw = await self.messages.raw(message_id)
        return raw

    async def prefetch_raw(self, message_ids: Iterable[str]) -> int:
        """Read the bytes of those of `message_ids` not in memory, in one query, so that
        their deliveries take them from memory (mail another process accepted, or older
        than what memory keeps); return how many were read."""
        missing = [m for m in dict.fromkeys(message_ids) if self.fresh.get(m) is None]
        found = await self.messages.raws(missing, self.fresh.max_one)
        for message_id, raw in found.items():
            self.fresh.put(message_id, raw)
        return len(found)

    def _gone(self, gone: Gone) -> list[str]:
        """Announce the deleted messages, each with its mailbox; their ids."""
        message_ids = list(gone)
        self.fresh.drop(message_ids)
        for message_id, mailbox in gone.items():
            self.events.publish(Event("deleted", message_id, mailbox=mailbox))
        return message_ids

    async def delete_messages(self, ids: list[str]) -> list[str]:
        """Delete messages (with their recipients and attempts); announce each that went."""
        return self._gone(await self.messages.delete_returning(ids))

    async def delete_matching(self, filter_: Filter) -> list[str]:
        """Delete every message `filter_` matches; announce each that went."""
        return self._gone(await self.messages.delete_matching(filter_))

    async def remove_from_mailbox(self, name: str | None, ids: list[str]) -> Removed:
        """A POP3 session's deletions (relay.store.mailboxes.Mailboxes.remove), in one
        transaction; announce what went and what only left its mailbox."""
        removed = await self.mailboxes.remove(name, ids)
        self._gone(removed.deleted)
        for message_id in removed.unlisted:  # with the mailbox they left (web/live.py)
            self.events.publish(Event("status", message_id, mailbox=name))
        return removed

    async def set_read(self, ids: list[str], read: bool) -> list[str]:
        """Mark messages read or unread; announce those whose marker changed."""
        changed = await self.messages.set_read(ids, read)
        for message_id in changed:
            self.events.publish(Event("status", message_id))
        return changed

    async def set_read_matching(self, filter_: Filter, read: bool) -> list[str]:
        """Mark every message `filter_` matches read or unread; announce those that changed."""
        changed = await self.messages.set_read_matching(filter_, read)
        for message_id in changed:
            self.events.publish(Event("status", message_id))
        return changed

    async def queue_shape(self, now: float, statuses: Collection[str] = WAITING) -> QueueShape:
        """The queue's shape at `now` (relay.store.shape): recipients in `statuses` by
        destination and by the age of their message."""
        return await shape(self.db, now, statuses)

    def _changed(self, message_ids: list[str] | None) -> list[str] | None:
        for message_id in message_ids or ():
            self.events.publish(Event("status", message_id))
        return message_ids

    async def set_tags(self, ids: list[str], tags: list[str]) -> list[str]:
        """Give each message of `ids` exactly `tags` (checked names; none: no tags);
        announce and return those there are."""
        return self._changed(await self.tags.set(ids, tags)) or []

    async def rename_tag(self, old: str, new: str) -> list[str] | None:
        """Call the tag `old` `new` (a checked name) everywhere; announce and return the
        messages changed, None when no message has `old`."""
        return self._changed(await self.tags.rename(old, new))

    async def delete_tag(self, name: str) -> list[str] | None:
        """Take the tag `name` off every message; announce and return the messages
        changed, None when no message has it."""
        return self._changed(await self.tags.delete(name))

    async def prune(
        self,
        max_messages: int,
        max_age: float,
        now: float,
        stopping: Callable[[], bool] = lambda: False,
    ) -> list[str]:
        """Retention: delete done-with mail older than `max_age` seconds (0: no age limit)
        and the oldest beyond `max_messages` (0: no limit), in short transactions until
        done or `stopping()`; announce each that went."""
        gone: Gone = {}
        waiting = self.committer.waiting  # ingest's 250s first
        if max_age > 0:
            cutoff = now - max_age
            gone |= await retention.prune_older_than(
                self.db, cutoff, stopping=stopping, ingest_waiting=waiting
            )
        if max_messages > 0 and not stopping():
            gone |= await retention.prune_beyond(
                self.db, max_messages, stopping=stopping, ingest_waiting=waiting
            )
        return self._gone(gone)

    async def purge(self, older_than: float, statuses: Collection[str] | None = None) -> list[str]:
        """Delete done-with mail received before `older_than` (epoch seconds) whose status
        is one of `statuses` (None: captured, delivered, failed or cancelled); never mail
        still queued, deferred, held or being sent. Announce each that went."""
        gone = await retention.prune_older_than(
            self.db, older_than, statuses=statuses, ingest_waiting=self.committer.waiting
        )
        return self._gone(gone)

    async def purgeable(self, older_than: float, statuses: Collection[str] | None = None) -> int:
        """How many messages `purge(older_than, statuses)` would delete now."""
        return await retention.count_older_than(self.db, older_than, statuses)

    async def close(self) -> None:
        """Commit what is queued, stop listening, end event subscriptions and close the
        database."""
        if self.indexer is not None:
            await self.indexer.stop()
        await self.committer.close()
        if self.notices is not None:
            await self.notices.stop()
            self.notices = None
        if self.changes is not None:
            await self.changes.stop()
            self.changes = None
        self.events.close()
        await self.mailboxes.close()
        await self.db.close()
