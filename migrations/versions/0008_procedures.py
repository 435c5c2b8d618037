"""Procedures that prune and learn: the workload's procedure options, and the decisions procedures applied
(unique per workload and key, so a decision applied twice, e.g. after a scheduler restart, is a no-op)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workload", sa.Column("procedure_options", sa.JSON(), nullable=True))
    op.create_table(
        "decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workload_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("source_config_id", sa.Integer(), nullable=True),
        sa.Column("result_config_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workload_id"], ["workload.id"]),
        sa.ForeignKeyConstraint(["config_id"], ["config.id"]),
        sa.ForeignKeyConstraint(["source_config_id"], ["config.id"]),
        sa.ForeignKeyConstraint(["result_config_id"], ["config.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workload_id", "key", name="uq_decision_workload_key"),
    )
    op.create_index("ix_decision_workload_id", "decision", ["workload_id"])


def downgrade() -> None:
    op.drop_index("ix_decision_workload_id", table_name="decision")
    op.drop_table("decision")
    # Plain ALTER (SQLite >= 3.35 and PostgreSQL), as in 0002, 0004 and 0007.
    op.execute("ALTER TABLE workload DROP COLUMN procedure_options")
