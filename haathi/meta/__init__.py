"""Metadata: the SQLAlchemy schema, Alembic migrations, and database access."""
