"""staged: on SQLite, sequence numbers never reused (AUTOINCREMENT)

gc marks the changes staged after the last number it saw; SQLite gave a new row the number of
the newest one deleted, so a change staged while gc marked, after a finished commit's staged
rows were deleted, could carry a number gc had already seen, and its blobs be condemned.
PostgreSQL's sequences never reuse: nothing changes there.

Revision ID: 0021
Revises: 0020
"""

from alembic import op


revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

COLUMNS = "seq, repo_id, commit_id, op, path, payload"


def _rebuild(autoincrement: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        f"CREATE TABLE staged_rebuilt (seq INTEGER NOT NULL PRIMARY KEY {autoincrement}, "
        "repo_id INTEGER NOT NULL, commit_id VARCHAR(32) NOT NULL, op VARCHAR(8) NOT NULL, "
        "path TEXT NOT NULL, payload BLOB)"
    )
    op.execute(f"INSERT INTO staged_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM staged")
    op.execute("DROP TABLE staged")  # (and its indexes)
    op.execute("ALTER TABLE staged_rebuilt RENAME TO staged")
    op.create_index("ix_staged_commit", "staged", ["repo_id", "commit_id", "seq"], unique=False)
    op.create_index("ix_staged_path", "staged", ["repo_id", "commit_id", "path"], unique=False)


def upgrade() -> None:
    _rebuild("AUTOINCREMENT")


def downgrade() -> None:
    _rebuild("")
