"""message.mailbox: the mailbox a message is read from (POP3, the scoped web UI and API),
with an index for listing one mailbox newest first.

Rows already there land in "default". NULL means the message is in no mailbox: a POP3
user deleted it while some of its recipients were still waiting to be delivered, so the
row stays for the queue (and for an admin) until delivery is done with it.

Revision 0008, after 0007.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column ("default" for every message so far) and its index."""
    with op.batch_alter_table("message") as batch:
        batch.add_column(
            sa.Column("mailbox", sa.String(255), nullable=True, server_default="default")
        )
    op.create_index("ix_message_mailbox", "message", ["mailbox", "id"])


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_message_mailbox", table_name="message")
    with op.batch_alter_table("message") as batch:
        batch.drop_column("mailbox")
