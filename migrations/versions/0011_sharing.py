"""Sharing the workers: a workload's fair-share weight and its budget (wall time, worker-seconds, money)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # server_default: workloads launched before fair sharing get the default weight, not NULL.
    op.add_column("workload", sa.Column("weight", sa.Float(), nullable=False, server_default="1"))
    op.add_column("workload", sa.Column("budget", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain ALTER (SQLite >= 3.35 and PostgreSQL), as in 0007: a batch copy would drop workload, which configs
    # reference.
    op.execute("ALTER TABLE workload DROP COLUMN budget")
    op.execute("ALTER TABLE workload DROP COLUMN weight")
