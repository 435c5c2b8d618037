"""Objectives added to a running workload, and their measurement on the epoch-end checkpoints already kept."""

from __future__ import annotations

from sqlalchemy import select, update

from hopper.engine.entities import CheckpointToEvaluate, DatasetInfo, EvaluationInfo, EvaluationWork
from hopper.engine.errors import Conflict, InvalidState
from hopper.engine.status import JobStatus, WorkloadStatus, check_transition
from hopper.engine.store._common import Repository, add_event, get_row
from hopper.engine.store.models import (
    CheckpointRow,
    ConfigRow,
    DatasetRow,
    EvaluationRequestRow,
    MetricRow,
    ScriptRow,
    WorkloadRow,
    utcnow,
)


def _missing(session, workload_id: int, metric: str) -> list[tuple[CheckpointRow, ConfigRow]]:  # noqa: ANN001
    """Every kept epoch-end checkpoint of the workload's configs whose epoch has no value of ``metric`` yet."""
    measured = {tuple(r) for r in session.execute(
        select(MetricRow.config_id, MetricRow.epoch).join(ConfigRow, ConfigRow.id == MetricRow.config_id)
        .where(ConfigRow.workload_id == workload_id, MetricRow.name == metric))}
    rows = session.execute(
        select(CheckpointRow, ConfigRow).join(ConfigRow, ConfigRow.id == CheckpointRow.config_id)
        .where(ConfigRow.workload_id == workload_id, CheckpointRow.epoch_end.is_(True))
        .order_by(CheckpointRow.config_id, CheckpointRow.epoch, CheckpointRow.seq))
    latest: dict[tuple[int, int], tuple[CheckpointRow, ConfigRow]] = {}
    for checkpoint, config in rows:
        # A re-run epoch (after a crash) may have left two epoch-end checkpoints: the newest is the config's.
        latest[(config.id, checkpoint.epoch)] = (checkpoint, config)
    return [pair for key, pair in latest.items() if key not in measured]


class EvaluationStore(Repository):
    def add_objective(self, workload_id: int, objective: dict, *, actor: str, measured: bool) -> EvaluationInfo:
        """Append an objective to a workload and, in the same transaction, queue its measurement on every kept
        epoch-end checkpoint that lacks it (none: the request is done at once).

        Args:
            measured: the metric needs no worker (Keras already reports it): only appended, nothing queued.

        Raises:
            Conflict: the workload already has this objective.
            InvalidState: the workload failed.
        """
        with self._session() as session:
            workload = get_row(session, WorkloadRow, workload_id, "workload")
            if workload.status == WorkloadStatus.FAILED:
                raise InvalidState(f"workload {workload_id} has failed: {workload.error}")
            metric = objective["metric"]
            if any(o["metric"] == metric for o in workload.objectives):
                raise Conflict(f"workload {workload_id} already has the objective {metric}", field="metric")
            workload.objectives = [*workload.objectives, dict(objective)]  # a new list: JSON columns track identity
            todo = [] if measured else _missing(session, workload_id, metric)
            row = EvaluationRequestRow(workload_id=workload_id, objective=dict(objective), actor=actor,
                                       status=JobStatus.QUEUED if todo else JobStatus.DONE, n_expected=len(todo),
                                       n_done=0, finished_at=None if todo else utcnow())
            session.add(row)
            session.flush()
            add_event(session, actor, "add_objective", "workload", workload_id, None,
                      {"objective": dict(objective), "evaluation_request": row.id, "checkpoints": len(todo)})
            return EvaluationInfo.from_row(row)

    def list(self, workload_id: int) -> list[EvaluationInfo]:
        """A workload's evaluation requests, oldest first."""
        with self._session() as session:
            get_row(session, WorkloadRow, workload_id, "workload")
            return [EvaluationInfo.from_row(r) for r in session.scalars(
                select(EvaluationRequestRow).where(EvaluationRequestRow.workload_id == workload_id)
                .order_by(EvaluationRequestRow.id))]

    def get(self, request_id: int) -> EvaluationInfo:
        with self._session() as session:
            return EvaluationInfo.from_row(get_row(session, EvaluationRequestRow, request_id, "evaluation_request"))

    def claim(self, request_id: int | None = None) -> EvaluationInfo | None:
        """Atomically take the oldest queued request, or the given one if it is queued (compare-and-set: two
        workers never share one)."""
        for _ in range(20):
            with self._session() as session:
                stmt = select(EvaluationRequestRow.id).where(EvaluationRequestRow.status == JobStatus.QUEUED)
                if request_id is not None:
                    stmt = stmt.where(EvaluationRequestRow.id == request_id)
                candidate = session.scalar(stmt.order_by(EvaluationRequestRow.id).limit(1))
                if candidate is None:
                    return None
                won = session.execute(
                    update(EvaluationRequestRow).where(EvaluationRequestRow.id == candidate,
                                                       EvaluationRequestRow.status == JobStatus.QUEUED)
                    .values(status=JobStatus.RUNNING, claimed_at=utcnow())
                    .execution_options(synchronize_session=False)).rowcount
                if won == 1:
                    return EvaluationInfo.from_row(session.get(EvaluationRequestRow, candidate,
                                                               populate_existing=True))
        return None

    def work(self, request_id: int) -> EvaluationWork:
        """The checkpoints still lacking the request's metric, and how to rebuild their models."""
        with self._session() as session:
            request = get_row(session, EvaluationRequestRow, request_id, "evaluation_request")
            workload = session.get(WorkloadRow, request.workload_id)
            model_ref, entry_point = workload.model_ref, "build_model"
            if workload.script_id is not None:
                script = session.get(ScriptRow, workload.script_id)
                model_ref, entry_point = f"script:{script.path}", script.entry_point
            dataset = DatasetInfo.from_row(session.get(DatasetRow, workload.dataset_id))
            todo = _missing(session, workload.id, request.objective["metric"])
            return EvaluationWork(request.id, dict(request.objective), model_ref, entry_point,
                                  tuple(dataset.feature_shape), dataset.n_outputs, dataset.task,
                                  session.get(DatasetRow, workload.dataset_id).validation_path,
                                  tuple(CheckpointToEvaluate(c.id, k.epoch, k.path, k.sha256, dict(c.hparams))
                                        for k, c in todo))

    def record(self, request_id: int, config_id: int, epoch: int, value: float) -> EvaluationInfo:
        """One checkpoint measured: its metric row (kept if the epoch got one meanwhile) and, for the config's latest
        epoch, its latest metrics, so tables and rankings show it at once."""
        with self._session() as session:
            request = get_row(session, EvaluationRequestRow, request_id, "evaluation_request")
            metric = request.objective["metric"]
            exists = session.scalar(select(MetricRow.id).where(MetricRow.config_id == config_id,
                                                               MetricRow.epoch == epoch, MetricRow.name == metric))
            if exists is None:
                session.add(MetricRow(config_id=config_id, epoch=epoch, name=metric, value=float(value)))
                config = get_row(session, ConfigRow, config_id, "config")
                latest = dict(config.latest_metrics or {})
                if latest.get("epoch") == epoch and metric not in latest:
                    # Set without bumping the config's version: a person's pending action must not conflict.
                    session.execute(update(ConfigRow).where(ConfigRow.id == config_id)
                                    .values(latest_metrics={**latest, metric: float(value)})
                                    .execution_options(synchronize_session=False))
            request.n_done += 1
            session.flush()
            return EvaluationInfo.from_row(request)

    def finish(self, request_id: int, *, error: str | None = None) -> EvaluationInfo:
        with self._session() as session:
            row = get_row(session, EvaluationRequestRow, request_id, "evaluation_request")
            target = JobStatus.FAILED if error else JobStatus.DONE
            check_transition(row.status, target, what=f"evaluation request {request_id}")
            row.status, row.finished_at, row.error = target, utcnow(), (error or None) and error[-4000:]
            session.flush()
            return EvaluationInfo.from_row(row)
