"""Edge deployment: devices (agents), profiling jobs with leases, profiles, deployments, export requests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("hardware", sa.JSON(), nullable=False),
        sa.Column("interpreter", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("registered_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_device_name"),
    )
    op.create_table(
        "profile_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("export_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=True),
        sa.Column("warmup", sa.Integer(), nullable=True),
        sa.Column("claimed_by", sa.Integer(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["export_id"], ["export.id"]),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"]),
        sa.ForeignKeyConstraint(["claimed_by"], ["device.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_profile_job_device_status", "profile_job", ["device_id", "status"], unique=False)
    op.create_index("ix_profile_job_status_lease", "profile_job", ["status", "lease_expires_at"], unique=False)
    op.create_table(
        "profile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("export_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("latency_p50_ms", sa.Float(), nullable=False),
        sa.Column("latency_p95_ms", sa.Float(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=True),
        sa.Column("energy_mj", sa.Float(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["profile_job.id"]),
        sa.ForeignKeyConstraint(["export_id"], ["export.id"]),
        sa.ForeignKeyConstraint(["device_id"], ["device.id"]),
        sa.ForeignKeyConstraint(["config_id"], ["config.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_profile_config_id", "profile", ["config_id"], unique=False)
    op.create_index("ix_profile_device_id", "profile", ["device_id"], unique=False)
    op.create_table(
        "deployment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("export_id", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=100), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["config_id"], ["config.id"]),
        sa.ForeignKeyConstraint(["export_id"], ["export.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_deployment_status", "deployment", ["status"], unique=False)
    op.create_table(
        "export_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("config_id", sa.Integer(), nullable=False),
        sa.Column("quantizations", sa.JSON(), nullable=False),
        sa.Column("profile", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("export_ids", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["config_id"], ["config.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_export_request_status", "export_request", ["status"], unique=False)
    op.add_column("workload", sa.Column("export_top_k", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Plain ALTER (SQLite >= 3.35 and PostgreSQL): a batch table copy of workload trips its cyclic foreign keys.
    op.execute("ALTER TABLE workload DROP COLUMN export_top_k")
    op.drop_index("ix_export_request_status", table_name="export_request")
    op.drop_table("export_request")
    op.drop_index("ix_deployment_status", table_name="deployment")
    op.drop_table("deployment")
    op.drop_index("ix_profile_device_id", table_name="profile")
    op.drop_index("ix_profile_config_id", table_name="profile")
    op.drop_table("profile")
    op.drop_index("ix_profile_job_status_lease", table_name="profile_job")
    op.drop_index("ix_profile_job_device_status", table_name="profile_job")
    op.drop_table("profile_job")
    op.drop_table("device")
