"""Script entry options of a workload: a HyperModel class's constructor arguments (entry_args) and the script
globals bound to the training sample (bind_globals)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workload", sa.Column("entry_options", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Plain ALTER (SQLite >= 3.35 and PostgreSQL), as in 0007: a batch copy would drop workload, which configs
    # reference.
    op.execute("ALTER TABLE workload DROP COLUMN entry_options")
