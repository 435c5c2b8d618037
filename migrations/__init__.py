"""Alembic environment and versions for the config store (SQLite and PostgreSQL)."""
