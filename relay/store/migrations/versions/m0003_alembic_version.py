"""The schema's version is Alembic's revision now: drop the old `schema_info` table.

Revision 0003, after 0002.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Drop `schema_info`: `alembic_version` records the revision."""
    op.drop_table("schema_info")


def downgrade() -> None:
    """Bring `schema_info` back, saying version 3 (the schema of revision 0002)."""
    table = op.create_table(
        "schema_info",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schema_info"),
    )
    op.bulk_insert(table, [{"id": 1, "version": 3, "created_at": time.time()}])
