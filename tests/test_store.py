"""The store on both backends: atomic writes, exact raw bytes, dedup, paging, schema version."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from relay import ids, mime
from relay.config import StorageConfig
from relay.status import Status
from relay.store import NewMessage, NewRecipient, Store, migrate
from relay.store.schema import message_raw, recipient
from tests import mail


def new_message(raw: bytes, rcpts: list[str], when: float | None = None) -> NewMessage:
    """A NewMessage as the SMTP handler would build it."""
    return NewMessage(
        id=ids.new_id(when),
        received_at=time.time() if when is None else when,
        mail_from="sender@example.com",
        recipients=[NewRecipient(a) for a in rcpts],
        raw=raw,
        summary=mime.summary.full(raw),
        listener="smtp",
        peer="127.0.0.1",
    )


@pytest.fixture
async def store(db_url: str):  # type: ignore[no-untyped-def]
    """An opened store on a fresh database."""
    s = Store(StorageConfig(url=db_url))
    await s.open()
    yield s
    await s.close()


async def count(store: Store, table) -> int:  # type: ignore[no-untyped-def]
    """Rows in a table."""
    async with store.db.reader.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_raw_bytes_come_back_exactly(store: Store) -> None:
    """Binary raw bytes (NUL, 8-bit, CR without LF) are returned exactly as stored."""
    raw = mail.plain() + b"\x00\xff\xfe\r tail\r\n"
    new = new_message(raw, ["a@example.com"])
    await store.add_message(new)
    assert await store.messages.raw(new.id) == raw
    row = await store.messages.get(new.id)
    assert row is not None
    assert (row.subject, row.size, row.status) == ("Plain hello", len(raw), Status.CAPTURED)


async def test_recipients_deduplicated_in_the_store(store: Store) -> None:
    """Duplicates by domain case are stored once, the first spelling kept."""
    new = new_message(mail.plain(), ["X@Example.COM", "X@example.com", "x@example.com"])
    await store.add_message(new)
    row = await store.messages.get(new.id)
    assert row is not None
    assert [r.address for r in row.recipients] == ["X@Example.COM", "x@example.com"]


async def test_failed_write_stores_nothing(store: Store) -> None:
    """A transaction that fails half-way leaves no message, raw bytes or recipients behind."""
    first = new_message(mail.plain(), ["a@example.com"])
    await store.add_message(first)
    clash = new_message(mail.plain(), ["b@example.com", "c@example.com"])
    clash = NewMessage(**{**clash.__dict__, "id": first.id})
    with pytest.raises(Exception):  # noqa: B017 - the backend's integrity error
        await store.add_message(clash)
    assert await count(store, message_raw) == 1
    assert await count(store, recipient) == 1


async def test_page_is_newest_first_with_total(store: Store) -> None:
    """Pages list the newest message first and carry the total count."""
    base = time.time()
    stored = []
    for i in range(7):
        new = new_message(mail.plain(), [f"r{i}@example.com"], when=base + i)
        await store.add_message(new)
        stored.append(new.id)
    first = await store.messages.page(0, 3)
    second = await store.messages.page(3, 3)
    assert first.total == 7
    assert [m.id for m in first.messages] == stored[::-1][:3]
    assert [m.id for m in second.messages] == stored[::-1][3:6]


async def test_schema_version_recorded_and_reopen_keeps_data(db_url: str) -> None:
    """The first open records the schema version; opening again keeps data and version."""
    first = Store(StorageConfig(url=db_url))
    await first.open()
    new = new_message(mail.plain(), ["a@example.com"])
    await first.add_message(new)
    await first.close()
    second = Store(StorageConfig(url=db_url))
    await second.open()
    try:
        assert await second.db.schema_version() == migrate.head()
        assert await second.messages.raw(new.id) == mail.plain()
    finally:
        await second.close()


async def test_delete_removes_raw_and_recipients(store: Store) -> None:
    """Deleting a message deletes its raw bytes and recipients with it."""
    new = new_message(mail.plain(), ["a@example.com", "b@example.com"])
    await store.add_message(new)
    assert await store.messages.delete([new.id]) == 1
    assert await store.messages.get(new.id) is None
    assert await count(store, message_raw) == 0
    assert await count(store, recipient) == 0


async def test_commit_is_announced_after_it_happened(store: Store) -> None:
    """Subscribers hear of a stored message, and can read it when they do."""
    async with store.events.subscribe() as queue:
        new = new_message(mail.plain(), ["a@example.com"])
        await store.add_message(new)
        event = queue.get_nowait()
    assert (event.kind, event.message_id) == ("message", new.id)
    assert await store.messages.get(new.id) is not None
