"""Shards and elastic workers: the shards each sub-epoch trained on, and the worker pool people resize

Revision ID: 0013
Revises: 0010
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sub_epoch", sa.Column("shards", sa.JSON(), nullable=True))
    op.create_table(
        "worker_pool",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("desired", sa.Integer(), nullable=True),
        sa.Column("remove_now", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("requested_by", sa.String(200), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=True),
        sa.Column("workers", sa.JSON(), nullable=True),
        sa.Column("reported_at", sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("worker_pool")
    # Plain ALTER (SQLite >= 3.35 and PostgreSQL), as in 0007: a batch copy would drop sub_epoch's references.
    op.execute("ALTER TABLE sub_epoch DROP COLUMN shards")
