"""Notes on workloads and configs: Markdown a person writes (why they stopped, cloned or chose something)

Revision ID: 0014
Revises: 0010
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "note",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("object_type", sa.String(length=30), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_note_object", "note", ["object_type", "object_id"])


def downgrade() -> None:
    op.drop_index("ix_note_object", table_name="note")
    op.drop_table("note")
