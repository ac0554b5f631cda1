"""message_raw.encoding: how a row keeps the bytes as received (relay/store/rawzip.py).

Rows already there keep their bytes as they are: the column comes in as 0 (PLAIN) for
them without touching a row (SQLite, PostgreSQL 11+ and MySQL 8 add a column with a
constant default in place); rows written since are compressed (ZLIB, 1). On SQLite the
search text of mail written since is compressed too, a BLOB where older rows hold TEXT
(the type is the marker: no column, nothing to change here on the way up).

Revision 0011, after 0010.
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

CHUNK = 1 << 20
"""relay.store.chunks.CHUNK as of this revision (MySQL keeps raw bytes in such chunks)."""
BATCH = 100
"""Compressed messages made plain again per statement batch on downgrade."""

_raw = sa.table(
    "message_raw",
    sa.column("message_id", sa.String),
    sa.column("data", sa.LargeBinary),
    sa.column("encoding", sa.Integer),
)
_chunk = sa.table(
    "message_raw_chunk",
    sa.column("message_id", sa.String),
    sa.column("seq", sa.Integer),
    sa.column("data", sa.LargeBinary),
)


def upgrade() -> None:
    """Add the column, 0 (the bytes as received) for every row so far."""
    with op.batch_alter_table("message_raw") as batch:
        batch.add_column(
            sa.Column("encoding", sa.Integer, nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    """Write every compressed message back as its bytes as received (in chunks on MySQL,
    as revision 0010 keeps them), then drop the column; on SQLite every compressed search
    text back as text."""
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for table in ("message_text", "message_fts_gone"):
            _texts_plain(conn, table)
    chunked = conn.dialect.name in ("mysql", "mariadb")
    while True:
        ids = [
            str(m)
            for m in conn.execute(
                sa.select(_raw.c.message_id).where(_raw.c.encoding != 0).limit(BATCH)
            ).scalars()
        ]
        if not ids:
            break
        for message_id in ids:
            _make_plain(conn, message_id, chunked)
    with op.batch_alter_table("message_raw") as batch:
        batch.drop_column("encoding")


def _make_plain(conn: sa.Connection, message_id: str, chunked: bool) -> None:
    """Replace one compressed message's stored bytes by the bytes as received."""
    first = conn.execute(sa.select(_raw.c.data).where(_raw.c.message_id == message_id)).scalar_one()
    pieces = [bytes(first)]
    if chunked:
        rest = conn.execute(
            sa.select(_chunk.c.data).where(_chunk.c.message_id == message_id).order_by(_chunk.c.seq)
        ).scalars()
        pieces.extend(bytes(p) for p in rest)
    raw = zlib.decompress(b"".join(pieces))
    where = _raw.c.message_id == message_id
    if not chunked:
        conn.execute(sa.update(_raw).where(where).values(data=raw, encoding=0))
        return
    conn.execute(sa.delete(_chunk).where(_chunk.c.message_id == message_id))
    conn.execute(sa.update(_raw).where(where).values(data=raw[:CHUNK], encoding=0))
    for seq, start in enumerate(range(CHUNK, len(raw), CHUNK), 1):
        piece = raw[start : start + CHUNK]
        conn.execute(sa.insert(_chunk).values(message_id=message_id, seq=seq, data=piece))


def _texts_plain(conn: sa.Connection, table: str) -> None:
    """SQLite: replace the compressed search texts (BLOBs) of `table` by their text."""
    if not sa.inspect(conn).has_table(table):
        return
    find = sa.text(f"SELECT rowid, text FROM {table} WHERE typeof(text) = 'blob' LIMIT {BATCH}")
    write = sa.text(f"UPDATE {table} SET text = :text WHERE rowid = :rowid")
    while rows := conn.execute(find).all():
        plain = [{"rowid": r, "text": zlib.decompress(t).decode()} for r, t in rows]
        conn.execute(write, plain)
