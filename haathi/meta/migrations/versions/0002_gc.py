"""gc: pack states and the gc epoch

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("packs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=16), nullable=False, server_default="live")
        )
        batch_op.add_column(sa.Column("condemned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_packs_state", ["state"], unique=False)
    gc_state = op.create_table(
        "gc_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(gc_state, [{"id": 1, "epoch": 0}])


def downgrade() -> None:
    op.drop_table("gc_state")
    with op.batch_alter_table("packs", schema=None) as batch_op:
        batch_op.drop_index("ix_packs_state")
        batch_op.drop_column("condemned_at")
        batch_op.drop_column("state")
