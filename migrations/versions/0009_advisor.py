"""Advisor mode: a workload's procedure may suggest instead of act (workload.advisor), and its suggestions wait
for a person in the suggestion table (unique per workload and key, so a decision repeated after a restart is not
suggested twice); an objective added to a running workload is measured on the checkpoints already trained by an
evaluation request (one per added objective, run by the export worker's child processes)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workload", sa.Column("advisor", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "suggestion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workload_id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("procedure", sa.String(length=30), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["workload_id"], ["workload.id"]),
        sa.ForeignKeyConstraint(["config_id"], ["config.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workload_id", "key", name="uq_suggestion_workload_key"),
    )
    op.create_index("ix_suggestion_workload_status", "suggestion", ["workload_id", "status"])
    op.create_table(
        "evaluation_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workload_id", sa.Integer(), nullable=False),
        sa.Column("objective", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("n_expected", sa.Integer(), nullable=False),
        sa.Column("n_done", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["workload_id"], ["workload.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_evaluation_request_status", "evaluation_request", ["status"])


def downgrade() -> None:
    op.drop_index("ix_evaluation_request_status", table_name="evaluation_request")
    op.drop_table("evaluation_request")
    op.drop_index("ix_suggestion_workload_status", table_name="suggestion")
    op.drop_table("suggestion")
    # Plain ALTER (SQLite >= 3.35 and PostgreSQL), as in 0002, 0004 and 0007.
    op.execute("ALTER TABLE workload DROP COLUMN advisor")
