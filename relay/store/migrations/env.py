"""Alembic's entry point: runs the migrations on the connection relay.store.migrate gives.

relay.store.migrate opens the transaction (and on PostgreSQL takes an advisory lock) before
Alembic runs, so the whole upgrade commits at once or not at all, and two processes that
start together never both migrate.
"""

from __future__ import annotations

from alembic import context

from relay.store.migrate import described
from relay.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("relay's migrations run through `relay db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things: Alembic rebuilds the table
    compare_type=True,
    include_name=described,  # the search index is not in schema.py (revision 0004)
)
with context.begin_transaction():
    context.run_migrations()
