"""MySQL and MariaDB: message_text.text compressed at rest (relay/store/rawzip.py).

The column becomes a LONGBLOB (its utf8mb4 bytes kept as they are), and every row already
there is compressed by the server's own `COMPRESS()`, in the format relay writes since
(`rawzip.pack_mysql_text`) and free-text search reads with `UNCOMPRESS()`. One UPDATE:
InnoDB undoes a statement whole, so a failed upgrade leaves no row half done, and it
commits with the new revision (the ALTER before it commits by itself; run again, it
changes nothing). A downgrade decompresses every row and makes the column LONGTEXT again,
in the table's character set and collation. SQLite and PostgreSQL: nothing to do (SQLite
compresses its search text since 0011, the value's type its marker; PostgreSQL keeps it
plain for its trigram index).

Revision 0012, after 0011.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade() -> None:
    """MySQL: the column a LONGBLOB, each text compressed."""
    if not _mysql():
        return
    op.execute("ALTER TABLE message_text MODIFY text LONGBLOB NOT NULL")
    op.execute("UPDATE message_text SET text = COMPRESS(text)")


def downgrade() -> None:
    """MySQL: each text decompressed, the column LONGTEXT again."""
    if not _mysql():
        return
    op.execute("UPDATE message_text SET text = UNCOMPRESS(text)")
    op.execute("ALTER TABLE message_text MODIFY text LONGTEXT NOT NULL")
