"""Denormalised latest metrics and best objective on config

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("config", schema=None) as batch_op:
        batch_op.add_column(sa.Column("latest_metrics", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("best_objective", sa.Float(), nullable=True))
        batch_op.create_index("ix_config_workload_best", ["workload_id", "best_objective"], unique=False)
    # Backfill from the metric table: latest epoch's values, best value of the workload's objective.
    bind = op.get_bind()
    configs = bind.execute(sa.text(
        "SELECT c.id, w.objectives FROM config c JOIN workload w ON w.id = c.workload_id")).fetchall()
    import json

    for config_id, objectives in configs:
        objectives = json.loads(objectives) if isinstance(objectives, str) else objectives
        rows = bind.execute(sa.text("SELECT epoch, name, value FROM metric WHERE config_id = :c ORDER BY epoch"),
                            {"c": config_id}).fetchall()
        if not rows:
            continue
        last = max(r.epoch for r in rows)
        latest = {"epoch": last, **{r.name: r.value for r in rows if r.epoch == last}}
        metric, direction = objectives[0]["metric"], objectives[0]["direction"]
        values = [r.value for r in rows if r.name == metric]
        best = (max(values) if direction == "max" else min(values)) if values else None
        bind.execute(sa.text("UPDATE config SET latest_metrics = :m, best_objective = :b WHERE id = :c"),
                     {"m": json.dumps(latest), "b": best, "c": config_id})


def downgrade() -> None:
    # Plain ALTER (SQLite >= 3.35 and PostgreSQL), as in 0004: a batch copy of config drops the old table,
    # which SQLite refuses with foreign_keys=ON while checkpoint, metric and sub_epoch rows reference it.
    op.drop_index("ix_config_workload_best", table_name="config")
    op.execute("ALTER TABLE config DROP COLUMN best_objective")
    op.execute("ALTER TABLE config DROP COLUMN latest_metrics")
