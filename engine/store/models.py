"""SQLAlchemy ORM models. They stay inside the store package; services see ``entities``."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class DatasetRow(Base):
    __tablename__ = "dataset"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source_path: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(20))
    feature_columns: Mapped[list] = mapped_column(JSON)
    label_column: Mapped[str] = mapped_column(String(200))
    task: Mapped[str] = mapped_column(String(20))
    n_rows: Mapped[int] = mapped_column(Integer)
    n_train: Mapped[int] = mapped_column(Integer)
    n_validation: Mapped[int] = mapped_column(Integer)
    feature_shape: Mapped[list] = mapped_column(JSON)
    classes: Mapped[list | None] = mapped_column(JSON, nullable=True)
    partition_count: Mapped[int] = mapped_column(Integer)
    partition_paths: Mapped[list] = mapped_column(JSON)
    validation_path: Mapped[str] = mapped_column(Text)
    schema: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ScriptRow(Base):
    __tablename__ = "script"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    entry_point: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str | None] = mapped_column(String(30), nullable=True)
    valid: Mapped[bool] = mapped_column(default=False)
    validation: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WorkloadRow(Base):
    __tablename__ = "workload"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)
    procedure: Mapped[str] = mapped_column(String(20))
    search_space: Mapped[dict] = mapped_column(JSON)
    objectives: Mapped[list] = mapped_column(JSON)
    max_epochs: Mapped[int] = mapped_column(Integer)
    max_configs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_wall_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id"))
    model_ref: Mapped[str] = mapped_column(String(200))
    script_id: Mapped[int | None] = mapped_column(ForeignKey("script.id"), nullable=True)
    parent_workload_id: Mapped[int | None] = mapped_column(ForeignKey("workload.id"), nullable=True)
    parent_config_id: Mapped[int | None] = mapped_column(ForeignKey("config.id", use_alter=True), nullable=True)
    warm_start_checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoint.id", use_alter=True), nullable=True
    )
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class ConfigRow(Base):
    __tablename__ = "config"
    __table_args__ = (Index("ix_config_workload_status", "workload_id", "status"),
                      Index("ix_config_workload_best", "workload_id", "best_objective"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workload_id: Mapped[int] = mapped_column(ForeignKey("workload.id"), index=True)
    hparams: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    origin: Mapped[str] = mapped_column(String(20), default="procedure")
    cloned_from_config_id: Mapped[int | None] = mapped_column(ForeignKey("config.id"), nullable=True)
    warm_start_checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoint.id", use_alter=True), nullable=True
    )
    current_checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoint.id", use_alter=True), nullable=True
    )
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Denormalised at each epoch end (same transaction as the metric rows) so that listing configs
    # and finding a workload's best never aggregates the metric table.
    latest_metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    best_objective: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __mapper_args__ = {"version_id_col": version}


class SubEpochRow(Base):
    __tablename__ = "sub_epoch"
    __table_args__ = (Index("ix_sub_epoch_config_epoch", "config_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("config.id"))
    epoch: Mapped[int] = mapped_column(Integer)
    partition: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    outcome: Mapped[str] = mapped_column(String(20), default="running", index=True)
    input_checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoint.id"), nullable=True)
    output_checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoint.id"), nullable=True)
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    train_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    train_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    compute_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    hop_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class MetricRow(Base):
    __tablename__ = "metric"
    __table_args__ = (UniqueConstraint("config_id", "epoch", "name", name="uq_metric_config_epoch_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("config.id"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CheckpointRow(Base):
    __tablename__ = "checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("config.id"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    epoch_end: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EventRow(Base):
    __tablename__ = "event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    object_type: Mapped[str] = mapped_column(String(30))
    object_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    before: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class ExportRow(Base):
    __tablename__ = "export"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("config.id"), index=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoint.id"))
    quantization: Mapped[str] = mapped_column(String(20))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    keras_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    tflite_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    convert_seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
