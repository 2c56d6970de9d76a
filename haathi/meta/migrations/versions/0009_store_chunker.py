"""which chunker cuts the store's files: stores made before it was recorded keep fastcdc-2016

Revision ID: 0009
Revises: 0008
"""

from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("store_info") as batch:
        batch.add_column(sa.Column("chunker", sa.String(length=32), nullable=True))
    op.execute("UPDATE store_info SET chunker = 'fastcdc-2016'")


def downgrade() -> None:
    with op.batch_alter_table("store_info") as batch:
        batch.drop_column("chunker")
