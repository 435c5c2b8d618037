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

# Plain ALTER TABLE ADD/DROP COLUMN (SQLite >= 3.35 has both), not batch mode: a batch recreates the table,
# and SQLite refuses to drop ``workload`` while configs reference it.
_WORKLOAD = [("privacy", sa.JSON()), ("warnings", sa.JSON())]
_SUB_EPOCH = [("dp_q", sa.Float()), ("dp_sigma", sa.Float()), ("dp_steps", sa.Integer())]


def upgrade() -> None:
    for name, kind in _WORKLOAD:
        op.add_column("workload", sa.Column(name, kind, nullable=True))
    for name, kind in _SUB_EPOCH:
        op.add_column("sub_epoch", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(_SUB_EPOCH):
        op.drop_column("sub_epoch", name)
    for name, _ in reversed(_WORKLOAD):
        op.drop_column("workload", name)
