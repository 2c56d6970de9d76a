"""project roles: in a store whose auth is active, every caller keeps what it could do

Before project roles, any token could create repos and pipelines (and projects); with them, a
caller needs ``projectWriter`` on the project (``projectCreator`` on the cluster for a new
project). What ``auth activate`` now binds is bound here in a store whose auth is already
active: ``allClusterUsers`` (every authenticated caller) gets ``projectCreator`` on the cluster
and ``projectWriter`` on ``project:default``, and each project's creator ``projectOwner`` on
it. Rows only: no column changes. A binding already there is kept (no duplicate).

Revision ID: 0017
Revises: 0016
"""

from alembic import op


revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# the bindings to make, as a SELECT of (resource, subject, role) rows
_SEEDS = (
    "SELECT 'cluster' AS resource, 'allClusterUsers' AS subject, 'projectCreator' AS role",
    "SELECT 'project:default' AS resource, 'allClusterUsers' AS subject, 'projectWriter' AS role",
    "SELECT 'project:' || name AS resource, created_by AS subject, 'projectOwner' AS role "
    "FROM projects WHERE created_by IS NOT NULL",
)


def upgrade() -> None:
    for rows in _SEEDS:  # while auth is active; a binding already there is kept
        op.execute(
            "INSERT INTO role_bindings (resource, subject, role) "
            f"SELECT resource, subject, role FROM ({rows}) AS seed "
            "WHERE EXISTS (SELECT 1 FROM auth_config) AND NOT EXISTS ("
            "SELECT 1 FROM role_bindings b WHERE b.resource = seed.resource "
            "AND b.subject = seed.subject AND b.role = seed.role)"
        )


def downgrade() -> None:
    op.execute(
        "DELETE FROM role_bindings WHERE subject = 'allClusterUsers' "
        "OR (resource LIKE 'project:%' AND role = 'projectOwner')"
    )
