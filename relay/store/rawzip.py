"""Raw bytes compressed at rest: `message_raw.data` as stored, and back (since revision 0011).

Each `message_raw` row says how its bytes are kept in `message_raw.encoding`: `PLAIN` (the
bytes as received: every row written before revision 0011, whose column came in as 0, so
an upgraded database needs no rewrite) or `ZLIB` (one zlib stream of the whole message; on
MySQL that stream is what relay.store.chunks cuts into chunks). A message that zlib does
not make smaller is kept `PLAIN`. The encoding is a column, not a marker inside the bytes,
so no message, whatever its first bytes, can be taken for a compressed one.

Level 1: on the seed's 5 KB messages it keeps 25.1% of the bytes in 36 µs per message,
level 6 23.7% in 71 µs (a 1 MB mail with an attachment: 48.7% in 15 ms against 45.7% in
30 ms); reading back costs 13 µs either way (`python -m bench.zlib_levels`; figures in
docs/benchmarks.md, Target 3). Half the CPU on the ingest path for 1.4 points of size.

The search text (`message_text.text`) is compressed too, but not on PostgreSQL (it keeps
it in TOAST, compressed, and its trigram index reads it); `text_at_rest` gives the stored
form for each database:
- SQLite (since revision 0011): a compressed row is a BLOB and a row from before the
  revision TEXT, so the value's own type is the marker. SQL reads it through the function
  `TEXT_SQL` (`plain_text`, registered on every SQLite connection by
  relay.store.database): free-text search's LIKE and the search indexer, which gives FTS5
  the text itself (the index never reads the external content back: FTS5's 'delete' is
  given the old text, and searches ask for rowids).
- MySQL and MariaDB (since revision 0012, which compressed the rows already there with
  the server's `COMPRESS()`): the column is a LONGBLOB holding every text in the format
  of `COMPRESS()` (`pack_mysql_text`, written here, so no round trip to the server), and
  free-text search's LIKE reads it through `UNCOMPRESS()` (`MYSQL_TEXT_SQL`), compared
  as its bytes are, as before. Every text is compressed, however short: the
  format is the marker. At 20,000 messages of 5 KB the database went from 2.15x the raw
  bytes to 0.83x (message_text 1.61x to 0.29x: InnoDB pages of 5 KB text rows were a
  third empty), and a search that scans every text takes less time, not more
  (docs/benchmarks.md, Target 3).

A message is compressed once, where it is summarised (relay.ingest, in a thread when it is
large), and read back by relay.store.messages (heads, raw, raws) and nowhere else: tests
and tools that look at the table use `unpack`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from relay.store.mysql import is_mysql

PLAIN = 0
"""`message_raw.encoding`: the bytes as received."""
ZLIB = 1
"""`message_raw.encoding`: a zlib stream (RFC 1950) of the bytes as received."""
LEVEL = 1
"""zlib's compression level (see the module)."""
IN_THREAD = 1 << 20
"""Callers decompress more stored bytes than this in a thread, off the event loop."""


TEXT_SQL = "relay_text"
"""The SQL function (SQLite) that gives a message_text.text value as text."""
MYSQL_TEXT_SQL = "UNCOMPRESS"
"""MySQL's SQL function that gives a message_text.text value as the text's UTF-8 bytes, which
LIKE compares with the term's bytes: the results of the column's collation before
revision 0012 (relay.store.mysql.COLLATION, utf8mb4_bin: a UTF-8 term is in a UTF-8 text
exactly when its bytes are), without decoding each text (`CONVERT(... USING utf8mb4)
COLLATE utf8mb4_bin`, the same results, made the scan of 20,000 texts 2.8 times slower)."""


class Damaged(ValueError):
    """Stored bytes that do not decompress to a whole message (cut short, or not zlib)."""


@dataclass(frozen=True)
class Stored:
    """A message's bytes as `message_raw` keeps them, and their encoding."""

    data: bytes
    encoding: int


def pack(raw: bytes) -> Stored:
    """`raw` as stored: compressed when that makes it smaller, else as it is."""
    packed = zlib.compress(raw, LEVEL)
    if len(packed) < len(raw):
        return Stored(packed, ZLIB)
    return Stored(raw, PLAIN)


def unpack(data: bytes, encoding: int) -> bytes:
    """The bytes as received of a stored `data` in `encoding`; raises Damaged when a
    compressed stream is incomplete (its chunks deleted meanwhile) or not zlib."""
    if encoding == PLAIN:
        return data
    if encoding != ZLIB:
        raise Damaged(f"unknown raw encoding {encoding}")
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(data)
    except zlib.error as exc:
        raise Damaged(str(exc)) from exc
    if not inflate.eof:
        raise Damaged("compressed raw bytes cut short")
    return raw


def head(prefix: bytes, encoding: int, limit: int, span: int) -> bytes | None:
    """The first `limit` bytes as received, from `prefix`, the first `span` stored bytes (a
    compressed stream's beginning decompresses to the message's beginning); None when
    `prefix` did not hold them all: read more (zlib bounds how much a whole block grows,
    not how much a block's beginning does)."""
    if encoding == PLAIN:
        return prefix[:limit]
    inflate = zlib.decompressobj()
    try:
        out = inflate.decompress(prefix, limit)
    except zlib.error as exc:
        raise Damaged(str(exc)) from exc
    if len(out) < limit and not inflate.eof and len(prefix) >= span:
        return None
    return out


def head_span(limit: int) -> int:
    """Stored bytes to read first for a head of `limit` bytes: enough for most mail."""
    return 2 * limit + 1024


def pack_text(text: str) -> str | bytes:
    """A search text as SQLite's message_text keeps it: compressed (a BLOB) when that
    makes it smaller, else as it is."""
    data = text.encode()
    packed = zlib.compress(data, LEVEL)
    return packed if len(packed) < len(data) else text


def plain_text(value: str | bytes | None) -> str | None:
    """A message_text.text value as text (the SQL function `TEXT_SQL`): BLOBs are
    compressed text, anything else is the text itself."""
    if isinstance(value, bytes):
        return zlib.decompress(value).decode()
    return value


def pack_mysql_text(text: str) -> bytes:
    """A search text as MySQL's message_text keeps it, in the format of MySQL's
    `COMPRESS()` (which `UNCOMPRESS()` reads): the length of its UTF-8 bytes in 4 bytes,
    little-endian, then one zlib stream of them; no text, no bytes."""
    data = text.encode()
    if not data:
        return b""
    return len(data).to_bytes(4, "little") + zlib.compress(data, LEVEL)


def unpack_mysql_text(value: bytes) -> str:
    """The text of a MySQL message_text.text value (written by `pack_mysql_text`, or by
    `COMPRESS()`, which may end it with a '.' after the stream)."""
    if not value:
        return ""
    return zlib.decompressobj().decompress(value[4:]).decode()


def text_at_rest(text: str, dialect: str) -> str | bytes:
    """A search text as message_text keeps it on the database `dialect` names (the
    module says how): as it is on PostgreSQL (or for any other name, such as "")."""
    if dialect == "sqlite":
        return pack_text(text)
    if is_mysql(dialect):
        return pack_mysql_text(text)
    return text
