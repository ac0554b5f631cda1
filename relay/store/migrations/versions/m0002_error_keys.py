"""recipient.last_error_key: the last reply normalised, for grouping the queue by error.

Filled in for the rows already there. A database made before migrations whose
`schema_info` says version 3 already has it, and is taken as being at this revision.

Revision 0002, after 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relay.store.error_key import normalize

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BATCH = 5000

recipient = sa.table(
    "recipient",
    sa.column("id", sa.Integer),
    sa.column("last_text", sa.Text),
    sa.column("last_error_key", sa.Text),
)


def upgrade() -> None:
    """Add the column, then fill it in batches from each recipient's last reply."""
    with op.batch_alter_table("recipient") as batch:
        batch.add_column(sa.Column("last_error_key", sa.Text, nullable=True))
    conn = op.get_bind()
    fill = (
        sa.update(recipient)
        .where(recipient.c.id == sa.bindparam("rid"))
        .values(last_error_key=sa.bindparam("key"))
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(recipient.c.id, recipient.c.last_text)
            .where(recipient.c.id > last, recipient.c.last_text.is_not(None))
            .order_by(recipient.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        conn.execute(fill, [{"rid": r.id, "key": normalize(r.last_text)} for r in rows])
        last = rows[-1].id


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("recipient") as batch:
        batch.drop_column("last_error_key")
