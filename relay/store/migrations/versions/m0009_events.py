"""webhook_event (the webhooks' outbox), webhook_attempt (each POST of an event) and
suppression (addresses relay no longer sends to). All three start empty.

Revision 0009, after 0008 (main's mailbox column, merged before this branch).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


KEY_TEXT = sa.Text().with_variant(sa.String(700), "mysql", "mariadb")


def upgrade() -> None:
    """Create the three tables and their indexes."""
    op.create_table(
        "webhook_event",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(40), nullable=False),
        # Keys: MySQL indexes no TEXT column whole (relay/store/mysql.py, KEY_LENGTH).
        sa.Column("webhook", KEY_TEXT, nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(26), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("done_at", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_event"),
        sa.UniqueConstraint("event_id", name="uq_webhook_event_event_id"),
    )
    op.create_index("ix_webhook_event_state", "webhook_event", ["state", "id"])
    op.create_index("ix_webhook_event_webhook", "webhook_event", ["webhook", "id"])
    op.create_table(
        "webhook_attempt",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["webhook_event.id"],
            name="fk_webhook_attempt_event_id_webhook_event",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempt"),
    )
    op.create_index("ix_webhook_attempt_event", "webhook_attempt", ["event_id"])
    op.create_table(
        "suppression",
        sa.Column("address_key", KEY_TEXT, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("enhanced", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("address_key", name="pk_suppression"),
    )


def downgrade() -> None:
    """Drop the tables: pending events and the suppression list go with them."""
    op.drop_table("suppression")
    # Its index goes with it (MySQL refuses to drop an index a foreign key needs).
    op.drop_table("webhook_attempt")
    op.drop_index("ix_webhook_event_webhook", "webhook_event")
    op.drop_index("ix_webhook_event_state", "webhook_event")
    op.drop_table("webhook_event")
