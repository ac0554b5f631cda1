"""Tags and kept check results: `message_tag` (a message's tags, Mailpit's way) and
`message_check` (the answer of each check run on a message, kept until the message goes,
with what searches ask of it). Both start empty: tags come to new mail and from people,
checks run when asked.

Revision 0005, after 0004.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _message_id() -> sa.Column[str]:
    return sa.Column("message_id", sa.String(length=26), nullable=False)


def _message_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["message_id"],
        ["message.id"],
        name=op.f(f"fk_{table}_message_id_message"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    """Create both tables and the tag index."""
    op.create_table(
        "message_check",
        _message_id(),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("checked_at", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        _message_fk("message_check"),
        sa.PrimaryKeyConstraint("message_id", "kind", name=op.f("pk_message_check")),
    )
    op.create_table(
        "message_tag",
        _message_id(),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("tag_key", sa.String(length=100), nullable=False),
        _message_fk("message_tag"),
        sa.PrimaryKeyConstraint("message_id", "tag_key", name=op.f("pk_message_tag")),
    )
    op.create_index("ix_message_tag_key", "message_tag", ["tag_key", "message_id"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_message_tag_key", table_name="message_tag")
    op.drop_table("message_tag")
    op.drop_table("message_check")
