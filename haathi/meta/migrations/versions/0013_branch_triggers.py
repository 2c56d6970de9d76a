"""branch triggers: a branch may follow another branch of its repo (Pachyderm's Trigger);
an output commit records which input branches each input commit was the head of (a triggered
branch points at commits made on the branch it follows)

Revision ID: 0013
Revises: 0012
"""

from alembic import op
import sqlalchemy as sa


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("branches", sa.Column("trigger", sa.Text(), nullable=True))
    op.add_column("commit_provenance", sa.Column("from_branches", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("commit_provenance", "from_branches")
    op.drop_column("branches", "trigger")
