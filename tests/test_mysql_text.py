"""MySQL and MariaDB: the search text compressed at rest (relay/store/rawzip.py, revision
0012): written by relay in the format of the server's COMPRESS(), read by UNCOMPRESS() in
the search, found as before (case folded at ingest, accents kept apart), and rows written
before the revision compressed by it and made plain again by its downgrade."""

from __future__ import annotations

import random

from sqlalchemy import text

from relay.config import StorageConfig
from relay.store import Store
from relay.store.rawzip import pack_mysql_text, unpack_mysql_text
from tests.queueing import new_message, open_store
from tests.test_migrations import at_revision
from tests.test_rawzip import found
from tests.webkit import add, message

TEXTS = [
    "",
    "a",
    "invoice order report\nthe body, lower-cased",
    "überweisung café naïve 東京 😀 ending in a space ",
    "x" * 70_000,
]


async def server_reads(store: Store, value: str) -> tuple[bytes, int, bytes]:
    """What the server makes of `value` as relay writes it (UNCOMPRESS, and its length
    from UNCOMPRESSED_LENGTH), and its own COMPRESS() of the text."""
    async with store.db.reader.connect() as conn:
        query = text("SELECT UNCOMPRESS(:z), UNCOMPRESSED_LENGTH(:z), COMPRESS(:t)")
        plain, length, compressed = (
            await conn.execute(query, {"z": pack_mysql_text(value), "t": value})
        ).one()
        return bytes(plain), int(length), bytes(compressed)


async def stored_text(store: Store, message_id: str) -> bytes:
    """A message's search text as message_text holds it (text as UTF-8, before 0012)."""
    async with store.db.reader.connect() as conn:
        query = text("SELECT text FROM message_text WHERE message_id = :m")
        value = (await conn.execute(query, {"m": message_id})).scalar_one()
        return value.encode() if isinstance(value, str) else bytes(value)


async def test_relays_compressed_text_is_the_servers_format(mysql_url: str) -> None:
    """The server's UNCOMPRESS() gives back each text relay compressed (empty, one letter,
    non-ASCII, 70 KB), and relay reads the server's own COMPRESS() of it."""
    async with open_store(mysql_url) as store:
        for value in TEXTS:
            plain, length, compressed = await server_reads(store, value)
            assert plain == value.encode()
            assert length == len(value.encode())
            assert unpack_mysql_text(compressed) == value
            assert compressed[:4] == pack_mysql_text(value)[:4]


async def test_new_mail_is_compressed_and_found_as_before(mysql_url: str) -> None:
    """A 5 KB text is kept in a quarter of its size or less; free text finds its words
    in any case, non-ASCII ones too, but not an unaccented spelling of an accented word,
    and LIKE's wildcards in a term are taken literally."""
    words = " ".join(random.Random(4).choices(["invoice", "order", "report", "team"], k=900))
    body = f"{words} Die Überweisung für das Café ist 50% erledigt"
    async with open_store(mysql_url) as store:
        new = await add(store, message("Quartalszahlen", body))
        other = await add(store, message("Plain", "a cafe at 500 metres, C:\\Temp"))
        stored = await stored_text(store, new)
        assert len(stored) <= len(body) // 4
        assert unpack_mysql_text(stored).rstrip().endswith("für das café ist 50% erledigt")
        assert await found(store, "ÜBERWEISUNG") == [new]
        assert await found(store, "quartals") == [new]
        assert await found(store, "café") == [new]
        assert await found(store, "cafe") == [other]
        assert await found(store, "50%") == [new]
        assert await found(store, "0_m") == []
        assert await found(store, "c:\\temp") == [other]
        assert await found(store, "die überweisung") == [new]


async def test_rows_from_before_revision_0012_are_compressed_and_found(mysql_url: str) -> None:
    """Mail stored at revision 0011 (plain text) is compressed by the upgrade and found
    beside mail stored since; a downgrade to 0011 gives every row its text back, and an
    upgrade again finds them all."""
    await at_revision(mysql_url, "0011")
    old = new_message(["a@example.com"], raw=message("Ältere Nachricht", "über den Zaun"))
    old_store = Store(StorageConfig(url=mysql_url))
    try:
        await old_store.messages.add(old, compress=False)  # as relay at 0011 wrote it
        before = await stored_text(old_store, old.id)
    finally:
        await old_store.close()
    assert "über den zaun" in before.decode()
    store = Store(StorageConfig(url=mysql_url, auto_migrate=True))
    await store.open()
    try:
        assert unpack_mysql_text(await stored_text(store, old.id)) == before.decode()
        later = await add(store, message("Neuere Nachricht", "über die Mauer"))
        assert await found(store, "ÜBER") == [later, old.id]
        assert await found(store, "ältere") == [old.id]
        await store.db.downgrade("0011")
        assert await stored_text(store, old.id) == before
        assert "über die mauer" in (await stored_text(store, later)).decode()
        await store.db.upgrade()
        assert await found(store, "über d") == [later, old.id]
    finally:
        await store.close()
