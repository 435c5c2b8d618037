"""Scheduler lease: one row naming the scheduler that owns the store (holder, host, pid, heartbeat, expiry);
who asked for each deployment and profiling job (per-actor caps)

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_lease",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.add_column("deployment", sa.Column("actor", sa.String(length=100), nullable=True))
    op.add_column("profile_job", sa.Column("actor", sa.String(length=100), nullable=True))


def downgrade() -> None:
    # Plain ALTER (SQLite >= 3.35 and PostgreSQL), as in 0002 and 0004: a batch copy would drop profile_job,
    # which SQLite refuses with foreign_keys=ON while profile rows reference it.
    op.execute("ALTER TABLE profile_job DROP COLUMN actor")
    op.execute("ALTER TABLE deployment DROP COLUMN actor")
    op.drop_table("scheduler_lease")
