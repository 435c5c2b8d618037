"""Execution plans: the plan a workload asked for (auto, mop, replicated) and the one the scheduler chose, with why

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # server_default: workloads launched before plans let the scheduler choose, as new ones do by default.
    op.add_column("workload", sa.Column("plan", sa.String(length=20), nullable=False, server_default="auto"))
    op.add_column("workload", sa.Column("plan_choice", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain ALTER (SQLite >= 3.35 and PostgreSQL), as in 0011: a batch copy would drop workload, which configs
    # reference.
    op.execute("ALTER TABLE workload DROP COLUMN plan_choice")
    op.execute("ALTER TABLE workload DROP COLUMN plan")
