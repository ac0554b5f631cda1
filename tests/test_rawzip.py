"""Raw bytes compressed at rest (relay/store/rawzip.py, revision 0011), on every backend:
smaller on disk, read back byte for byte (a 40 MB message too, in chunks on MySQL), and
rows written before the revision still read right after it."""

from __future__ import annotations

import base64
import random

from sqlalchemy import select, text

from relay.config import StorageConfig
from relay.query import parse
from relay.status import Status
from relay.store import Filter, Store
from relay.store.chunks import CHUNK
from relay.store.rawzip import PLAIN, ZLIB, head, pack, unpack
from relay.store.schema import message_raw, message_raw_chunk
from tests import mail
from tests.queueing import new_message, open_store
from tests.test_migrations import at_revision
from tests.webkit import add, message

MB = 1000 * 1000


def noise(size: int, seed: int = 20) -> bytes:
    """A message of about `size` bytes whose body zlib cannot shrink much: base64 lines of
    random bytes, as an attachment of compressed data would be."""
    data = random.Random(seed).randbytes(size * 3 // 4)
    body = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return b"From: a@example.com\r\nSubject: noise\r\n\r\n" + body


async def stored(store: Store, message_id: str) -> tuple[bytes, int]:
    """A message's bytes as the table holds them (its chunks put after, on MySQL) and its
    encoding, read straight from message_raw (and message_raw_chunk)."""
    async with store.db.reader.connect() as conn:
        query = select(message_raw.c.data, message_raw.c.encoding)
        data, encoding = (
            await conn.execute(query.where(message_raw.c.message_id == message_id))
        ).one()
        chunks = await conn.execute(
            select(message_raw_chunk.c.data)
            .where(message_raw_chunk.c.message_id == message_id)
            .order_by(message_raw_chunk.c.seq)
        )
        return bytes(data) + b"".join(bytes(c) for c in chunks.scalars()), int(encoding)


async def test_new_mail_is_compressed_on_disk_and_read_back_exactly(db_url: str) -> None:
    """A 5 KB text message is stored compressed, a quarter of its size or less; raw,
    raws and heads give back exactly its bytes."""
    words = " ".join(random.Random(5).choices(["invoice", "order", "report", "team"], k=900))
    raw = mail.plain() + words.encode() + b"\r\n"
    async with open_store(db_url) as store:
        new = new_message(["a@example.com"], raw=raw, status=Status.CAPTURED)
        await store.add_message(new)
        data, encoding = await stored(store, new.id)
        assert encoding == ZLIB
        assert len(data) <= len(raw) // 4
        assert await store.messages.raw(new.id) == raw
        assert await store.messages.raws([new.id], None) == {new.id: raw}
        assert await store.messages.heads([new.id], 100) == {new.id: raw[:100]}
        assert await store.messages.heads([new.id]) == {new.id: raw}


async def test_mail_zlib_cannot_shrink_is_kept_as_it_is(db_url: str) -> None:
    """Bytes that compression would not make smaller are stored plain, byte for byte."""
    raw = random.Random(7).randbytes(3000)
    async with open_store(db_url) as store:
        new = new_message(["a@example.com"], raw=raw, status=Status.CAPTURED)
        await store.add_message(new)
        assert await stored(store, new.id) == (raw, PLAIN)
        assert await store.messages.raw(new.id) == raw
        assert await store.messages.heads([new.id], 1000) == {new.id: raw[:1000]}


async def test_a_40_mb_message_is_compressed_and_read_back_whole(db_url: str) -> None:
    """40 MB of base64 noise: compressed (to about 77%, so in chunks on MySQL), read back
    byte for byte for delivery and for the views; its head too."""
    raw = noise(40 * MB)
    async with open_store(db_url) as store:
        new = new_message(["b@example.net"], raw=raw, status=Status.CAPTURED)
        await store.add_message(new)
        data, encoding = await stored(store, new.id)
        assert encoding == ZLIB and CHUNK < len(data) < len(raw) * 0.8
        assert unpack(data, encoding) == raw
        assert await store.raw_to_send(new.id) == raw  # captured: read from the database
        assert await store.messages.heads([new.id]) == {new.id: raw[: 16 * 1024]}


async def test_rows_from_before_revision_0011_are_read_after_it(db_url: str) -> None:
    """Mail stored at revision 0010 (a 2 MB message in chunks on MySQL) keeps its bytes
    as they are through the upgrade and reads back exactly; mail compressed since is
    written back plain by a downgrade to 0010 (its search text too, on SQLite), and both
    read right after upgrading again."""
    await at_revision(db_url, "0010")
    small = new_message(["a@example.com"], raw=mail.plain(), status=Status.CAPTURED)
    large = new_message(["a@example.com"], raw=noise(2 * MB, 1), status=Status.CAPTURED)
    old = Store(StorageConfig(url=db_url))
    try:
        for new in (small, large):
            await old.messages.add(new, compress=False)  # as relay at 0010 wrote it
    finally:
        await old.close()
    store = Store(StorageConfig(url=db_url, auto_migrate=True))
    await store.open()
    try:
        for new in (small, large):
            assert await stored(store, new.id) == (new.raw, PLAIN)
            assert await store.messages.raw(new.id) == new.raw
        later = new_message(["c@example.com"], raw=mail.plain() * 20, status=Status.CAPTURED)
        await store.add_message(later)
        assert (await stored(store, later.id))[1] == ZLIB
        await store.db.downgrade("0010")
        async with store.db.reader.connect() as conn:
            rows = await conn.execute(text("SELECT message_id, data FROM message_raw"))
            firsts = {str(m): bytes(d) for m, d in rows}
        assert firsts[later.id] == later.raw  # plain again, as 0010 reads it
        if store.db.is_sqlite:  # its search text too
            async with store.db.reader.connect() as conn:
                kinds = await conn.execute(text("SELECT DISTINCT typeof(text) FROM message_text"))
                assert list(kinds.scalars()) == ["text"]
        await store.db.upgrade()
        for new in (small, large, later):
            assert await store.messages.raw(new.id) == new.raw
    finally:
        await store.close()


def test_a_head_asks_for_more_when_the_stored_prefix_is_too_short() -> None:
    """A compressed prefix that does not reach `limit` bytes asks for more (None) unless
    it is the whole stream; a whole stream gives its head."""
    raw = mail.plain() * 10
    data = pack(raw).data
    assert head(data[:12], ZLIB, 200, 12) is None
    assert head(data, ZLIB, 200, len(data)) == raw[:200]
    assert head(data, ZLIB, 10 * len(raw), len(data)) == raw


async def text_stored(store: Store, message_id: str) -> tuple[str, int]:
    """SQLite: the type and length of a message's search text as message_text holds it."""
    async with store.db.reader.connect() as conn:
        query = text("SELECT typeof(text), length(text) FROM message_text WHERE message_id = :m")
        kind, length = (await conn.execute(query, {"m": message_id})).one()
        return str(kind), int(length)


async def found(store: Store, q: str) -> list[str]:
    """Ids of the messages a search lists, newest first, and the exact count agrees."""
    page = await store.messages.page(0, 50, Filter(query=parse(q)))
    counted, _unread = await store.messages.count_matching(Filter(query=parse(q)))
    assert counted == len(page.messages)
    return [m.id for m in page.messages]


async def test_sqlite_search_text_is_compressed_and_found_indexed_or_not(
    sqlite_store: Store,
) -> None:
    """On SQLite the search text of new mail is a compressed BLOB, a quarter of the text or
    less; free text finds it before and after the indexer reaches it, beside a message
    whose text was stored plain (before revision 0011), and a deleted one leaves the index
    whole."""
    body = " ".join(random.Random(3).choices(["invoice", "order", "report", "team"], k=600))
    new = await add(sqlite_store, message("Quarterly figures", f"{body} the overhead projector"))
    old = new_message(["a@example.com"], raw=message("Old", "an overheated server"))
    await sqlite_store.messages.add(old, compress=False)
    kind, length = await text_stored(sqlite_store, new)
    assert kind == "blob" and length <= len(body) // 4
    assert (await text_stored(sqlite_store, old.id))[0] == "text"
    assert await found(sqlite_store, "head pro") == [new]  # scanned: not indexed yet
    assert await found(sqlite_store, "overhea") == [old.id, new]
    assert sqlite_store.indexer is not None
    assert await sqlite_store.indexer.catch_up() == 2
    assert await found(sqlite_store, "head pro") == [new]  # the index, then the text
    assert await found(sqlite_store, "overhea") == [old.id, new]
    assert await sqlite_store.delete_messages([new]) == [new]
    await sqlite_store.indexer.catch_up()  # takes it out of the index with its text
    async with sqlite_store.db.writer.begin() as conn:
        await conn.execute(text("INSERT INTO message_fts (message_fts) VALUES ('integrity-check')"))
    assert await found(sqlite_store, "overhea") == [old.id]
    assert await found(sqlite_store, "projector") == []
