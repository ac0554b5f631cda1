"""attempt.injected: whether an attempt was made by a chaos rule of the delivery leg
(nothing sent, no upstream answered) rather than by an upstream.

Rows already there were real attempts: false.

Revision 0007, after 0006.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column, false for every attempt so far."""
    with op.batch_alter_table("attempt") as batch:
        batch.add_column(
            sa.Column("injected", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("injected")
