"""The first schema: messages, their raw bytes and search text, recipients, attempts.

This is the schema that relay created before it used Alembic ("version 2", recorded in the
`schema_info` table); a database made then is taken as being at this revision.

Revision 0001, the first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "schema_info",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schema_info"),
    )
    op.create_table(
        "message",
        sa.Column("id", sa.String(26), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("mail_from", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("from_header", sa.Text, nullable=False),
        sa.Column("to_header", sa.Text, nullable=False),
        sa.Column("cc_header", sa.Text, nullable=False),
        sa.Column("message_id_header", sa.Text, nullable=False),
        sa.Column("attachments", sa.Integer, nullable=False),
        sa.Column("snippet", sa.Text, nullable=False),
        sa.Column("listener", sa.String(64), nullable=False),
        sa.Column("peer", sa.String(64), nullable=False),
        sa.Column("helo", sa.Text, nullable=False),
        sa.Column("auth_user", sa.String(255), nullable=True),
        sa.Column("tls", sa.Boolean, nullable=False),
        sa.Column("read", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_message"),
    )
    op.create_index("ix_message_listener", "message", ["listener", "id"])
    op.create_index("ix_message_auth_user", "message", ["auth_user", "id"])
    op.create_index("ix_message_read", "message", ["read", "id"])
    for table, column, kind in (
        ("message_raw", "data", sa.LargeBinary),
        ("message_text", "text", sa.Text),
    ):
        op.create_table(
            table,
            sa.Column("message_id", sa.String(26), nullable=False),
            sa.Column(column, kind, nullable=False),
            sa.ForeignKeyConstraint(
                ["message_id"],
                ["message.id"],
                name=f"fk_{table}_message_id_message",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("message_id", name=f"pk_{table}"),
        )
    op.create_table(
        "recipient",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(26), nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        # A key: MySQL indexes no TEXT column whole (relay/store/mysql.py, KEY_LENGTH).
        sa.Column(
            "address_key",
            sa.Text().with_variant(sa.String(700), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("domain", sa.Text, nullable=False),
        sa.Column("route", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("last_code", sa.Integer, nullable=True),
        sa.Column("last_enhanced", sa.String(16), nullable=True),
        sa.Column("last_text", sa.Text, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name="fk_recipient_message_id_message",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_recipient"),
        sa.UniqueConstraint("message_id", "address_key", name="uq_recipient_message_key"),
    )
    op.create_index("ix_recipient_message", "recipient", ["message_id", "status"])
    op.create_index("ix_recipient_status_due", "recipient", ["status", "next_attempt_at"])
    op.create_table(
        "attempt",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("recipient_id", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("code", sa.Integer, nullable=True),
        sa.Column("enhanced", sa.String(16), nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["recipient.id"],
            name="fk_attempt_recipient_id_recipient",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_attempt"),
    )
    op.create_index("ix_attempt_recipient", "attempt", ["recipient_id"])


def downgrade() -> None:
    """Drop everything."""
    for table in ("attempt", "recipient", "message_text", "message_raw", "message"):
        op.drop_table(table)
    op.drop_table("schema_info")
