"""The navigation's counts are kept while the database is unchanged and counted again
after any commit, whether this process or another one made it (relay/store/memo.py)."""

from __future__ import annotations

import asyncio
import sys
import time

from relay import ids, mime
from relay.status import Status
from relay.store import NewMessage, NewRecipient, Store
from tests import mail

QUIET_TRIES = 100

OTHER_PROCESS = """
import asyncio, sys, time
from relay.config import StorageConfig
from relay.store import Store

async def main(url: str, action: str, message_id: str) -> None:
    store = Store(StorageConfig(url=url))
    await store.open()
    try:
        if action == "read":
            assert await store.set_read([message_id], True) == [message_id]
        elif action == "hold":
            assert await store.actions.act("hold", message_id, time.time()) == 1
        else:
            assert await store.delete_messages([message_id]) == [message_id]
    finally:
        await store.close()

asyncio.run(main(*sys.argv[1:]))
"""


def _message(status: Status = Status.CAPTURED, user: str | None = None) -> NewMessage:
    raw = mail.plain()
    route = "capture" if status is Status.CAPTURED else "smarthost"
    return NewMessage(
        id=ids.new_id(),
        received_at=time.time(),
        mail_from="sender@example.com",
        recipients=[NewRecipient("rcpt@example.com", route, status)],
        raw=raw,
        summary=mime.summary.full(raw),
        listener="smtp",
        peer="127.0.0.1",
        auth_user=user,
    )


async def _in_other_process(store: Store, action: str, message_id: str) -> None:
    """Run `action` on `message_id` from a process of its own, on the same database."""
    url = store.db.url.render_as_string(hide_password=False)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OTHER_PROCESS, url, action, message_id
    )
    assert await child.wait() == 0


async def test_counts_are_kept_while_nothing_commits(store: Store) -> None:
    """Asking again without a commit in between reuses the counts instead of counting."""
    await store.add_message(_message())
    # PostgreSQL's token is the server's WAL position, which other databases' writers (other
    # tests running meanwhile) move too: look for a quiet moment, when the token held still.
    for _ in range(QUIET_TRIES):
        token = await store.db.change_token()
        first = await store.messages.counts()
        computed = store.messages._counts.computed
        assert await store.messages.counts() == first
        assert await store.messages.counts() == first
        if await store.db.change_token() == token:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the change token never held still while nothing was written")
    assert store.messages._counts.computed == computed
    assert (first.total, first.unread, first.by_status["captured"]) == (1, 1, 1)


async def test_counts_follow_commits_of_this_process(store: Store) -> None:
    """A message stored here, then a read mark set here, show in the very next counts."""
    await store.add_message(_message())
    assert (await store.messages.counts()).total == 1
    second = _message()
    await store.add_message(second)
    assert (await store.messages.counts()).total == 2
    await store.set_read([second.id], True)
    assert (await store.messages.counts()).unread == 1


async def test_counts_follow_commits_of_another_process(store: Store) -> None:
    """A read mark, a delete and a hold committed by another process (as `relay queue`
    or a second `relay serve` would) show in the next counts, users and queue summary."""
    kept = _message()
    queued = _message(Status.QUEUED, user="alice")
    await store.add_message(kept)
    await store.add_message(queued)
    before = await store.messages.counts()
    assert (before.total, before.unread, before.by_status["queued"]) == (2, 2, 1)
    assert (await store.queue_view.summary()).queued == 1
    assert await store.messages.users() == ["alice"]

    await _in_other_process(store, "read", kept.id)
    assert (await store.messages.counts()).unread == 1

    await _in_other_process(store, "hold", queued.id)
    held = await store.messages.counts()
    assert (held.by_status["queued"], held.by_status["held"]) == (0, 1)
    summary = await store.queue_view.summary()
    assert (summary.queued, summary.held) == (0, 1)

    await _in_other_process(store, "delete", queued.id)
    after = await store.messages.counts()
    assert (after.total, after.by_status["held"]) == (1, 0)
    assert await store.messages.users() == []
