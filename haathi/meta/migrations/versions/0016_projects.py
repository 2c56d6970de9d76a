"""projects: a projects table holding 'default', and the project of every repo and pipeline

Repos and pipelines are named by key (``project/name``; the bare name in the default project),
so every existing row is already in ``default``: no row is rewritten. The columns are added in
place (``ALTER TABLE ... ADD COLUMN``), never by rebuilding ``repos``: SQLite runs with foreign
keys on, and rebuilding a table that ``branches`` and ``commits`` reference with ON DELETE
CASCADE would delete every branch and commit. Only PostgreSQL widens the key columns (SQLite
does not enforce a VARCHAR's length).

Revision ID: 0016
Revises: 0015
"""

from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.bulk_insert(
        projects,
        [
            {
                "name": "default",
                "description": "",
                "created_at": datetime.now(timezone.utc),
                "created_by": None,
                "metadata": "{}",
            }
        ],
    )
    for table in ("repos", "pipelines"):
        op.add_column(
            table,
            sa.Column("project", sa.String(length=64), nullable=False, server_default="default"),
        )
        op.create_index(f"ix_{table}_project", table, ["project"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for table, column, length in (
            ("repos", "name", 128),
            ("pipelines", "name", 128),
            ("role_bindings", "resource", 200),
        ):
            op.alter_column(table, column, type_=sa.String(length=length))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        for table, column, length in (
            ("repos", "name", 64),
            ("pipelines", "name", 64),
            ("role_bindings", "resource", 80),
        ):
            op.alter_column(table, column, type_=sa.String(length=length))
    for table in ("repos", "pipelines"):
        op.drop_index(f"ix_{table}_project", table_name=table)
        # in place (SQLite 3.35+), for the reason the module gives
        op.execute(f"ALTER TABLE {table} DROP COLUMN project")
    op.drop_table("projects")
