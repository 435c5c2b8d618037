"""Every user action as one function: the only place where intent becomes store writes.

REST handlers, Dash callbacks, the CLI and scheduled batch jobs all call ``Services``; none of
them holds business logic of its own. Nothing here imports TensorFlow (script validation runs in
a child process).
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hopper.engine import data as data_mod
from hopper.engine.catalog import check_hparam_value, check_hparams, get_entry
from hopper.engine.edge import EdgeServices
from hopper.engine.entities import (
    ConfigInfo,
    DatasetInfo,
    EventInfo,
    ScriptInfo,
    ScriptValidator,
    SubEpochInfo,
    WorkloadInfo,
)
from hopper.engine.errors import (
    Conflict,
    HopperError,
    InvalidState,
    NotFound,
    ScriptRejected,
    ValidationError,
)
from hopper.engine.procedures import Objective, make_procedure
from hopper.engine.search import top_up
from hopper.engine.space import SearchSpace
from hopper.engine.specs import DatasetSpec, WorkloadSpec, parse_spec
from hopper.engine.store import (
    CheckpointRow,
    ConfigRow,
    DatasetRow,
    EventRow,
    ExportRow,
    MetricRow,
    ScriptRow,
    Store,
    SubEpochRow,
    WorkloadRow,
)
from hopper.settings import Settings

log = logging.getLogger("hopper.engine.services")

MAX_SCRIPT_BYTES = 1_000_000
MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL; larger ones cannot exist


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


def _config_snapshot(row: ConfigRow) -> dict:
    return {"status": row.status, "priority": row.priority, "epochs_done": row.epochs_done, "version": row.version}


@dataclass(frozen=True)
class ExportSource:
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


class Services(EdgeServices):
    """User actions on one store.

    Args:
        store: the config store.
        settings: data roots, artefact dir, worker count.
        script_validator: validates uploaded scripts out of process (``hopper.app.open_services``
            passes the worker's); None: this Services cannot upload scripts.
    """

    def __init__(self, store: Store, settings: Settings, script_validator: ScriptValidator | None = None) -> None:
        self.store = store
        self.settings = settings
        self.script_validator = script_validator

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _event(session: Session, actor: str, action: str, object_type: str, object_id: int | None,
               before: dict | None = None, after: dict | None = None) -> None:
        session.add(EventRow(actor=actor, action=action, object_type=object_type, object_id=object_id,
                             before=before, after=after))

    @staticmethod
    def _get(session: Session, model: type, object_id: int, what: str) -> Any:
        row = session.get(model, object_id) if 0 <= object_id <= MAX_ID else None
        if row is None:
            raise NotFound(f"{what} {object_id} does not exist", field=f"{what}_id")
        return row

    @staticmethod
    def _check_version(row: ConfigRow, expected_version: int | None) -> None:
        if expected_version is not None and row.version != expected_version:
            raise Conflict(
                f"config {row.id} is at version {row.version}, not {expected_version}: it changed since you "
                "loaded it; reload and try again",
                field="version",
            )

    # -- datasets -----------------------------------------------------------------------------
    def register_dataset(self, spec: dict | DatasetSpec, *, actor: str | None = None) -> DatasetInfo:
        """Load a dataset from a data root, split it, and partition it once for the workers."""
        spec = spec if isinstance(spec, DatasetSpec) else parse_spec(DatasetSpec, spec)
        path = data_mod.confine_path(spec.path, self.settings.data_roots)
        with self.store.session() as session:
            if session.scalar(select(DatasetRow.id).where(DatasetRow.name == spec.name)) is not None:
                raise Conflict(f"a dataset named {spec.name!r} already exists", field="name")
        fmt = spec.format or data_mod.detect_format(path)
        loaded = data_mod.load_source(path, fmt, spec.feature_columns, spec.label_column, task=spec.task,
                                      image_size=spec.image_size)
        out_dir = self.settings.artifact_dir / "datasets" / spec.name
        parts = data_mod.split_and_partition(loaded, out_dir, workers=self.settings.workers,
                                             validation_fraction=spec.validation_fraction, seed=spec.seed)
        with self.store.session() as session:
            row = DatasetRow(
                name=spec.name, source_path=str(path), format=fmt, feature_columns=loaded.feature_columns,
                label_column=loaded.label_column, task=loaded.task, n_rows=int(len(loaded.x)),
                n_train=parts["n_train"], n_validation=parts["n_validation"],
                feature_shape=list(loaded.x.shape[1:]), classes=loaded.classes,
                partition_count=self.settings.workers, partition_paths=parts["partition_paths"],
                validation_path=parts["validation_path"], schema=loaded.schema,
            )
            session.add(row)
            session.flush()
            self._event(session, actor or default_actor(), "register_dataset", "dataset", row.id,
                        after={"name": spec.name, "rows": row.n_rows, "partitions": row.partition_count})
            return DatasetInfo.from_row(row)

    def list_datasets(self) -> list[DatasetInfo]:
        with self.store.session() as session:
            return [DatasetInfo.from_row(r) for r in session.scalars(select(DatasetRow).order_by(DatasetRow.id))]

    def get_dataset(self, ref: str | int) -> DatasetInfo:
        with self.store.session() as session:
            return DatasetInfo.from_row(self._dataset_row(session, ref))

    def _dataset_row(self, session: Session, ref: str | int, *, referenced: bool = False) -> DatasetRow:
        """The dataset by id or name; ``referenced`` makes a missing one a bad input, not a 404."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            row = session.get(DatasetRow, int(ref)) if 0 <= int(ref) <= MAX_ID else None
        else:
            row = session.scalar(select(DatasetRow).where(DatasetRow.name == ref))
        if row is None:
            error = ValidationError if referenced else NotFound
            raise error(f"dataset {ref!r} does not exist (register it first)", field="dataset")
        return row

    # -- scripts ------------------------------------------------------------------------------
    def upload_script(self, name: str, content: bytes | str, *, entry_point: str = "build_model",
                      dataset: str | int | None = None, sample_config: dict | None = None,
                      actor: str | None = None) -> ScriptInfo:
        """Store a model script and validate it in a sandboxed child process.

        Raises:
            ScriptRejected: the script raised, hung, or returned something other than a Keras model;
                the stored row keeps the reason and traceback.
        """
        if self.script_validator is None:
            raise HopperError("this Services has no script validator; open it with hopper.app.open_services")
        raw = content.encode() if isinstance(content, str) else content
        if len(raw) > MAX_SCRIPT_BYTES:
            raise ValidationError(f"the script is {len(raw)} bytes; the limit is {MAX_SCRIPT_BYTES}", field="script")
        if not entry_point.isidentifier():
            raise ValidationError(f"entry point {entry_point!r} is not a Python identifier", field="entry_point")
        try:
            compile(raw, name or "script.py", "exec")
        except SyntaxError as exc:
            raise ScriptRejected(f"syntax error at line {exc.lineno}: {exc.msg}", details=str(exc),
                                 field="script") from None
        sha = hashlib.sha256(raw).hexdigest()
        scripts_dir = self.settings.artifact_dir / "scripts"
        scripts_dir.mkdir(parents=True, exist_ok=True)
        path = scripts_dir / f"{sha}.py"
        path.write_bytes(raw)
        shape, n_outputs, task = (64,), 10, "classification"
        if dataset is not None:
            ds = self.get_dataset(dataset)
            shape, n_outputs, task = tuple(ds.feature_shape), ds.n_outputs, ds.task
        result = self.script_validator(path, entry_point, input_shape=shape, n_outputs=n_outputs, task=task,
                                 sample_config=sample_config, timeout=self.settings.script_timeout,
                                 memory_mb=self.settings.script_memory_mb,
                                 allowed_roots=tuple(map(str, self.settings.data_roots)))
        with self.store.session() as session:
            row = ScriptRow(name=name, sha256=sha, path=str(path), entry_point=entry_point, kind=result.kind,
                            valid=result.ok, validation=result.to_dict())
            session.add(row)
            session.flush()
            self._event(session, actor or default_actor(), "upload_script", "script", row.id,
                        after={"name": name, "valid": result.ok, "message": result.message})
            info = ScriptInfo.from_row(row)
        if not result.ok:
            raise ScriptRejected(f"script {name!r} (id {info.id}) is not usable: {result.message}",
                                 details=result.details, field="script")
        return info

    def list_scripts(self, *, valid_only: bool = False) -> list[ScriptInfo]:
        with self.store.session() as session:
            stmt = select(ScriptRow).order_by(ScriptRow.id)
            if valid_only:
                stmt = stmt.where(ScriptRow.valid.is_(True))
            return [ScriptInfo.from_row(r) for r in session.scalars(stmt)]

    def get_script(self, script_id: int) -> ScriptInfo:
        with self.store.session() as session:
            return ScriptInfo.from_row(self._get(session, ScriptRow, script_id, "script"))

    # -- workloads ----------------------------------------------------------------------------
    def launch_workload(self, spec: dict | WorkloadSpec, *, actor: str | None = None,
                        parent_workload_id: int | None = None, parent_config_id: int | None = None,
                        warm_start_checkpoint_id: int | None = None) -> WorkloadInfo:
        """Validate a workload spec and create the workload; the scheduler then proposes its configs."""
        spec = spec if isinstance(spec, WorkloadSpec) else parse_spec(WorkloadSpec, spec)
        actor = actor or default_actor()
        if (spec.model is None) == (spec.script is None):
            raise ValidationError("give exactly one of model (a roster name) or script (an uploaded script id)",
                                  field="model")
        with self.store.session() as session:
            dataset = self._dataset_row(session, spec.dataset, referenced=True)
            if dataset.partition_count != self.settings.workers:
                raise ValidationError(
                    f"dataset {dataset.name!r} is partitioned for {dataset.partition_count} workers but Hopper "
                    f"runs {self.settings.workers}; register it again with HOPPER_WORKERS={self.settings.workers}",
                    field="dataset",
                )
            script_row = None
            space_raw = spec.space
            if spec.script is not None:
                script_row = session.get(ScriptRow, spec.script)
                if script_row is None:
                    raise ValidationError(f"script {spec.script} does not exist", field="script")
                if not script_row.valid:
                    raise ValidationError(f"script {script_row.id} failed validation: "
                                          f"{script_row.validation.get('message')}", field="script")
                if space_raw is None:
                    space_raw = script_row.validation.get("space")
                model_ref = f"script:{script_row.id}"
            else:
                entry = get_entry(spec.model)
                if entry.input_kind == "tokens" and dataset.schema.get("feature_dtype") != "int32":
                    raise ValidationError(f"{spec.model} needs token ids (integer features); dataset "
                                          f"{dataset.name!r} has {dataset.schema.get('feature_dtype')}", field="model")
                model_ref = spec.model
            if space_raw is None:
                if spec.procedure != "manual":
                    raise ValidationError(f"procedure {spec.procedure!r} needs a search space", field="space")
                space_raw = {}
            space = SearchSpace.parse(space_raw)
            _check_space_for_model(model_ref, space)
            objective = Objective(spec.objectives[0].metric, spec.objectives[0].direction)
            procedure = make_procedure(spec.procedure, space, objective, seed=spec.seed, budget=spec.max_configs)
            if spec.procedure == "grid":
                procedure.capacity()  # raises if a range has no step
            if "weights_path" in space.names():
                for value in _possible_values(space, "weights_path"):
                    if value:
                        data_mod.confine_path(value, self.settings.data_roots, field="space.weights_path")
            row = WorkloadRow(
                name=spec.name, description=spec.description, owner=actor, status="running",
                procedure=spec.procedure, search_space=space.to_dict(),
                objectives=[o.model_dump() for o in spec.objectives], max_epochs=spec.max_epochs,
                max_configs=spec.max_configs, seed=spec.seed, dataset_id=dataset.id, model_ref=model_ref,
                script_id=script_row.id if script_row else None, parent_workload_id=parent_workload_id,
                parent_config_id=parent_config_id, warm_start_checkpoint_id=warm_start_checkpoint_id,
                export_top_k=spec.export_top_k,
            )
            session.add(row)
            session.flush()
            self._event(session, actor, "launch_workload", "workload", row.id, after=spec.model_dump(mode="json"))
            # Propose the first configs now, so they are visible (and steerable) before the scheduler runs.
            top_up(session, row, self.settings.workers)
            return WorkloadInfo.from_row(row)

    def list_workloads(self) -> list[WorkloadInfo]:
        with self.store.session() as session:
            rows = list(session.scalars(select(WorkloadRow).order_by(WorkloadRow.id)))
            counts = self._config_counts(session, [r.id for r in rows])
            return [WorkloadInfo.from_row(r, counts.get(r.id, {}), self._best(session, r)) for r in rows]

    def child_workloads(self, workload_id: int) -> list[tuple[int, str]]:
        """(id, name) of the drill-downs launched from a workload: one indexed read, for live pages."""
        with self.store.session() as session:
            return [tuple(r) for r in session.execute(
                select(WorkloadRow.id, WorkloadRow.name).where(WorkloadRow.parent_workload_id == workload_id)
                .order_by(WorkloadRow.id))]

    def get_workload(self, workload_id: int) -> WorkloadInfo:
        with self.store.session() as session:
            row = self._get(session, WorkloadRow, workload_id, "workload")
            return WorkloadInfo.from_row(row, self._config_counts(session, [row.id]).get(row.id, {}),
                                         self._best(session, row))

    @staticmethod
    def _config_counts(session: Session, workload_ids: list[int]) -> dict[int, dict[str, int]]:
        if not workload_ids:
            return {}
        out: dict[int, dict[str, int]] = {}
        stmt = (select(ConfigRow.workload_id, ConfigRow.status, func.count())
                .where(ConfigRow.workload_id.in_(workload_ids)).group_by(ConfigRow.workload_id, ConfigRow.status))
        for wid, status, n in session.execute(stmt):
            out.setdefault(wid, {})[status] = n
        return out

    @staticmethod
    def _best(session: Session, workload: WorkloadRow) -> dict | None:
        objective = workload.objectives[0]
        order = ConfigRow.best_objective.desc() if objective["direction"] == "max" else ConfigRow.best_objective.asc()
        row = session.execute(select(ConfigRow.id, ConfigRow.best_objective).where(
            ConfigRow.workload_id == workload.id, ConfigRow.best_objective.is_not(None)).order_by(order).limit(1)).first()
        return None if row is None else {"config_id": row[0], "metric": objective["metric"], "value": row[1]}

    def set_workload_status(self, workload_id: int, status: str, *, actor: str | None = None) -> WorkloadInfo:
        """Pause (no new sub-epochs start) or resume a whole workload."""
        if status not in ("paused", "running"):
            raise ValidationError("status must be 'paused' or 'running'", field="status")
        with self.store.session() as session:
            row = self._get(session, WorkloadRow, workload_id, "workload")
            if row.status in ("done", "failed") and status == "paused":
                raise InvalidState(f"workload {workload_id} is {row.status}")
            before = row.status
            row.status = status
            self._event(session, actor or default_actor(), f"{'pause' if status == 'paused' else 'resume'}_workload",
                        "workload", workload_id, {"status": before}, {"status": status})
        return self.get_workload(workload_id)

    def update_workload(self, workload_id: int, *, max_epochs: int | None = None, max_configs: int | None = None,
                        search_space: dict | None = None, actor: str | None = None) -> WorkloadInfo:
        """Change the epoch or config budget, or the search space, of a workload while it runs.

        A new space applies to configs proposed from now on; running configs keep their hparams.
        """
        with self.store.session() as session:
            row = self._get(session, WorkloadRow, workload_id, "workload")
            before = {"max_epochs": row.max_epochs, "max_configs": row.max_configs, "search_space": row.search_space}
            if search_space is not None:
                space = SearchSpace.parse(search_space)
                _check_space_for_model(row.model_ref, space)
                objective = Objective(row.objectives[0]["metric"], row.objectives[0]["direction"])
                make_procedure(row.procedure, space, objective, seed=row.seed, budget=row.max_configs).capacity()
                row.search_space = space.to_dict()
            if max_epochs is not None:
                if max_epochs < 1:
                    raise ValidationError("max_epochs must be at least 1", field="max_epochs")
                row.max_epochs = max_epochs
                # Configs that finished under the old limit continue under a higher one.
                for config in session.scalars(select(ConfigRow).where(
                        ConfigRow.workload_id == workload_id, ConfigRow.status == "done",
                        ConfigRow.epochs_done < max_epochs)):
                    config.status = "queued"
            if max_configs is not None:
                if max_configs < 1:
                    raise ValidationError("max_configs must be at least 1", field="max_configs")
                row.max_configs = max_configs
            if row.status == "done" and (search_space, max_epochs, max_configs) != (None, None, None):
                row.status = "running"  # more to do under the new space or budget
            self._event(session, actor or default_actor(), "update_workload", "workload", workload_id, before,
                        {"max_epochs": row.max_epochs, "max_configs": row.max_configs,
                         "search_space": row.search_space})
        return self.get_workload(workload_id)

    # -- configs ------------------------------------------------------------------------------
    def list_configs(self, workload_id: int, *, status: str | None = None) -> list[ConfigInfo]:
        """All of a workload's configs with their latest metrics."""
        return self.page_configs(workload_id, status=status, limit=None)[0]

    def page_configs(self, workload_id: int, *, status: str | None = None, limit: int | None = 100,
                     offset: int = 0) -> tuple[list[ConfigInfo], int]:
        """One page of a workload's configs (by id) and the total count."""
        with self.store.session() as session:
            self._get(session, WorkloadRow, workload_id, "workload")
            where = [ConfigRow.workload_id == workload_id]
            if status:
                where.append(ConfigRow.status == status)
            total = session.scalar(select(func.count()).select_from(ConfigRow).where(*where))
            rows = list(session.scalars(select(ConfigRow).where(*where).order_by(ConfigRow.id)
                                        .limit(limit).offset(offset)))
            return [ConfigInfo.from_row(r) for r in rows], int(total)

    def get_config(self, config_id: int) -> ConfigInfo:
        """A config with every per-epoch metric, oldest first."""
        with self.store.session() as session:
            row = self._get(session, ConfigRow, config_id, "config")
            metrics = [{"epoch": m.epoch, "name": m.name, "value": m.value}
                       for m in session.scalars(select(MetricRow).where(MetricRow.config_id == config_id)
                                                .order_by(MetricRow.epoch, MetricRow.name))]
            return ConfigInfo.from_row(row, metrics)

    def workload_metrics(self, workload_id: int, name: str | None = None) -> dict[int, list[dict]]:
        """Every per-epoch metric of a workload's configs in one query: config id -> rows."""
        with self.store.session() as session:
            self._get(session, WorkloadRow, workload_id, "workload")
            stmt = (select(MetricRow).join(ConfigRow, ConfigRow.id == MetricRow.config_id)
                    .where(ConfigRow.workload_id == workload_id).order_by(MetricRow.config_id, MetricRow.epoch))
            if name:
                stmt = stmt.where(MetricRow.name == name)
            out: dict[int, list[dict]] = {}
            for m in session.scalars(stmt):
                out.setdefault(m.config_id, []).append({"epoch": m.epoch, "name": m.name, "value": m.value})
            return out

    def _check_hparams(self, workload: WorkloadRow, hparams: dict, field_prefix: str = "hparams") -> None:
        if not isinstance(hparams, dict) or not hparams and workload.procedure != "manual":
            raise ValidationError("hparams must be a non-empty mapping", field=field_prefix)
        for key, value in hparams.items():
            if not (isinstance(value, int | float | str | bool) or value is None):
                raise ValidationError(f"{field_prefix}.{key} must be a scalar", field=f"{field_prefix}.{key}")
        _check_model_hparams(workload.model_ref, list(hparams), hparams.items(), field_prefix)
        space = SearchSpace.parse(workload.search_space)
        for name in space.active_params(hparams):
            if name not in hparams:
                raise ValidationError(f"{field_prefix}.{name} is required (it is in the workload's space)",
                                      field=f"{field_prefix}.{name}")
        if hparams.get("weights_path"):
            data_mod.confine_path(hparams["weights_path"], self.settings.data_roots, field=f"{field_prefix}.weights_path")

    def add_config(self, workload_id: int, hparams: dict, *, priority: int = 0, actor: str | None = None) -> ConfigInfo:
        """A person's config: queued at once and told to the procedure like its own suggestions."""
        with self.store.session() as session:
            workload = self._get(session, WorkloadRow, workload_id, "workload")
            if workload.status == "failed":
                raise InvalidState(f"workload {workload_id} has failed: {workload.error}")
            self._check_hparams(workload, hparams)
            row = ConfigRow(workload_id=workload_id, hparams=dict(hparams), priority=int(priority), origin="user")
            session.add(row)
            if workload.status == "done":
                workload.status = "running"
            session.flush()
            self._event(session, actor or default_actor(), "add_config", "config", row.id,
                        after={"workload_id": workload_id, "hparams": hparams, "priority": priority})
            return ConfigInfo.from_row(row)

    def stop_config(self, config_id: int, *, expected_version: int | None = None,
                    actor: str | None = None) -> ConfigInfo:
        """Stop after the running sub-epoch (its work is committed, nothing more is scheduled)."""
        return self._transition(config_id, "stop", ("queued", "running"), "stopped", expected_version, actor)

    def resume_config(self, config_id: int, *, expected_version: int | None = None,
                      actor: str | None = None) -> ConfigInfo:
        """Continue a stopped (or failed) config from its last committed checkpoint."""
        with self.store.session() as session:
            row = self._get(session, ConfigRow, config_id, "config")
            workload = session.get(WorkloadRow, row.workload_id)
            if row.status in ("stopped", "failed", "done") and row.epochs_done >= workload.max_epochs:
                raise InvalidState(f"config {config_id} has trained all {workload.max_epochs} epochs; "
                                   "raise the workload's max_epochs to train it further")
        return self._transition(config_id, "resume", ("stopped", "failed"), "queued", expected_version, actor,
                                clear_error=True)

    def _transition(self, config_id: int, action: str, allowed: Iterable[str], target: str,
                    expected_version: int | None, actor: str | None, *, clear_error: bool = False) -> ConfigInfo:
        with self.store.session() as session:
            row = self._get(session, ConfigRow, config_id, "config")
            self._check_version(row, expected_version)
            if row.status not in allowed:
                raise InvalidState(f"cannot {action} config {config_id}: it is {row.status}")
            before = _config_snapshot(row)
            row.status = target
            if clear_error:
                row.error = None
            workload = session.get(WorkloadRow, row.workload_id)
            if target == "queued" and workload.status == "done":
                workload.status = "running"
            session.flush()
            self._event(session, actor or default_actor(), f"{action}_config", "config", config_id, before,
                        _config_snapshot(row))
            return ConfigInfo.from_row(row)

    def set_priority(self, config_id: int, priority: int, *, expected_version: int | None = None,
                     actor: str | None = None) -> ConfigInfo:
        """Higher priority configs get the next free worker first."""
        if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 1_000_000:
            raise ValidationError("priority must be an integer in [-1000000, 1000000]", field="priority")
        with self.store.session() as session:
            row = self._get(session, ConfigRow, config_id, "config")
            self._check_version(row, expected_version)
            before = _config_snapshot(row)
            row.priority = priority
            session.flush()
            self._event(session, actor or default_actor(), "set_priority", "config", config_id, before,
                        _config_snapshot(row))
            return ConfigInfo.from_row(row)

    @staticmethod
    def _latest_checkpoint(session: Session, config: ConfigRow) -> CheckpointRow | None:
        """The newest committed epoch-end checkpoint, else the newest committed one."""
        row = session.scalar(select(CheckpointRow).where(CheckpointRow.config_id == config.id,
                                                         CheckpointRow.epoch_end.is_(True))
                             .order_by(CheckpointRow.seq.desc()).limit(1))
        if row is None and config.current_checkpoint_id is not None:
            row = session.get(CheckpointRow, config.current_checkpoint_id)
        return row

    def clone_config(self, config_id: int, overrides: dict | None = None, *, priority: int | None = None,
                     expected_version: int | None = None, actor: str | None = None) -> ConfigInfo:
        """A new config starting from the source's trained weights, with hparam overrides (lr, batch_size, ...)."""
        overrides = dict(overrides or {})
        with self.store.session() as session:
            source = self._get(session, ConfigRow, config_id, "config")
            self._check_version(source, expected_version)
            workload = session.get(WorkloadRow, source.workload_id)
            hparams = {**source.hparams, **overrides}
            self._check_hparams(workload, hparams, field_prefix="overrides")
            checkpoint = self._latest_checkpoint(session, source)
            notes = None if checkpoint else f"config {config_id} had no checkpoint yet: the clone starts untrained"
            row = ConfigRow(workload_id=source.workload_id, hparams=hparams,
                            priority=source.priority if priority is None else int(priority), origin="clone",
                            cloned_from_config_id=source.id,
                            warm_start_checkpoint_id=checkpoint.id if checkpoint else None, notes=notes)
            session.add(row)
            if workload.status == "done":
                workload.status = "running"
            session.flush()
            self._event(session, actor or default_actor(), "clone_config", "config", row.id,
                        before={"source": config_id},
                        after={"overrides": overrides, "warm_start_checkpoint_id": row.warm_start_checkpoint_id})
            return ConfigInfo.from_row(row)

    def drill_down(self, config_id: int, space: dict, *, name: str | None = None, procedure: str = "grid",
                   max_configs: int | None = None, max_epochs: int | None = None,
                   actor: str | None = None) -> WorkloadInfo:
        """Launch a child workload on a refined space, warm-started from ``config_id``'s weights."""
        with self.store.session() as session:
            config = self._get(session, ConfigRow, config_id, "config")
            parent = session.get(WorkloadRow, config.workload_id)
            refined = SearchSpace.parse(space)
            refined.check_subset_of(SearchSpace.parse(parent.search_space))
            checkpoint = self._latest_checkpoint(session, config)
            if checkpoint is None:
                raise InvalidState(f"config {config_id} has no trained checkpoint yet; drill down after its first epoch")
            spec = {
                "name": name or f"{parent.name} / drill-down from config {config_id}",
                "description": f"Drill-down from workload {parent.id}, config {config_id}",
                "dataset": parent.dataset_id, "procedure": procedure, "space": refined.to_dict(),
                "objectives": parent.objectives, "max_epochs": max_epochs or parent.max_epochs,
                "max_configs": max_configs, "seed": parent.seed + 1,
            }
            if parent.script_id is not None:
                spec["script"] = parent.script_id
            else:
                spec["model"] = parent.model_ref
            parent_id, checkpoint_id = parent.id, checkpoint.id
        return self.launch_workload(spec, actor=actor, parent_workload_id=parent_id, parent_config_id=config_id,
                                    warm_start_checkpoint_id=checkpoint_id)

    # -- logs ---------------------------------------------------------------------------------
    def list_sub_epochs(self, workload_id: int | None = None, *, config_id: int | None = None,
                        limit: int = 10_000) -> list[SubEpochInfo]:
        """The schedule log, oldest first (plain column rows: the Gantt chart asks for thousands)."""
        columns = [getattr(SubEpochRow, f.name) for f in fields(SubEpochInfo)]
        with self.store.session() as session:
            stmt = select(*columns).order_by(SubEpochRow.id).limit(limit)
            if config_id is not None:
                stmt = stmt.where(SubEpochRow.config_id == config_id)
            if workload_id is not None:
                stmt = stmt.join(ConfigRow, ConfigRow.id == SubEpochRow.config_id).where(
                    ConfigRow.workload_id == workload_id)
            return [SubEpochInfo(*row) for row in session.execute(stmt)]

    def list_events(self, *, limit: int = 200, object_type: str | None = None,
                    object_id: int | None = None) -> list[EventInfo]:
        with self.store.session() as session:
            stmt = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
            if object_type:
                stmt = stmt.where(EventRow.object_type == object_type)
            if object_id is not None:
                stmt = stmt.where(EventRow.object_id == object_id)
            return [EventInfo.from_row(r) for r in session.scalars(stmt)]

    # -- exports (the TensorFlow work happens in hopper.edge_deploy, never here) --------------------------
    def export_source(self, config_id: int) -> ExportSource:
        """What an exporter needs to rebuild a config's trained model, from its newest epoch-end checkpoint."""
        with self.store.session() as session:
            config = self._get(session, ConfigRow, config_id, "config")
            checkpoint = session.scalar(select(CheckpointRow).where(
                CheckpointRow.config_id == config_id, CheckpointRow.epoch_end.is_(True))
                .order_by(CheckpointRow.seq.desc()).limit(1))
            if checkpoint is None:
                raise InvalidState(f"config {config_id} has no finished epoch to export yet")
            workload = session.get(WorkloadRow, config.workload_id)
            dataset = session.get(DatasetRow, workload.dataset_id)
            model_ref, entry_point = workload.model_ref, "build_model"
            if workload.script_id is not None:
                script = session.get(ScriptRow, workload.script_id)
                model_ref, entry_point = f"script:{script.path}", script.entry_point
            info = DatasetInfo.from_row(dataset)
            return ExportSource(config_id, workload.id, checkpoint.id, checkpoint.path, checkpoint.sha256, model_ref,
                                entry_point, dict(config.hparams), tuple(info.feature_shape), info.n_outputs,
                                info.task, dataset.validation_path)

    def record_export(self, source: ExportSource, *, quantization: str, path: str, sha256: str, size: int,
                      keras_accuracy: float | None, tflite_accuracy: float | None, seconds: float,
                      actor: str | None = None) -> dict:
        with self.store.session() as session:
            row = ExportRow(config_id=source.config_id, checkpoint_id=source.checkpoint_id, quantization=quantization,
                            path=path, sha256=sha256, bytes=size, keras_accuracy=keras_accuracy,
                            tflite_accuracy=tflite_accuracy, convert_seconds=seconds)
            session.add(row)
            session.flush()
            out = {"id": row.id, "config_id": row.config_id, "quantization": quantization, "path": path,
                   "sha256": sha256, "bytes": size, "keras_accuracy": keras_accuracy,
                   "tflite_accuracy": tflite_accuracy, "convert_seconds": seconds}
            self._event(session, actor or default_actor(), "export_config", "config", source.config_id, after=out)
            return out

    def list_exports(self, config_id: int) -> list[dict]:
        with self.store.session() as session:
            self._get(session, ConfigRow, config_id, "config")
            return [{"id": r.id, "config_id": r.config_id, "quantization": r.quantization, "path": r.path,
                     "sha256": r.sha256, "bytes": r.bytes, "keras_accuracy": r.keras_accuracy,
                     "tflite_accuracy": r.tflite_accuracy, "convert_seconds": r.convert_seconds}
                    for r in session.scalars(select(ExportRow).where(ExportRow.config_id == config_id)
                                             .order_by(ExportRow.id))]

    def tensorboard_dir(self, workload_id: int) -> Path:
        return self.settings.artifact_dir / "tensorboard" / f"workload-{workload_id}"


def _check_model_hparams(model_ref: str, names: list[str], values: Iterable[tuple[str, Any]], prefix: str) -> None:
    """A roster model must know every hyperparameter named and accept every value given for it."""
    if model_ref.startswith("script:"):
        return  # a script reads what it wants from its config
    check_hparams(model_ref, names, field_prefix=prefix)
    for key, value in values:
        check_hparam_value(model_ref, key, value, field=f"{prefix}.{key}")


def _check_space_for_model(model_ref: str, space: SearchSpace) -> None:
    _check_model_hparams(model_ref, space.names(), _space_values(space), "space")


def _space_values(space: SearchSpace) -> list[tuple[str, Any]]:
    """Every concrete value a space names (fixed values, choices, range bounds), with its parameter."""
    from hopper.engine.space import Choice, Fixed

    out: list[tuple[str, Any]] = []
    for name, p in space.params.items():
        if isinstance(p, Fixed):
            out.append((name, p.value))
        elif isinstance(p, Choice):
            out.extend((name, v) for v in p.values)
            for sub in p.when.values():
                out.extend(_space_values(sub))
        else:
            out.extend([(name, p.low), (name, p.high)])
    return out


def _possible_values(space: SearchSpace, name: str) -> list:
    from hopper.engine.space import Choice, Fixed

    p = space.params.get(name)
    if isinstance(p, Fixed):
        return [p.value]
    if isinstance(p, Choice):
        return list(p.values)
    return []


def open_services(settings: Settings, *, check_schema: bool = True) -> Services:
    """Services on the store that ``settings`` names."""
    return Services(Store(settings.database_url, check_schema=check_schema), settings)

