"""Plain domain objects that services return; ORM rows never leave the store layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


class _Serialisable:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; shallow (fields already hold plain JSON values), so cheap on hot paths."""
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = _iso(value) if isinstance(value, datetime) else value
        return out


@dataclass(frozen=True)
class DatasetInfo(_Serialisable):
    id: int
    name: str
    source_path: str
    format: str
    feature_columns: list
    label_column: str
    task: str
    n_rows: int
    n_train: int
    n_validation: int
    feature_shape: list
    classes: list | None
    partition_count: int
    created_at: datetime

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.classes else 1

    @classmethod
    def from_row(cls, row: Any) -> DatasetInfo:
        return cls(row.id, row.name, row.source_path, row.format, list(row.feature_columns), row.label_column,
                   row.task, row.n_rows, row.n_train, row.n_validation, list(row.feature_shape),
                   None if row.classes is None else list(row.classes), row.partition_count, row.created_at)


@dataclass(frozen=True)
class ScriptCheck:
    """What validating an uploaded script found: stored on the script's row as ``validation``.

    Defined here, not beside the validator, so that the services can use the result without
    importing the worker code that builds models.
    """

    ok: bool
    kind: str | None
    message: str
    details: str = ""
    space: dict | None = None
    compiled: bool | None = None
    params: int | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"ok": self.ok, "kind": self.kind, "message": self.message, "details": self.details,
                "space": self.space, "compiled": self.compiled, "params": self.params, "notes": list(self.notes)}


class ScriptValidator(Protocol):
    """Imports a script and builds one model out of process; ``hopper.mop_scheduler.worker.validate.validate_script``.

    The services take one as a parameter (``hopper.app.open_services`` supplies it) because the
    implementation lives in the worker package, which the engine must not import.
    """

    def __call__(self, path: str | Path, entry_point: str = "build_model", *, input_shape: tuple = (64,),
                 n_outputs: int = 10, task: str = "classification", sample_config: dict | None = None,
                 timeout: float = 60.0, memory_mb: int = 0, allowed_roots: Sequence[str] = (),
                 cpu_seconds: int = 0, processes: int = 0, file_mb: int = 0, user: str = "") -> ScriptCheck: ...


@dataclass(frozen=True)
class ScriptInfo(_Serialisable):
    id: int
    name: str
    sha256: str
    entry_point: str
    kind: str | None
    valid: bool
    validation: dict
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> ScriptInfo:
        return cls(row.id, row.name, row.sha256, row.entry_point, row.kind, row.valid, dict(row.validation or {}),
                   row.created_at)


@dataclass(frozen=True)
class WorkloadInfo(_Serialisable):
    id: int
    name: str
    description: str
    owner: str
    status: str
    procedure: str
    search_space: dict
    objectives: list
    max_epochs: int
    max_configs: int | None
    seed: int
    dataset_id: int
    model_ref: str
    script_id: int | None
    parent_workload_id: int | None
    parent_config_id: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    config_counts: dict = field(default_factory=dict)
    best: dict | None = None
    export_top_k: int | None = None

    @classmethod
    def from_row(cls, row: Any, config_counts: dict | None = None, best: dict | None = None) -> WorkloadInfo:
        return cls(row.id, row.name, row.description, row.owner, row.status, row.procedure, dict(row.search_space),
                   list(row.objectives), row.max_epochs, row.max_configs, row.seed, row.dataset_id, row.model_ref,
                   row.script_id, row.parent_workload_id, row.parent_config_id, row.error, row.created_at,
                   row.updated_at, config_counts or {}, best, getattr(row, "export_top_k", None))


@dataclass(frozen=True)
class ConfigInfo(_Serialisable):
    id: int
    workload_id: int
    hparams: dict
    status: str
    priority: int
    epochs_done: int
    origin: str
    cloned_from_config_id: int | None
    warm_start_checkpoint_id: int | None
    error: str | None
    notes: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    latest_metrics: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Any, metrics: list | None = None) -> ConfigInfo:
        return cls(row.id, row.workload_id, dict(row.hparams), row.status, row.priority, row.epochs_done, row.origin,
                   row.cloned_from_config_id, row.warm_start_checkpoint_id, row.error, row.notes, row.version,
                   row.created_at, row.updated_at, dict(row.latest_metrics or {}), metrics or [])


@dataclass(frozen=True)
class SubEpochInfo(_Serialisable):
    id: int
    config_id: int
    epoch: int
    partition: int
    worker: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    compute_seconds: float | None
    hop_seconds: float | None
    detail: str | None

    @classmethod
    def from_row(cls, row: Any) -> SubEpochInfo:
        return cls(row.id, row.config_id, row.epoch, row.partition, row.worker, row.started_at, row.finished_at,
                   row.outcome, row.compute_seconds, row.hop_seconds, row.detail)


@dataclass(frozen=True)
class EventInfo(_Serialisable):
    id: int
    actor: str
    action: str
    object_type: str
    object_id: int | None
    before: dict | None
    after: dict | None
    at: datetime

    @classmethod
    def from_row(cls, row: Any) -> EventInfo:
        return cls(row.id, row.actor, row.action, row.object_type, row.object_id, row.before, row.after, row.at)


@dataclass(frozen=True)
class CheckpointInfo(_Serialisable):
    """A committed checkpoint: where it lies, its hash, and whether it ends an epoch."""

    id: int
    config_id: int
    epoch: int
    seq: int
    path: str
    sha256: str
    bytes: int
    epoch_end: bool

    @classmethod
    def from_row(cls, row: Any) -> CheckpointInfo:
        return cls(row.id, row.config_id, row.epoch, row.seq, row.path, row.sha256, row.bytes, row.epoch_end)


@dataclass(frozen=True)
class DatasetLayout:
    """Where a dataset's partitions and validation split lie, for the scheduler and exporters (not for users)."""

    dataset_id: int
    partition_paths: tuple[str, ...]
    validation_path: str
    feature_shape: tuple[int, ...]
    n_outputs: int
    task: str
    schema: dict


@dataclass(frozen=True)
class ConfigObservation:
    """A config as a search procedure sees it when it is rebuilt from the store."""

    id: int
    hparams: dict
    origin: str
    status: str
    latest_metrics: dict


@dataclass(frozen=True)
class ExportSource:
    """What an exporter needs to rebuild a config's trained model from its newest epoch-end checkpoint."""

    config_id: int
    workload_id: int
    checkpoint_id: int
    checkpoint_path: str
    checkpoint_sha256: str
    model_ref: str
    entry_point: str
    hparams: dict
    feature_shape: tuple
    n_outputs: int
    task: str
    validation_path: str


@dataclass(frozen=True)
class SubEpochStart:
    """A sub-epoch the store has just recorded as running: what the scheduler needs to build its task."""

    sub_epoch_id: int
    config_id: int
    workload_id: int
    workload_seed: int
    epoch: int
    partition: int
    hparams: dict
    dataset: DatasetLayout
    model_ref: str
    entry_point: str
    in_checkpoint: tuple[str, str] | None  # (path, sha256) of the config's current checkpoint
    warm_start: tuple[str, str] | None  # a clone's or drill-down's starting weights, before its first commit


@dataclass(frozen=True)
class SubEpochStats:
    """One committed sub-epoch's training numbers, from which an epoch's metrics are aggregated."""

    rows: int | None
    train_loss: float | None
    train_accuracy: float | None
    compute_seconds: float | None
    hop_seconds: float | None


@dataclass(frozen=True)
class CommittedSubEpoch:
    """What committing a finished sub-epoch changed."""

    committed: bool  # False: stale (already committed, or its config moved on); its checkpoint is garbage
    config_id: int
    workload_id: int = 0
    epoch: int = 0
    visited: frozenset[int] = frozenset()  # partitions this config has now trained on in ``epoch``
    epoch_end: bool = False
    metrics: dict = field(default_factory=dict)  # the epoch's metrics when it ended
    superseded_path: str | None = None  # the previous mid-epoch checkpoint, now safe to delete


@dataclass(frozen=True)
class Proposal:
    """What a search procedure wants added now, and whether it will ever propose more."""

    hparams: list[dict] = field(default_factory=list)
    exhausted: bool = False


@dataclass(frozen=True)
class LeaseInfo(_Serialisable):
    """The scheduler lease: which process owns the store's scheduling, since when, until when unless renewed."""

    holder: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> LeaseInfo:
        return cls(row.holder, row.host, row.pid, row.started_at, row.heartbeat_at, row.expires_at)

    def describe(self) -> str:
        """One line naming the holder, for the refusal message."""
        return (f"{self.host} pid {self.pid} since {self.started_at.isoformat(timespec='seconds')}Z "
                f"(last heartbeat {self.heartbeat_at.isoformat(timespec='seconds')}Z)")
