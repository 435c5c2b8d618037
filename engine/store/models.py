"""SQLAlchemy ORM models. They stay inside the store package; services see ``entities``."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
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
    export_top_k: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The spec's privacy section (PrivacySpec.model_dump() plus the partition sizes sigma was calibrated
    # for); None: the workload trains without DP-SGD. ``warnings``: advice given at launch (a large delta).
    privacy: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    warnings: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # The procedure's options (ASHA's eta and min_epochs, PBT's population, median_stop, ...); None: defaults.
    procedure_options: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # A script's entry options from the spec: {"entry_args": {...}, "bind_globals": {name: x|y|frame}}.
    entry_options: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # Advisor mode: the procedure's decisions (stop, pause, promote, exploit) become suggestions for people.
    advisor: Mapped[bool] = mapped_column(Boolean, default=False,
                                          server_default=false())
    # The spec's notify section ({"webhook": URL}); None: nobody is told when the workload ends.
    notify: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    # Its share of the workers against other runnable workloads (weighted fair share); > 0.
    weight: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    # The spec's budget {"wall_seconds", "worker_seconds", "money", "price_per_worker_hour"}; None: unlimited.
    budget: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # The execution plan asked for at launch (auto, mop, replicated), and the scheduler's last choice for it
    # {"plan", "reason", "basis", "decided_at"}; None: not decided yet.
    plan: Mapped[str] = mapped_column(String(20), default="auto", server_default="auto")
    plan_choice: Mapped[dict | None] = mapped_column(JSON, nullable=True)


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
    # The DP-SGD block this sub-epoch ran (Poisson rate, noise multiplier, steps), committed with its outcome:
    # a config's epsilon is always recomputed from these rows, so nothing can count a sub-epoch twice.
    dp_q: Mapped[float | None] = mapped_column(Float, nullable=True)
    dp_sigma: Mapped[float | None] = mapped_column(Float, nullable=True)
    dp_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Every shard this sub-epoch trained on (a worker trains a config on all the shards it owns that the config
    # has not visited this epoch); ``partition`` keeps the lowest of them. NULL on rows from before shards:
    # they trained on ``partition`` alone.
    shards: Mapped[list | None] = mapped_column(JSON, nullable=True)


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


class DecisionRow(Base):
    """A procedure's decision once applied; the unique key makes applying it again (after a restart) a no-op."""

    __tablename__ = "decision"
    __table_args__ = (UniqueConstraint("workload_id", "key", name="uq_decision_workload_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workload_id: Mapped[int] = mapped_column(ForeignKey("workload.id"), index=True)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    config_id: Mapped[int] = mapped_column(ForeignKey("config.id"))
    source_config_id: Mapped[int | None] = mapped_column(ForeignKey("config.id"), nullable=True)
    result_config_id: Mapped[int | None] = mapped_column(ForeignKey("config.id"), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SuggestionRow(Base):
    """A procedure's decision held for a person (advisor mode): accepted, it is applied like a manual action."""

    __tablename__ = "suggestion"
    __table_args__ = (UniqueConstraint("workload_id", "key", name="uq_suggestion_workload_key"),
                      Index("ix_suggestion_workload_status", "workload_id", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workload_id: Mapped[int] = mapped_column(ForeignKey("workload.id"))
    config_id: Mapped[int] = mapped_column(ForeignKey("config.id"))
    procedure: Mapped[str] = mapped_column(String(30))  # who suggested it (asha, pbt, ...)
    kind: Mapped[str] = mapped_column(String(20))  # DecisionKind
    payload: Mapped[dict] = mapped_column(JSON, default=dict)  # source_config_id, hparams (exploit)
    reason: Mapped[str] = mapped_column(Text, default="")
    key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it expired, what applying it did
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EvaluationRequestRow(Base):
    """An objective added to a running workload, to measure on every kept epoch-end checkpoint (a worker's job)."""

    __tablename__ = "evaluation_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workload_id: Mapped[int] = mapped_column(ForeignKey("workload.id"))
    objective: Mapped[dict] = mapped_column(JSON)  # as the workload stores it (metric, direction, class_index, ...)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)  # JobStatus
    actor: Mapped[str] = mapped_column(String(100))
    n_expected: Mapped[int] = mapped_column(Integer, default=0)  # configs x kept epoch-end checkpoints
    n_done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


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


class DeviceRow(Base):
    """An edge agent: what it runs on and when it last spoke."""

    __tablename__ = "device"
    __table_args__ = (UniqueConstraint("name", name="uq_device_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    hardware: Mapped[dict] = mapped_column(JSON, default=dict)
    interpreter: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="online")
    registered_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ProfileJobRow(Base):
    """Profile one export on one device; an agent claims it with a lease that its heartbeats extend."""

    __tablename__ = "profile_job"
    __table_args__ = (Index("ix_profile_job_device_status", "device_id", "status"),
                      Index("ix_profile_job_status_lease", "status", "lease_expires_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("export.id"))
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id"), nullable=True)  # None: any device
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued/running/done/failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    runs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    warmup: Mapped[int | None] = mapped_column(Integer, nullable=True)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("device.id"), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)  # who queued it (per-actor caps)


class ProfileRow(Base):
    """One measurement of an export on a device."""

    __tablename__ = "profile"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("profile_job.id"), nullable=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("export.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id"), index=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("config.id"), index=True)
    latency_p50_ms: Mapped[float] = mapped_column(Float)
    latency_p95_ms: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    energy_mj: Mapped[float | None] = mapped_column(Float, nullable=True)
    runs: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DeploymentRow(Base):
    """A served model (``hopper serve-model``): where it listens and whether it still runs."""

    __tablename__ = "deployment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("config.id"))
    export_id: Mapped[int | None] = mapped_column(ForeignKey("export.id"), nullable=True)
    format: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(100))
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="starting", index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(100), nullable=True)  # who asked for it (per-actor caps)


class ExportRequestRow(Base):
    """An export asked for from the web (REST/UI/export_top_k), run by an export worker in its own process."""

    __tablename__ = "export_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("config.id"))
    quantizations: Mapped[list] = mapped_column(JSON)
    profile: Mapped[bool] = mapped_column(Boolean, default=False)
    origin: Mapped[str] = mapped_column(String(20), default="user")  # user / top_k
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)  # queued/running/done/failed
    actor: Mapped[str] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    export_ids: Mapped[list | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class UserRow(Base):
    """A person with a role (admin, editor, viewer); their API tokens are ``CredentialRow`` rows."""

    __tablename__ = "app_user"
    __table_args__ = (UniqueConstraint("name", name="uq_app_user_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class CredentialRow(Base):
    """A token: a person's API token, a device's token, or a one-time enrolment token.

    Only the argon2 hash of the secret is stored; ``lookup`` (the public part before the dot) finds the row.
    """

    __tablename__ = "credential"
    __table_args__ = (UniqueConstraint("lookup", name="uq_credential_lookup"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # user / device / enrol
    lookup: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), nullable=True, index=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id"), nullable=True, index=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class WebSessionRow(Base):
    """A logged-in browser: the cookie holds a random id, this row holds its sha256 and whose it is.

    ``credential_id`` is the token it logged in with (None for the bootstrap admin token, whose fingerprint
    is ``admin_fingerprint``), so revoking or rotating that token ends the session.
    """

    __tablename__ = "web_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's session id
    subject: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    credential_id: Mapped[int | None] = mapped_column(ForeignKey("credential.id"), nullable=True, index=True)
    admin_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class SchedulerLeaseRow(Base):
    """Who runs the scheduler on this store: one row (id 1), taken by compare-and-set, renewed by heartbeats.

    A second scheduler on the same store would dispatch the same (config, epoch, partition) twice; the lease
    makes it refuse to start instead. A holder that dies stops renewing, and the row can be taken over once
    ``expires_at`` has passed (the store's clock decides, never the newcomer's).
    """

    __tablename__ = "scheduler_lease"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class ScheduleRow(Base):
    """A workload spec launched on a cron schedule; ``next_run_at`` (UTC) is the one due run not yet claimed."""

    __tablename__ = "schedule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    cron: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class ScheduleRunRow(Base):
    """One due run of a schedule. Unique per (schedule, due time): the claim that makes it fire exactly once."""

    __tablename__ = "schedule_run"
    __table_args__ = (UniqueConstraint("schedule_id", "due_at", name="uq_schedule_run_due"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedule.id"), index=True)
    due_at: Mapped[datetime] = mapped_column(DateTime)
    claimed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_by: Mapped[str] = mapped_column(String(100))
    workload_id: Mapped[int | None] = mapped_column(ForeignKey("workload.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # ScheduleRunStatus
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookDeliveryRow(Base):
    """The outbox: one row per (workload, terminal status) to POST to the workload's webhook, retried with backoff.

    A delivery is claimed by pushing ``next_attempt_at`` past the request's timeout (a conditional update), so a
    restarted or second notifier neither loses it nor sends it twice while the first one is still trying.
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (UniqueConstraint("workload_id", "event", name="uq_webhook_delivery_event"),
                      Index("ix_webhook_delivery_status_next", "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workload_id: Mapped[int] = mapped_column(ForeignKey("workload.id"))
    event: Mapped[str] = mapped_column(String(20))  # the workload status it reports (WorkloadStatus)
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))  # WebhookStatus
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WorkerPoolRow(Base):
    """How many workers people asked for, and which workers the scheduler runs: one row (id 1).

    The web server and the CLI never reach the scheduler directly: ``hopper workers add/remove`` and
    ``POST /workers`` write ``desired`` here, and the scheduler reads it at every step, resizes its backend and
    writes back what it runs (``workers``: one JSON object per worker).
    """

    __tablename__ = "worker_pool"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    desired: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remove_now: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    requested_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    requested_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    workers: Mapped[list | None] = mapped_column(JSON, nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class NoteRow(Base):
    """A person's note (Markdown) on a workload or a config: why they stopped, cloned or chose something.

    ``object_type`` + ``object_id`` name what it is about (no foreign key: one table for both kinds; the store checks
    the object exists when the note is written). Notes are never edited: a correction is a new note.
    """

    __tablename__ = "note"
    __table_args__ = (Index("ix_note_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_type: Mapped[str] = mapped_column(String(30))
    object_id: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
