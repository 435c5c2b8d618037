"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


# workload -> config and config <-> checkpoint reference each other. SQLite checks foreign keys only
# at write time, so they are declared inline there; PostgreSQL gets them once both tables exist.
_CYCLIC_FKS = [
    ("fk_workload_parent_config", "workload", "config", "parent_config_id"),
    ("fk_workload_warm_start_checkpoint", "workload", "checkpoint", "warm_start_checkpoint_id"),
    ("fk_config_current_checkpoint", "config", "checkpoint", "current_checkpoint_id"),
    ("fk_config_warm_start_checkpoint", "config", "checkpoint", "warm_start_checkpoint_id"),
]


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _deferred_fk(columns: list[str], table: str) -> list:
    return [sa.ForeignKeyConstraint(columns, [f"{table}.id"])] if _is_sqlite() else []


def upgrade() -> None:
    op.create_table('dataset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('source_path', sa.Text(), nullable=False),
    sa.Column('format', sa.String(length=20), nullable=False),
    sa.Column('feature_columns', sa.JSON(), nullable=False),
    sa.Column('label_column', sa.String(length=200), nullable=False),
    sa.Column('task', sa.String(length=20), nullable=False),
    sa.Column('n_rows', sa.Integer(), nullable=False),
    sa.Column('n_train', sa.Integer(), nullable=False),
    sa.Column('n_validation', sa.Integer(), nullable=False),
    sa.Column('feature_shape', sa.JSON(), nullable=False),
    sa.Column('classes', sa.JSON(), nullable=True),
    sa.Column('partition_count', sa.Integer(), nullable=False),
    sa.Column('partition_paths', sa.JSON(), nullable=False),
    sa.Column('validation_path', sa.Text(), nullable=False),
    sa.Column('schema', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=50), nullable=False),
    sa.Column('object_type', sa.String(length=30), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_at'), ['at'], unique=False)

    op.create_table('script',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('entry_point', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=True),
    sa.Column('valid', sa.Boolean(), nullable=False),
    sa.Column('validation', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('workload',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('owner', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('procedure', sa.String(length=20), nullable=False),
    sa.Column('search_space', sa.JSON(), nullable=False),
    sa.Column('objectives', sa.JSON(), nullable=False),
    sa.Column('max_epochs', sa.Integer(), nullable=False),
    sa.Column('max_configs', sa.Integer(), nullable=True),
    sa.Column('max_wall_seconds', sa.Float(), nullable=True),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('model_ref', sa.String(length=200), nullable=False),
    sa.Column('script_id', sa.Integer(), nullable=True),
    sa.Column('parent_workload_id', sa.Integer(), nullable=True),
    sa.Column('parent_config_id', sa.Integer(), nullable=True),
    sa.Column('warm_start_checkpoint_id', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['dataset.id'], ),
    *_deferred_fk(['parent_config_id'], 'config'),
    *_deferred_fk(['warm_start_checkpoint_id'], 'checkpoint'),
    sa.ForeignKeyConstraint(['parent_workload_id'], ['workload.id'], ),
    sa.ForeignKeyConstraint(['script_id'], ['script.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('workload', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workload_status'), ['status'], unique=False)

    op.create_table('config',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workload_id', sa.Integer(), nullable=False),
    sa.Column('hparams', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('epochs_done', sa.Integer(), nullable=False),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('cloned_from_config_id', sa.Integer(), nullable=True),
    sa.Column('warm_start_checkpoint_id', sa.Integer(), nullable=True),
    sa.Column('current_checkpoint_id', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['cloned_from_config_id'], ['config.id'], ),
    *_deferred_fk(['current_checkpoint_id'], 'checkpoint'),
    *_deferred_fk(['warm_start_checkpoint_id'], 'checkpoint'),
    sa.ForeignKeyConstraint(['workload_id'], ['workload.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('config', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_config_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_config_workload_id'), ['workload_id'], unique=False)
        batch_op.create_index('ix_config_workload_status', ['workload_id', 'status'], unique=False)

    op.create_table('checkpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('config_id', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('epoch_end', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['config_id'], ['config.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('checkpoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkpoint_config_id'), ['config_id'], unique=False)

    op.create_table('metric',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('config_id', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['config_id'], ['config.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('config_id', 'epoch', 'name', name='uq_metric_config_epoch_name')
    )
    with op.batch_alter_table('metric', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_metric_config_id'), ['config_id'], unique=False)

    op.create_table('sub_epoch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('config_id', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('input_checkpoint_id', sa.Integer(), nullable=True),
    sa.Column('output_checkpoint_id', sa.Integer(), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('train_loss', sa.Float(), nullable=True),
    sa.Column('train_accuracy', sa.Float(), nullable=True),
    sa.Column('compute_seconds', sa.Float(), nullable=True),
    sa.Column('hop_seconds', sa.Float(), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['config_id'], ['config.id'], ),
    sa.ForeignKeyConstraint(['input_checkpoint_id'], ['checkpoint.id'], ),
    sa.ForeignKeyConstraint(['output_checkpoint_id'], ['checkpoint.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sub_epoch', schema=None) as batch_op:
        batch_op.create_index('ix_sub_epoch_config_epoch', ['config_id', 'epoch'], unique=False)
        batch_op.create_index(batch_op.f('ix_sub_epoch_outcome'), ['outcome'], unique=False)

    if not _is_sqlite():
        for name, source, target, column in _CYCLIC_FKS:
            op.create_foreign_key(name, source, target, [column], ["id"])


def downgrade() -> None:
    if _is_sqlite():
        # A populated store: SQLite's DROP TABLE deletes the rows first, under foreign_keys=ON, and
        # checkpoint rows are still referenced by config (config by workload), so the drop would fail.
        # The cyclic references go first; everything is dropped just below anyway. (A deferring pragma
        # would not do: pysqlite runs DDL outside a transaction, where it resets at once.)
        op.execute("UPDATE config SET current_checkpoint_id = NULL, warm_start_checkpoint_id = NULL")
        op.execute("UPDATE workload SET parent_config_id = NULL, warm_start_checkpoint_id = NULL")
    else:
        for name, source, _target, _column in _CYCLIC_FKS:
            op.drop_constraint(name, source, type_="foreignkey")
    with op.batch_alter_table('sub_epoch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sub_epoch_outcome'))
        batch_op.drop_index('ix_sub_epoch_config_epoch')

    op.drop_table('sub_epoch')
    with op.batch_alter_table('metric', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_metric_config_id'))

    op.drop_table('metric')
    with op.batch_alter_table('checkpoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkpoint_config_id'))

    op.drop_table('checkpoint')
    with op.batch_alter_table('config', schema=None) as batch_op:
        batch_op.drop_index('ix_config_workload_status')
        batch_op.drop_index(batch_op.f('ix_config_workload_id'))
        batch_op.drop_index(batch_op.f('ix_config_status'))

    op.drop_table('config')
    with op.batch_alter_table('workload', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workload_status'))

    op.drop_table('workload')
    op.drop_table('script')
    with op.batch_alter_table('event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_at'))

    op.drop_table('event')
    op.drop_table('dataset')
