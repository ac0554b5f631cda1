"""A substring index for free-text search over `message_text.text`.

SQLite: an FTS5 table with the trigram tokenizer over message_text. External content: the
text is not stored twice. detail=none: the index says which trigrams a row holds, not
where (a tenth of the size and a quarter of the CPU of full detail); search checks each
candidate's text. It is filled by relay.store.indexer while ingest is idle, never on the
path to a 250. `message_fts_state.indexed_to` is the highest message_text rowid in the
index; `message_fts_gone` keeps the text of indexed rows deleted since, until the indexer
takes them out of the index (an FTS5 delete needs the old text, and tokenizing it inside a
retention delete would hold the write lock long). The trigger also lowers `indexed_to`
below the highest rowid left: SQLite may give a new row the rowid of a deleted last row,
and that row must count as not yet indexed. Rows already stored are indexed by the
indexer after the upgrade.

PostgreSQL: the pg_trgm extension and a GIN trigram index on message_text.text, which
LIKE uses by itself. Without the extension (no right to create it) the upgrade goes on
without the index and says so; search then scans, as before.

Revision 0004, after 0003.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = logging.getLogger("relay.store.migrations")

SQLITE_UP = (
    "CREATE VIRTUAL TABLE message_fts USING fts5("
    "text, content='message_text', content_rowid='rowid', tokenize='trigram', detail='none')",
    "CREATE TABLE message_fts_state ("
    "id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1), indexed_to INTEGER NOT NULL)",
    "INSERT INTO message_fts_state (id, indexed_to) VALUES (1, 0)",
    "CREATE TABLE message_fts_gone (rowid INTEGER NOT NULL PRIMARY KEY, text TEXT NOT NULL)",
    """CREATE TRIGGER message_fts_forget AFTER DELETE ON message_text BEGIN
  INSERT INTO message_fts_gone (rowid, text) SELECT old.rowid, old.text
    WHERE old.rowid <= (SELECT indexed_to FROM message_fts_state);
  UPDATE message_fts_state SET indexed_to = (SELECT coalesce(max(rowid), 0) FROM message_text)
    WHERE indexed_to > (SELECT coalesce(max(rowid), 0) FROM message_text);
END""",
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS message_fts_forget",
    "DROP TABLE IF EXISTS message_fts_gone",
    "DROP TABLE IF EXISTS message_fts_state",
    "DROP TABLE IF EXISTS message_fts",
)
PG_INDEX = "ix_message_text_trgm"


def upgrade() -> None:
    """SQLite: the FTS5 table, its state and the delete trigger. PostgreSQL: pg_trgm and
    a GIN index, when the extension can be had."""
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for statement in SQLITE_UP:
            conn.exec_driver_sql(statement)
        return
    if conn.dialect.name in ("mysql", "mariadb"):
        return  # no trigram index there: free-text search scans message_text
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError as exc:
        log.warning(
            "no pg_trgm extension (%s): free-text search scans message_text without an index",
            str(exc.orig).strip(),
        )
        return
    conn.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS {PG_INDEX} ON message_text USING gin (text gin_trgm_ops)"
    )


def downgrade() -> None:
    """Drop the index (the pg_trgm extension stays: something else may use it)."""
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        for statement in SQLITE_DOWN:
            conn.exec_driver_sql(statement)
        return
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {PG_INDEX}")
