"""Plain domain objects that services return; ORM rows never leave the store layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Protocol

from hopper.engine.status import DeviceStatus


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="milliseconds") + "Z"


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


class _Serialisable:
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; shallow (fields already hold plain JSON values), so cheap on hot paths."""
        out = {}
        for name in _field_names(type(self)):
            value = getattr(self, name)
            out[name] = _iso(value) if isinstance(value, datetime) else value
        return out

    def to_row(self) -> list[Any]:
        """The values in field order (``to_dict`` without the keys), for columnar answers."""
        return [_iso(v) if isinstance(v, datetime) else v for v in (getattr(self, n) for n in _field_names(type(self)))]

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return _field_names(cls)


def label_kind_of(schema: dict, task: str) -> str:
    """A dataset's label kind from its schema; datasets registered before label kinds get one from the task."""
    return str((schema.get("label") or {}).get("kind") or ("sparse" if task == "classification" else "regression"))


def label_names_of(schema: dict) -> list[str] | None:
    """A typed table's label column name(s) as its source file spelled them (None for arrays, images, and
    tables registered before names were recorded): a bound ``train_dataframe`` carries them, as the file did."""
    label = schema.get("label") or {}
    names = label.get("columns") or ([label["name"]] if label.get("name") else None)
    return list(names) if names and schema.get("columns") else None


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
    # Feature columns' types (tables), the label's kind and k: ``{"columns": [...], "label": {...}, ...}``.
    schema: dict = field(default_factory=dict)

    @property
    def n_outputs(self) -> int:
        label = self.schema.get("label") or {}
        if label.get("kind") in ("one_hot", "multi_label", "regression"):
            return int(label.get("k", 1))
        return len(self.classes) if self.classes else 1

    @property
    def label_kind(self) -> str:
        """sparse / one_hot / multi_label / regression (datasets registered before label kinds: from the task)."""
        return label_kind_of(self.schema, self.task)

    @property
    def label_names(self) -> list[str] | None:
        """The label column name(s) of a typed table (see ``label_names_of``)."""
        return label_names_of(self.schema)

    @classmethod
    def from_row(cls, row: Any) -> DatasetInfo:
        return cls(row.id, row.name, row.source_path, row.format, list(row.feature_columns), row.label_column,
                   row.task, row.n_rows, row.n_train, row.n_validation, list(row.feature_shape),
                   None if row.classes is None else list(row.classes), row.partition_count, row.created_at,
                   dict(row.schema or {}))


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
    entry: str | None = None  # the entry the script resolved to (picked when it was the only candidate)
    # A HyperModel class entry's constructor parameters without defaults: a workload must give them (entry_args).
    needs_entry_args: tuple[str, ...] = ()
    # Module globals the script reads but never defines: a workload must bind them (bind_globals).
    needs_bind_globals: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"ok": self.ok, "kind": self.kind, "message": self.message, "details": self.details,
                "space": self.space, "compiled": self.compiled, "params": self.params, "notes": list(self.notes),
                "entry": self.entry, "needs_entry_args": list(self.needs_entry_args),
                "needs_bind_globals": list(self.needs_bind_globals)}


class ScriptValidator(Protocol):
    """Imports a script and builds one model out of process; ``hopper.mop_scheduler.worker.validate.validate_script``.

    The services take one as a parameter (``hopper.app.open_services`` supplies it) because the
    implementation lives in the worker package, which the engine must not import.
    """

    def __call__(self, path: str | Path, entry_point: str = "build_model", *, input_shape: tuple = (64,),
                 n_outputs: int = 10, task: str = "classification", sample_config: dict | None = None,
                 timeout: float = 60.0, memory_mb: int = 0, allowed_roots: Sequence[str] = (),
                 cpu_seconds: int = 0, processes: int = 0, file_mb: int = 0, user: str = "",
                 label_kind: str | None = None, columns: Sequence[dict] | None = None) -> ScriptCheck: ...


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
    privacy: dict | None = None  # the privacy section as stored (None: trains without DP-SGD)
    warnings: list = field(default_factory=list)  # advice given at launch (a delta that is too large, ...)
    procedure_options: dict = field(default_factory=dict)  # eta, min_epochs, population, median_stop, ...
    advisor: bool = False  # the procedure suggests its decisions to people instead of applying them
    weight: float = 1.0  # its share of the workers against other runnable workloads
    budget: dict | None = None  # {"wall_seconds", "worker_seconds", "money", "price_per_worker_hour"}; None: none
    plan: str = "auto"  # the execution plan asked for: auto (the scheduler chooses), mop, replicated
    plan_choice: dict | None = None  # the scheduler's choice {"plan", "reason", "basis", "decided_at"}; None: not yet

    @classmethod
    def from_row(cls, row: Any, config_counts: dict | None = None, best: dict | None = None) -> WorkloadInfo:
        privacy = getattr(row, "privacy", None)
        return cls(row.id, row.name, row.description, row.owner, row.status, row.procedure, dict(row.search_space),
                   list(row.objectives), row.max_epochs, row.max_configs, row.seed, row.dataset_id, row.model_ref,
                   row.script_id, row.parent_workload_id, row.parent_config_id, row.error, row.created_at,
                   row.updated_at, config_counts or {}, best, getattr(row, "export_top_k", None),
                   None if privacy is None else dict(privacy), list(getattr(row, "warnings", None) or []),
                   dict(getattr(row, "procedure_options", None) or {}),
                   advisor=bool(getattr(row, "advisor", False)), weight=float(getattr(row, "weight", None) or 1.0),
                   budget=None if getattr(row, "budget", None) is None else dict(row.budget),
                   plan=str(getattr(row, "plan", None) or "auto"),
                   plan_choice=None if getattr(row, "plan_choice", None) is None else dict(row.plan_choice))


@dataclass(frozen=True)
class BudgetStatus(_Serialisable):
    """What a workload has spent of its budget, what remains, and when it should end (``GET .../budget``).

    Limits and remaining amounts are None where the budget sets none. ``eta_seconds``: measured mean sub-epoch
    time x sub-epochs left / the workers its weight gives it; None before any sub-epoch finished.
    """

    workload_id: int
    status: str
    weight: float
    wall_seconds: float
    worker_seconds: float
    money: float | None
    limits: dict
    remaining: dict
    spent: bool
    sub_epochs_done: int
    sub_epochs_left: int
    mean_sub_epoch_seconds: float | None
    worker_share: float
    eta_seconds: float | None


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
class SuggestionInfo(_Serialisable):
    """A procedure's decision waiting for (or decided by) a person, in advisor mode."""

    id: int
    workload_id: int
    config_id: int
    procedure: str
    kind: str
    payload: dict
    reason: str
    key: str
    status: str
    decided_by: str | None
    decided_at: datetime | None
    detail: str | None
    created_at: datetime

    @property
    def summary(self) -> str:
        """One line for lists and notices: "stop config 7 (suggested by asha)"."""
        source = self.payload.get("source_config_id")
        what = f"exploit config {source} into config {self.config_id}" if self.kind == "exploit" and source \
            else f"{self.kind} config {self.config_id}"
        return f"{what} (suggested by {self.procedure})"

    @classmethod
    def from_row(cls, row: Any) -> SuggestionInfo:
        return cls(row.id, row.workload_id, row.config_id, row.procedure, row.kind, dict(row.payload or {}),
                   row.reason, row.key, row.status, row.decided_by, row.decided_at, row.detail, row.created_at)


@dataclass(frozen=True)
class EvaluationInfo(_Serialisable):
    """An objective added to a running workload and its measurement on the checkpoints already trained."""

    id: int
    workload_id: int
    objective: dict
    status: str  # JobStatus
    actor: str
    n_expected: int  # configs x kept epoch-end checkpoints that lacked the metric when it was added
    n_done: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> EvaluationInfo:
        return cls(row.id, row.workload_id, dict(row.objective), row.status, row.actor, row.n_expected, row.n_done,
                   row.error, row.created_at, row.finished_at)


@dataclass(frozen=True)
class CheckpointToEvaluate:
    config_id: int
    epoch: int
    path: str
    sha256: str
    hparams: dict


@dataclass(frozen=True)
class EvaluationWork:
    """What a worker needs to measure an added objective: how to rebuild the models, the validation split, and
    every kept epoch-end checkpoint that lacks the metric (oldest first, grouped by config)."""

    request_id: int
    objective: dict
    model_ref: str
    entry_point: str
    feature_shape: tuple
    n_outputs: int
    task: str
    validation_path: str
    checkpoints: tuple[CheckpointToEvaluate, ...]


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

    @property
    def label_kind(self) -> str:
        """sparse / one_hot / multi_label / regression (datasets registered before label kinds: from the task)."""
        return label_kind_of(self.schema, self.task)

    @property
    def label_names(self) -> list[str] | None:
        return label_names_of(self.schema)


@dataclass(frozen=True)
class ConfigObservation:
    """A config as a search procedure sees it when it is rebuilt from the store."""

    id: int
    hparams: dict
    origin: str
    status: str
    latest_metrics: dict
    curve: tuple = ()  # the primary objective after each committed epoch (None where it was not measured)
    epochs_done: int = 0
    parent_id: int | None = None  # cloned_from_config_id: whose weights it started from
    stopped_by_person: bool = False  # its latest stop was not a procedure's decision
    priority: int = 0


@dataclass(frozen=True)
class ObjectiveFront(_Serialisable):
    """A workload's configs on its declared objectives: the Pareto set now and the hypervolume after each epoch.

    ``points``: {config_id, values: {metric: value}, on_front} per config with every objective measured;
    ``epochs``: {epoch (1-based), hypervolume, front: [config ids]}, each config at its state after that many
    epochs (or its last, when it stopped earlier); ``reference``: the fixed point the hypervolumes are measured
    from, in the objectives' own units.
    """

    workload_id: int
    objectives: list
    reference: dict
    points: list
    epochs: list


@dataclass(frozen=True)
class Importance(_Serialisable):
    """fANOVA importance of each searched hyperparameter for a workload's primary objective (shares sum to 1)."""

    workload_id: int
    metric: str
    method: str
    n_configs: int
    importances: dict


@dataclass(frozen=True)
class AppliedDecision(_Serialisable):
    """A procedure's decision as applied (or suggested and accepted): the audit trail of automatic search."""

    id: int
    workload_id: int
    key: str
    kind: str
    config_id: int
    source_config_id: int | None
    result_config_id: int | None  # exploit: the new config
    reason: str
    actor: str
    at: datetime

    @classmethod
    def from_row(cls, row: Any) -> AppliedDecision:
        return cls(row.id, row.workload_id, row.key, row.kind, row.config_id, row.source_config_id,
                   row.result_config_id, row.reason, row.actor, row.at)


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
    entry_options: dict | None = None  # the workload's entry_args / bind_globals


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
    privacy: dict | None = None  # the workload's privacy options: the worker trains with DP-SGD
    objectives: tuple[dict, ...] = ()  # the workload's objectives that the worker computes (engine.objectives)
    entry_options: dict | None = None  # a script's entry_args / bind_globals from the workload spec
    objective: tuple[str, str] = ("val_accuracy", "max")  # the workload's first objective (metric, direction)
    shards: tuple[int, ...] = ()  # what it trains on (``partition`` is the lowest)


@dataclass(frozen=True)
class ShardVisit:
    """One sub-epoch of the schedule log with every shard it trained on."""

    id: int
    config_id: int
    epoch: int
    worker: str
    outcome: str
    shards: tuple[int, ...]
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class WorkerPoolInfo(_Serialisable):
    """The worker pool: how many workers people asked for, and what the scheduler last reported running.

    ``workers`` holds one object per worker: ``id``, ``name``, ``state`` (active / draining), ``shards``
    (shard count -> the shards it owns) and ``busy``.
    """

    desired: int | None
    remove_now: bool
    requested_by: str | None
    requested_at: datetime | None
    workers: list
    reported_at: datetime | None


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
    visited: frozenset[int] = frozenset()  # shards this config has now trained on in ``epoch``
    epoch_end: bool = False
    metrics: dict = field(default_factory=dict)  # the epoch's metrics when it ended
    superseded_path: str | None = None  # the previous mid-epoch checkpoint, now safe to delete
    status: str | None = None  # the config's status after the commit (done, privacy_spent, ...)
    seconds: float = 0.0  # the worker time it took (start to commit): what it adds to its workload's use


@dataclass(frozen=True)
class WorkloadUsage:
    """A workload's use of the workers as the schedule log has it (budgets, ETA)."""

    worker_seconds: float  # committed sub-epochs plus running ones so far
    sub_epochs_done: int  # committed sub-epochs
    committed_seconds: float  # worker time of the committed ones (their mean is the ETA's sub-epoch time)
    running: int  # sub-epochs running now
    sub_epochs_left: int  # of configs not finished, to their max_epochs; not yet proposed configs at max_configs


@dataclass(frozen=True)
class Proposal:
    """What a search procedure wants added now, and whether it will ever propose more."""

    hparams: list[dict] = field(default_factory=list)
    exhausted: bool = False


# -- edge deployment -----------------------------------------------------------------------------------------
# The edge entities keep the JSON the REST API and the edge agents have always exchanged: datetimes are plain
# ``isoformat()`` (no ``Z``, full precision), and a nested entity becomes a nested object.


def _edge_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, _Serialisable):
        return value.to_dict()
    if isinstance(value, list):
        return [_edge_value(v) for v in value]
    return value


class _EdgeSerialisable(_Serialisable):
    _omit_if_none: ClassVar[frozenset[str]] = frozenset()  # fields that the JSON leaves out rather than writing null

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, in the REST API's edge format (``isoformat()`` datetimes, nested objects)."""
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.name in self._omit_if_none:
                continue
            out[f.name] = _edge_value(value)
        return out


@dataclass(frozen=True)
class DeviceInfo(_EdgeSerialisable):
    """An edge agent; ``status`` is ``offline`` once it has been silent for the offline timeout."""

    id: int
    name: str
    hardware: dict
    interpreter: str
    status: str
    registered_at: datetime
    last_seen: datetime
    seconds_since_seen: float

    @classmethod
    def from_row(cls, row: Any, *, offline_after: float, now: datetime) -> DeviceInfo:
        silent = (now - row.last_seen).total_seconds()
        status = DeviceStatus.OFFLINE if row.status == DeviceStatus.ONLINE and silent > offline_after else row.status
        return cls(row.id, row.name, dict(row.hardware or {}), row.interpreter, str(status), row.registered_at,
                   row.last_seen, round(silent, 1))


@dataclass(frozen=True)
class HeartbeatResult(_EdgeSerialisable):
    """A heartbeat's outcome: the device, how many held jobs had their lease extended, and by how long."""

    device: DeviceInfo
    extended_jobs: int
    lease_seconds: float


@dataclass(frozen=True)
class SignOffResult(_EdgeSerialisable):
    """A sign-off's outcome: the (now offline) device and how many held jobs went back to the queue."""

    device: DeviceInfo
    requeued_jobs: int


@dataclass(frozen=True)
class JobExport(_EdgeSerialisable):
    """The export a profiling job measures, as an agent needs it (``artifact``: where to download it)."""

    id: int
    config_id: int
    quantization: str
    sha256: str
    bytes: int
    artifact: str

    @classmethod
    def from_row(cls, row: Any) -> JobExport:
        return cls(row.id, row.config_id, row.quantization, row.sha256, row.bytes,
                   f"/api/v1/exports/{row.id}/artifact")


@dataclass(frozen=True)
class ProfileJobInfo(_EdgeSerialisable):
    """A profiling job; ``export`` is set (and in the JSON) only where the job is shown with its export."""

    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"export"})

    id: int
    export_id: int
    device_id: int | None
    status: str
    attempts: int
    max_attempts: int
    runs: int | None
    warmup: int | None
    claimed_by: int | None
    claimed_at: datetime | None
    lease_expires_at: datetime | None
    error: str | None
    result: dict | None
    created_at: datetime
    finished_at: datetime | None
    export: JobExport | None = None

    @staticmethod
    def _columns(row: Any) -> tuple:
        return (row.id, row.export_id, row.device_id, str(row.status), row.attempts, row.max_attempts, row.runs,
                row.warmup, row.claimed_by, row.claimed_at, row.lease_expires_at, row.error, row.result,
                row.created_at, row.finished_at)

    @classmethod
    def from_row(cls, row: Any, export: Any = None) -> ProfileJobInfo:
        return cls(*cls._columns(row), export=None if export is None else JobExport.from_row(export))


@dataclass(frozen=True, kw_only=True)
class ClaimedJob(ProfileJobInfo):
    """A job an agent has just claimed, with its export and the lease it holds it under."""

    lease_seconds: float

    @classmethod
    def claimed(cls, row: Any, export: Any, *, lease_seconds: float) -> ClaimedJob:
        return cls(*cls._columns(row), export=JobExport.from_row(export), lease_seconds=lease_seconds)


@dataclass(frozen=True, kw_only=True)
class CompletedJob(ProfileJobInfo):
    """A finished job, with the profile row it wrote and the metrics the config got from it."""

    profile_id: int
    metrics: dict

    @classmethod
    def completed(cls, row: Any, *, profile_id: int, metrics: dict) -> CompletedJob:
        return cls(*cls._columns(row), profile_id=profile_id, metrics=metrics)


@dataclass(frozen=True)
class ExportInfo(_EdgeSerialisable):
    """A written TFLite (or Keras) artefact of a config, with its accuracy before and after conversion."""

    id: int
    config_id: int
    quantization: str
    path: str
    sha256: str
    bytes: int
    keras_accuracy: float | None
    tflite_accuracy: float | None
    convert_seconds: float

    @classmethod
    def from_row(cls, row: Any) -> ExportInfo:
        return cls(row.id, row.config_id, row.quantization, row.path, row.sha256, row.bytes, row.keras_accuracy,
                   row.tflite_accuracy, row.convert_seconds)


@dataclass(frozen=True)
class ExportRequestInfo(_EdgeSerialisable):
    """A queued (or finished) export of a config for the export worker, with the exports it produced."""

    id: int
    config_id: int
    quantizations: list
    profile: bool
    origin: str
    status: str
    actor: str
    export_ids: list | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    reused: bool | None = None  # True: an identical pending request was returned instead of queueing another
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"reused"})

    @classmethod
    def from_row(cls, row: Any, *, reused: bool | None = None) -> ExportRequestInfo:
        return cls(row.id, row.config_id, list(row.quantizations), row.profile, row.origin, str(row.status),
                   row.actor, row.export_ids, row.error, row.created_at, row.finished_at, reused)


@dataclass(frozen=True)
class DeploymentInfo(_EdgeSerialisable):
    """A model server of a config; ``url`` is its predict endpoint once it has a port."""

    id: int
    config_id: int
    export_id: int | None
    format: str
    name: str
    host: str
    port: int | None
    pid: int | None
    status: str
    error: str | None
    url: str | None
    started_at: datetime
    stopped_at: datetime | None
    reused: bool | None = None  # True: an active deployment of the same config and format was returned
    _omit_if_none: ClassVar[frozenset[str]] = frozenset({"reused"})

    @classmethod
    def from_row(cls, row: Any, *, reused: bool | None = None) -> DeploymentInfo:
        url = f"http://{row.host}:{row.port}/v1/models/{row.name}" if row.port else None
        return cls(row.id, row.config_id, row.export_id, row.format, row.name, row.host, row.port, row.pid,
                   str(row.status), row.error, url, row.started_at, row.stopped_at, reused)


@dataclass(frozen=True)
class ProfileInfo(_EdgeSerialisable):
    """One measurement of an export on a device, with the names and numbers the Pareto view needs."""

    id: int
    job_id: int
    export_id: int
    config_id: int
    workload_id: int
    device_id: int
    device: str
    quantization: str
    tflite_accuracy: float | None
    latency_p50_ms: float
    latency_p95_ms: float
    size_bytes: int
    peak_memory_bytes: int | None
    energy_mj: float | None
    runs: int
    detail: dict | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any, *, workload_id: int, device: str, quantization: str,
                 tflite_accuracy: float | None) -> ProfileInfo:
        return cls(row.id, row.job_id, row.export_id, row.config_id, workload_id, row.device_id, device,
                   quantization, tflite_accuracy, row.latency_p50_ms, row.latency_p95_ms, row.size_bytes,
                   row.peak_memory_bytes, row.energy_mj, row.runs, row.detail, row.created_at)


@dataclass(frozen=True)
class ParetoPoint(_EdgeSerialisable):
    """One export on the accuracy / latency (or size) plane; ``pareto``: it is on the front."""

    export_id: int
    config_id: int
    quantization: str
    accuracy: float
    x: float
    bytes: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    pareto: bool


@dataclass(frozen=True)
class ParetoFront(_EdgeSerialisable):
    """A workload's exports as points, front marked, on ``device`` (one of ``devices``, which have profiles)."""

    workload_id: int
    x: str
    device: str | None
    devices: list
    points: list[ParetoPoint]


# -- identity: people, devices and their tokens -----------------------------------------------------------
class Role:
    """Who may do what. People are viewers (read), editors (read, steer, launch) or admins (also manage people
    and devices); a device may only run its own profiling jobs; an enrolment token may only register a device."""

    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    DEVICE = "device"
    ENROL = "enrol"
    PEOPLE = (ADMIN, EDITOR, VIEWER)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request: the name the audit log records and what it may do."""

    name: str
    role: str
    credential_id: int | None = None  # None: the bootstrap admin token (or auth off)
    device_id: int | None = None  # set for device tokens only


@dataclass(frozen=True)
class UserInfo(_Serialisable):
    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    active_tokens: int


@dataclass(frozen=True)
class CredentialRecord:
    """A stored token as the services need it to verify one: the hash and whose it is (never serialised)."""

    id: int
    kind: str
    secret_hash: str
    active: bool  # not revoked, not (for enrolment tokens) used, its person not revoked
    user_name: str | None
    user_role: str | None
    device_id: int | None
    device_name: str | None


@dataclass(frozen=True)
class EnrolledDevice:
    """A device just enrolled, with its device token: shown this once, only its hash is stored."""

    device: DeviceInfo
    token: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.device.to_dict(), "token": self.token}


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


@dataclass(frozen=True)
class ScheduleInfo(_Serialisable):
    """A workload spec launched on a cron schedule (times in UTC; ``timezone`` is the cron's)."""

    id: int
    name: str
    cron: str
    timezone: str
    spec: dict
    enabled: bool
    next_run_at: datetime
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> ScheduleInfo:
        return cls(row.id, row.name, row.cron, row.timezone, dict(row.spec), bool(row.enabled), row.next_run_at,
                   row.created_by, row.created_at, row.updated_at)


@dataclass(frozen=True)
class ScheduleRunInfo(_Serialisable):
    """One due run of a schedule: who claimed it, the workload it launched or why it did not."""

    id: int
    schedule_id: int
    due_at: datetime
    claimed_at: datetime
    claimed_by: str
    workload_id: int | None
    status: str  # ScheduleRunStatus
    error: str | None

    @classmethod
    def from_row(cls, row: Any) -> ScheduleRunInfo:
        return cls(row.id, row.schedule_id, row.due_at, row.claimed_at, row.claimed_by, row.workload_id, row.status,
                   row.error)


@dataclass(frozen=True)
class WebhookDeliveryInfo(_Serialisable):
    """A webhook POST in the outbox: what it reports, to where, and how its attempts went."""

    id: int
    workload_id: int
    event: str  # the workload status it reports
    url: str
    payload: dict
    status: str  # WebhookStatus
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> WebhookDeliveryInfo:
        return cls(row.id, row.workload_id, row.event, row.url, dict(row.payload), row.status, row.attempts,
                   row.next_attempt_at, row.last_error, row.delivered_at, row.created_at)


@dataclass(frozen=True)
class WorkloadProgress(_Serialisable):
    """How far a workload is, in epochs, and what its configs are doing right now.

    ``epochs_planned`` counts every epoch the workload will train if nothing changes: ``max_epochs`` for each config
    that may still train (and for each config its budget has yet to propose), the epochs actually trained for one that
    stopped, failed or spent its privacy budget. ``training_now`` holds the configs with a sub-epoch on a worker.
    """

    workload_id: int
    epochs_done: int
    epochs_planned: int
    training_now: list = field(default_factory=list)


@dataclass(frozen=True)
class NoteInfo(_Serialisable):
    """A note (Markdown) on a workload or a config, with who wrote it and when."""

    id: int
    object_type: str  # "workload" | "config"
    object_id: int
    author: str
    text: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> NoteInfo:
        return cls(row.id, row.object_type, row.object_id, row.author, row.text, row.created_at)
