"""message_raw_chunk and change_log, for MySQL and MariaDB (created on every database, used
only there).

message_raw_chunk: a message's raw bytes beyond the first chunk that message_raw holds,
one row per chunk (relay/store/chunks.py), so that no statement comes near MySQL's
`max_allowed_packet`. change_log: what each transaction changed, polled by the other
processes, which have no LISTEN/NOTIFY there (relay/store/changes.py).

Revision 0010, after 0009.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create both tables, empty (messages stored before keep their bytes whole)."""
    op.create_table(
        "message_raw_chunk",
        sa.Column("message_id", sa.String(26), nullable=False),
        sa.Column("seq", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name="fk_message_raw_chunk_message_id_message",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "seq", name="pk_message_raw_chunk"),
    )
    op.create_table(
        "change_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_change_log"),
    )
    op.create_index("ix_change_log_at", "change_log", ["at"])


def downgrade() -> None:
    """Drop both (on MySQL, messages longer than a chunk lose their tail: downgrade only
    a database that never held one)."""
    op.drop_index("ix_change_log_at", table_name="change_log")
    op.drop_table("change_log")
    op.drop_table("message_raw_chunk")
