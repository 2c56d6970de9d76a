"""index commit provenance by the commit it comes from (subvenance queries)

Revision ID: 0005
Revises: 0004
"""

from alembic import op


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("commit_provenance", schema=None) as batch_op:
        batch_op.create_index(
            "ix_commit_provenance_from", ["from_repo_id", "from_commit_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("commit_provenance", schema=None) as batch_op:
        batch_op.drop_index("ix_commit_provenance_from")
