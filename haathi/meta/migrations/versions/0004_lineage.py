"""lineage: datum input index, the job that ran a datum, exit codes, commit authors

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datum_inputs",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("datum_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "repo_id", "path", "datum_id"),
    )
    with op.batch_alter_table("datums", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_job", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("exit_code", sa.Integer(), nullable=True))
    with op.batch_alter_table("commits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("author", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("commits", schema=None) as batch_op:
        batch_op.drop_column("author")
    with op.batch_alter_table("datums", schema=None) as batch_op:
        batch_op.drop_column("exit_code")
        batch_op.drop_column("source_job")
    op.drop_table("datum_inputs")
