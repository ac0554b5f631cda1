"""destination_state: each destination's rate-limit bucket and circuit breaker, shared by
every process on the database.

Revision 0006, after 0005.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table (empty: every destination starts unthrottled and closed)."""
    op.create_table(
        "destination_state",
        # A key: MySQL indexes no TEXT column whole (relay/store/mysql.py, KEY_LENGTH).
        sa.Column(
            "key", sa.Text().with_variant(sa.String(700), "mysql", "mariadb"), nullable=False
        ),
        sa.Column("tokens", sa.Float, nullable=True),
        sa.Column("tokens_at", sa.Float, nullable=True),
        sa.Column("booked_until", sa.Float, nullable=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("pause", sa.Float, nullable=False),
        sa.Column("paused_until", sa.Float, nullable=True),
        sa.Column("probe_until", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_destination_state"),
    )


def downgrade() -> None:
    """Drop the table: limits and pauses start afresh."""
    op.drop_table("destination_state")
