"""index staged changes by path (the path collision check of writes to open commits)

Paths are compared byte for byte (code point order), so on PostgreSQL the index uses the "C"
collation, as the queries do; SQLite compares text bytewise already.

Revision ID: 0008
Revises: 0007
"""

from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    path = sa.text('path COLLATE "C"') if op.get_bind().dialect.name == "postgresql" else "path"
    op.create_index("ix_staged_path", "staged", ["repo_id", "commit_id", path], unique=False)


def downgrade() -> None:
    op.drop_index("ix_staged_path", table_name="staged")
