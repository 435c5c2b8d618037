"""Configs: adding, the status transitions people cause, priorities, metrics and checkpoints to read."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from hopper.engine.entities import AppliedDecision, CheckpointInfo, ConfigInfo, DatasetInfo, ExportSource
from hopper.engine.errors import Conflict, InvalidState
from hopper.engine.status import ConfigStatus, WorkloadStatus, can_transition, check_transition
from hopper.engine.store._common import Repository, add_event, get_row
from hopper.engine.store.models import (
    CheckpointRow,
    ConfigRow,
    DatasetRow,
    DecisionRow,
    MetricRow,
    ScriptRow,
    WorkloadRow,
)
from hopper.engine.store.workloads import reopen

_STALE_RETRIES = 5
#: What ``ConfigInfo.from_row`` reads of a config row.
_CONFIG_INFO_COLUMNS = (ConfigRow.id, ConfigRow.workload_id, ConfigRow.hparams, ConfigRow.status, ConfigRow.priority,
                        ConfigRow.epochs_done, ConfigRow.origin, ConfigRow.cloned_from_config_id,
                        ConfigRow.warm_start_checkpoint_id, ConfigRow.error, ConfigRow.notes, ConfigRow.version,
                        ConfigRow.created_at, ConfigRow.updated_at, ConfigRow.latest_metrics)


def snapshot(row: ConfigRow) -> dict:
    """What the audit log keeps of a config before and after a change."""
    return {"status": row.status, "priority": row.priority, "epochs_done": row.epochs_done, "version": row.version}


def check_version(row: ConfigRow, expected_version: int | None) -> None:
    if expected_version is not None and row.version != expected_version:
        raise Conflict(
            f"config {row.id} is at version {row.version}, not {expected_version}: it changed since you "
            "loaded it; reload and try again",
            field="version",
        )


def _unasserted_retry(write: Callable[[], ConfigInfo], expected_version: int | None) -> ConfigInfo:
    """Run a read-modify-write of a config; when the caller asserted no version, re-run it if the scheduler
    committed the same row in between (the optimistic lock fired), as the person's intent still applies.

    With an ``expected_version`` the conflict is the caller's answer: they acted on a state that is gone.
    """
    for attempt in range(_STALE_RETRIES):
        try:
            return write()
        except Conflict as exc:
            if expected_version is not None or not isinstance(exc.__cause__, StaleDataError) \
                    or attempt == _STALE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _latest_checkpoint(session, config: ConfigRow) -> CheckpointRow | None:  # noqa: ANN001
    """The newest committed epoch-end checkpoint, else the newest committed one."""
    row = session.scalar(select(CheckpointRow).where(CheckpointRow.config_id == config.id,
                                                     CheckpointRow.epoch_end.is_(True))
                         .order_by(CheckpointRow.seq.desc()).limit(1))
    if row is None and config.current_checkpoint_id is not None:
        row = session.get(CheckpointRow, config.current_checkpoint_id)
    return row


def _claim_decision(session, decision: dict | None) -> DecisionRow | None:  # noqa: ANN001
    """Record a procedure's decision in the caller's transaction; None when its key was applied before (the
    unique key turns a concurrent second application into a ``Conflict`` at commit)."""
    if decision is None:
        return None
    applied = session.scalar(select(DecisionRow.id).where(DecisionRow.workload_id == decision["workload_id"],
                                                          DecisionRow.key == decision["key"]))
    if applied is not None:
        return None
    row = DecisionRow(**decision)
    session.add(row)
    return row


def _decision_note(decision: dict | None) -> dict:
    """What the audit log keeps of the decision behind a change."""
    if decision is None:
        return {}
    return {"decision": decision["key"], "kind": decision["kind"], "reason": decision["reason"]}


class ConfigStore(Repository):
    def add(self, workload_id: int, hparams: dict, *, priority: int, origin: str, actor: str, action: str,
            cloned_from: int | None = None, source_version: int | None = None,
            warm_start_checkpoint_id: int | None = None, notes: str | None = None,
            event_before: dict | None = None, event_after: dict | None = None, epochs_done: int = 0,
            replaces: int | None = None, decision: dict | None = None) -> ConfigInfo | None:
        """A new queued config (a person's, or a clone of ``cloned_from`` still at ``source_version``).

        A PBT exploit (``decision`` set) starts at ``epochs_done`` (its source's), stops the config it
        ``replaces`` and records the decision, all in this transaction; it returns None when the decision's
        key was applied before.
        """
        with self._session() as session:
            workload = get_row(session, WorkloadRow, workload_id, "workload", lock=True)  # see reopen
            if workload.status == WorkloadStatus.FAILED:
                raise InvalidState(f"workload {workload_id} has failed: {workload.error}")
            if cloned_from is not None:
                check_version(get_row(session, ConfigRow, cloned_from, "config"), source_version)
            record = _claim_decision(session, decision)
            if decision is not None and record is None:
                return None
            row = ConfigRow(workload_id=workload_id, hparams=dict(hparams), priority=int(priority), origin=origin,
                            status=ConfigStatus.QUEUED, cloned_from_config_id=cloned_from,
                            warm_start_checkpoint_id=warm_start_checkpoint_id, notes=notes, epochs_done=epochs_done)
            session.add(row)
            reopen(workload)
            session.flush()
            add_event(session, actor, action, "config", row.id, event_before,
                      {**(event_after or {}), **_decision_note(decision)})
            if record is not None:
                record.result_config_id = row.id
            if replaces is not None:
                target = get_row(session, ConfigRow, replaces, "config")
                if can_transition(target.status, ConfigStatus.STOPPED):
                    before = snapshot(target)
                    target.status = ConfigStatus.STOPPED
                    session.flush()
                    add_event(session, actor, "stop_config", "config", target.id, before,
                              {**snapshot(target), **_decision_note(decision), "replaced_by": row.id})
            return ConfigInfo.from_row(row)

    def record_decision(self, decision: dict, *, actor: str) -> bool:
        """Record a decision that changes no status (a config continuing past its rung); False if applied before."""
        with self._session() as session:
            record = _claim_decision(session, decision)
            if record is None:
                return False
            add_event(session, actor, f"{decision['kind']}_config", "config", decision["config_id"], None,
                      _decision_note(decision))
            return True

    def applied_decision_keys(self, workload_id: int) -> set[str]:
        """Keys of every decision applied to a workload (its procedure's repeats are filtered against them)."""
        with self._session() as session:
            return set(session.scalars(select(DecisionRow.key).where(DecisionRow.workload_id == workload_id)))

    def decisions(self, workload_id: int) -> list[AppliedDecision]:
        """Every decision applied to a workload, oldest first."""
        with self._session() as session:
            get_row(session, WorkloadRow, workload_id, "workload")
            return [AppliedDecision.from_row(r) for r in session.scalars(
                select(DecisionRow).where(DecisionRow.workload_id == workload_id).order_by(DecisionRow.id))]

    def transition(self, config_id: int, target: ConfigStatus, *, action: str, actor: str,
                   expected_version: int | None = None, clear_error: bool = False,
                   decision: dict | None = None) -> ConfigInfo | None:
        """Move a config to ``target`` if the transition table allows it from where it is (audited).

        With a procedure's ``decision`` the decision is recorded in the same transaction, and the call is a
        no-op returning None when its key was applied before.
        """
        return _unasserted_retry(lambda: self._transition(config_id, target, action=action, actor=actor,
                                                          expected_version=expected_version,
                                                          clear_error=clear_error, decision=decision),
                                 expected_version)

    def _transition(self, config_id: int, target: ConfigStatus, *, action: str, actor: str,
                    expected_version: int | None, clear_error: bool, decision: dict | None) -> ConfigInfo | None:
        with self._session() as session:
            row = get_row(session, ConfigRow, config_id, "config")
            # queueing may reopen the workload: its lock before any config change (see reopen)
            workload = (get_row(session, WorkloadRow, row.workload_id, "workload", lock=True)
                        if target == ConfigStatus.QUEUED else None)
            check_version(row, expected_version)
            check_transition(row.status, target, what=f"config {config_id}", action=action)
            if decision is not None and _claim_decision(session, decision) is None:
                return None
            before = snapshot(row)
            row.status = target
            if clear_error:
                row.error = None
            if target == ConfigStatus.QUEUED:
                reopen(workload)
            session.flush()
            add_event(session, actor, f"{action}_config", "config", config_id, before,
                      {**snapshot(row), **_decision_note(decision)})
            return ConfigInfo.from_row(row)

    def set_priority(self, config_id: int, priority: int, *, actor: str,
                     expected_version: int | None = None) -> ConfigInfo:
        """Set a config's priority (audited)."""
        return _unasserted_retry(lambda: self._set_priority(config_id, priority, actor=actor,
                                                            expected_version=expected_version), expected_version)

    def _set_priority(self, config_id: int, priority: int, *, actor: str,
                      expected_version: int | None) -> ConfigInfo:
        with self._session() as session:
            row = get_row(session, ConfigRow, config_id, "config")
            check_version(row, expected_version)
            before = snapshot(row)
            row.priority = priority
            session.flush()
            add_event(session, actor, "set_priority", "config", config_id, before, snapshot(row))
            return ConfigInfo.from_row(row)

    def get(self, config_id: int, *, with_metrics: bool = True) -> ConfigInfo:
        """A config, with every per-epoch metric (oldest first) unless ``with_metrics`` is False."""
        with self._session() as session:
            row = get_row(session, ConfigRow, config_id, "config")
            metrics = None
            if with_metrics:
                metrics = [{"epoch": m.epoch, "name": m.name, "value": m.value}
                           for m in session.scalars(select(MetricRow).where(MetricRow.config_id == config_id)
                                                    .order_by(MetricRow.epoch, MetricRow.name))]
            return ConfigInfo.from_row(row, metrics)

    def page(self, workload_id: int, *, status: str | None = None, limit: int | None = 100,
             offset: int = 0) -> tuple[list[ConfigInfo], int]:
        """One page of a workload's configs (by id) and the total count."""
        with self._session() as session:
            get_row(session, WorkloadRow, workload_id, "workload")
            where = [ConfigRow.workload_id == workload_id]
            if status:
                where.append(ConfigRow.status == status)
            total = session.scalar(select(func.count()).select_from(ConfigRow).where(*where))
            # Plain column rows, not ORM objects: the API's config pages read up to 1 000 at a time, and loading
            # them into the session (identity map, state tracking) was most of such a read.
            rows = session.execute(select(*_CONFIG_INFO_COLUMNS).where(*where).order_by(ConfigRow.id)
                                   .limit(limit).offset(offset))
            return [ConfigInfo.from_row(r) for r in rows], int(total)

    def workload_metrics(self, workload_id: int, name: str | None = None) -> dict[int, list[dict]]:
        """Every per-epoch metric of a workload's configs in one query: config id -> rows."""
        with self._session() as session:
            get_row(session, WorkloadRow, workload_id, "workload")
            stmt = (select(MetricRow).join(ConfigRow, ConfigRow.id == MetricRow.config_id)
                    .where(ConfigRow.workload_id == workload_id).order_by(MetricRow.config_id, MetricRow.epoch))
            if name:
                stmt = stmt.where(MetricRow.name == name)
            out: dict[int, list[dict]] = {}
            for m in session.scalars(stmt):
                out.setdefault(m.config_id, []).append({"epoch": m.epoch, "name": m.name, "value": m.value})
            return out

    def latest_checkpoint(self, config_id: int) -> CheckpointInfo | None:
        """The newest committed epoch-end checkpoint, else the newest committed one (what clones start from)."""
        with self._session() as session:
            row = _latest_checkpoint(session, get_row(session, ConfigRow, config_id, "config"))
            return None if row is None else CheckpointInfo.from_row(row)

    def export_source(self, config_id: int) -> ExportSource:
        """What an exporter needs to rebuild a config's trained model, from its newest epoch-end checkpoint."""
        with self._session() as session:
            config = get_row(session, ConfigRow, config_id, "config")
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
                                info.task, dataset.validation_path,
                                None if workload.entry_options is None else dict(workload.entry_options))
