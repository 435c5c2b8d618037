"""Private training: a workload's privacy section and launch warnings, each sub-epoch's DP-SGD block

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workload") as batch:
        batch.add_column(sa.Column("privacy", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("warnings", sa.JSON(), nullable=True))
    with op.batch_alter_table("sub_epoch") as batch:
        batch.add_column(sa.Column("dp_q", sa.Float(), nullable=True))
        batch.add_column(sa.Column("dp_sigma", sa.Float(), nullable=True))
        batch.add_column(sa.Column("dp_steps", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sub_epoch") as batch:
        batch.drop_column("dp_steps")
        batch.drop_column("dp_sigma")
        batch.drop_column("dp_q")
    with op.batch_alter_table("workload") as batch:
        batch.drop_column("warnings")
        batch.drop_column("privacy")
