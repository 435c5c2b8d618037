"""Workloads: creation with their first proposals, listing with counts and the best config, status changes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hopper.engine.entities import ConfigObservation, Proposal, WorkloadInfo, WorkloadProgress, WorkloadUsage
from hopper.engine.errors import InvalidState
from hopper.engine.status import (
    FINISHED_CONFIG,
    RUNNABLE_CONFIG,
    ConfigStatus,
    SubEpochOutcome,
    WorkloadStatus,
    check_transition,
)
from hopper.engine.store._common import Repository, add_event, get_row, locked_row
from hopper.engine.store.models import (
    ConfigRow,
    DatasetRow,
    EventRow,
    MetricRow,
    ScriptRow,
    SubEpochRow,
    WorkloadRow,
    utcnow,
)

#: Given the workload and every config it has, the configs to add now.
Proposer = Callable[[WorkloadInfo, list[ConfigObservation]], Proposal]
T = TypeVar("T")


def _counts(session, workload_ids: list[int]) -> dict[int, dict[str, int]]:  # noqa: ANN001
    if not workload_ids:
        return {}
    out: dict[int, dict[str, int]] = {}
    stmt = (select(ConfigRow.workload_id, ConfigRow.status, func.count())
            .where(ConfigRow.workload_id.in_(workload_ids)).group_by(ConfigRow.workload_id, ConfigRow.status))
    for wid, status, n in session.execute(stmt):
        out.setdefault(wid, {})[status] = n
    return out


def _best(session, workload: WorkloadRow) -> dict | None:  # noqa: ANN001
    objective = workload.objectives[0]
    order = ConfigRow.best_objective.desc() if objective["direction"] == "max" else ConfigRow.best_objective.asc()
    row = session.execute(select(ConfigRow.id, ConfigRow.best_objective).where(
        ConfigRow.workload_id == workload.id, ConfigRow.best_objective.is_not(None)).order_by(order).limit(1)).first()
    return None if row is None else {"config_id": row[0], "metric": objective["metric"], "value": row[1]}


def _curves(session, workload_id: int, metric: str) -> dict[int, tuple]:  # noqa: ANN001
    """config id -> the metric after each committed epoch (None for an epoch that did not measure it)."""
    values: dict[int, dict[int, float]] = {}
    for config_id, epoch, value in session.execute(
            select(MetricRow.config_id, MetricRow.epoch, MetricRow.value)
            .join(ConfigRow, ConfigRow.id == MetricRow.config_id)
            .where(ConfigRow.workload_id == workload_id, MetricRow.name == metric)):
        values.setdefault(config_id, {})[epoch] = value
    return values


def _stopped_by_people(session, stopped_ids: list[int]) -> set[int]:  # noqa: ANN001
    """Of the given stopped configs, those whose latest stop was not a procedure's decision."""
    latest: dict[int, dict | None] = {}
    if not stopped_ids:
        return set()
    for object_id, after in session.execute(
            select(EventRow.object_id, EventRow.after).where(
                EventRow.object_type == "config", EventRow.action == "stop_config",
                EventRow.object_id.in_(stopped_ids)).order_by(EventRow.id)):
        latest[object_id] = after
    return {cid for cid in stopped_ids if "decision" not in (latest.get(cid) or {})}


def observations(session, workload_id: int, *, curves: bool = True) -> list[ConfigObservation]:  # noqa: ANN001
    """Every config of a workload as its procedure is told it: status, latest metrics and (unless ``curves`` is
    False: proposing needs only the latest value) the objective's curve and who stopped it."""
    workload = session.get(WorkloadRow, workload_id)
    rows = list(session.scalars(select(ConfigRow).where(ConfigRow.workload_id == workload_id).order_by(ConfigRow.id)))
    if not curves:
        return [ConfigObservation(c.id, dict(c.hparams), c.origin, c.status, dict(c.latest_metrics or {}),
                                  epochs_done=c.epochs_done, parent_id=c.cloned_from_config_id, priority=c.priority)
                for c in rows]
    curves = _curves(session, workload_id, workload.objectives[0]["metric"])
    by_people = _stopped_by_people(session, [c.id for c in rows if c.status == ConfigStatus.STOPPED])
    out = []
    for c in rows:
        per_epoch = curves.get(c.id, {})
        # None before a PBT clone's first epoch: it started at its source's epoch count, from its weights.
        curve = tuple(per_epoch.get(e) for e in range(c.epochs_done))
        out.append(ConfigObservation(c.id, dict(c.hparams), c.origin, c.status, dict(c.latest_metrics or {}), curve,
                                     c.epochs_done, c.cloned_from_config_id, c.id in by_people, c.priority))
    return out


def _add_proposals(session, workload: WorkloadRow, proposal: Proposal) -> None:  # noqa: ANN001
    for hparams in proposal.hparams:
        session.add(ConfigRow(workload_id=workload.id, hparams=hparams, origin="procedure",
                              status=ConfigStatus.QUEUED, warm_start_checkpoint_id=workload.warm_start_checkpoint_id))
    session.flush()


def _all_failed_error(session, workload_id: int) -> str | None:  # noqa: ANN001
    """When every config of a workload failed: the error they share (or the first one), else None."""
    rows = list(session.execute(select(ConfigRow.id, ConfigRow.status, ConfigRow.error)
                                .where(ConfigRow.workload_id == workload_id).order_by(ConfigRow.id)))
    if not rows or any(status != ConfigStatus.FAILED for _, status, _ in rows):
        return None
    heads = [(error or "no error recorded").strip().splitlines()[0] if (error or "").strip() else "no error recorded"
             for _, _, error in rows]
    first = next((error for _, _, error in rows if error), "no error recorded")
    if len(set(heads)) == 1:
        return f"all {len(rows)} configs failed with the same error: {first}"[:20_000]
    return f"all {len(rows)} configs failed; config {rows[0][0]}'s error: {first}"[:20_000]


def reopen(workload: WorkloadRow) -> None:
    """A finished workload that got new work (a config added, resumed, a budget raised) runs again.

    The caller holds the workload's row lock (``get_row(..., lock=True)``), taken before it changes any config:
    ``finish_idle`` takes the same lock and then looks for runnable configs once more, so a workload is never
    marked done by a finisher that could not yet see a config added or queued beside it (the new config would wait
    forever in a done workload: CI saw a clone do that on PostgreSQL). Workload row first, then configs: one lock order, no deadlock.
    """
    if workload.status == WorkloadStatus.DONE:
        workload.status = WorkloadStatus.RUNNING


class WorkloadStore(Repository):
    def create(self, *, actor: str, spec_record: dict, propose: Proposer, **fields: object) -> WorkloadInfo:
        """Insert a workload and, in the same transaction, the configs its procedure proposes first, so they
        are visible (and steerable) before the scheduler runs and no second proposer can race this one."""
        with self._session() as session:
            row = WorkloadRow(status=WorkloadStatus.RUNNING, owner=actor, **fields)
            session.add(row)
            session.flush()
            add_event(session, actor, "launch_workload", "workload", row.id, after=spec_record)
            _add_proposals(session, row, propose(WorkloadInfo.from_row(row), []))
            return WorkloadInfo.from_row(row)

    def list(self) -> list[WorkloadInfo]:
        with self._session() as session:
            rows = list(session.scalars(select(WorkloadRow).order_by(WorkloadRow.id)))
            counts = _counts(session, [r.id for r in rows])
            return [WorkloadInfo.from_row(r, counts.get(r.id, {}), _best(session, r)) for r in rows]

    def progress(self, workload_ids: Iterable[int] | None = None) -> list[WorkloadProgress]:
        """Epochs trained and planned, and the configs on a worker now, of some workloads (all: None), by id."""
        with self._session() as session:
            query = select(WorkloadRow).order_by(WorkloadRow.id)
            if workload_ids is not None:
                query = query.where(WorkloadRow.id.in_(list(workload_ids)))
            workloads = list(session.scalars(query))
            ids = [w.id for w in workloads]
            configs = session.execute(select(ConfigRow.workload_id, ConfigRow.id, ConfigRow.status,
                                             ConfigRow.epochs_done).where(ConfigRow.workload_id.in_(ids))).all()
            on_workers = set(session.scalars(
                select(SubEpochRow.config_id).join(ConfigRow, ConfigRow.id == SubEpochRow.config_id)
                .where(ConfigRow.workload_id.in_(ids), SubEpochRow.outcome == SubEpochOutcome.RUNNING)))
        out = []
        for w in workloads:
            mine = [c for c in configs if c.workload_id == w.id]
            done = sum(c.epochs_done for c in mine)
            # a config that will not train again counts what it trained; the others, every epoch they may train
            planned = sum(c.epochs_done if ConfigStatus(c.status) in FINISHED_CONFIG else w.max_epochs for c in mine)
            if w.status in (WorkloadStatus.RUNNING, WorkloadStatus.PAUSED) and w.max_configs:
                planned += max(0, w.max_configs - len(mine)) * w.max_epochs
            out.append(WorkloadProgress(w.id, done, max(planned, done),
                                        sorted(c.id for c in mine if c.id in on_workers)))
        return out

    def get(self, workload_id: int) -> WorkloadInfo:
        with self._session() as session:
            row = get_row(session, WorkloadRow, workload_id, "workload")
            return WorkloadInfo.from_row(row, _counts(session, [row.id]).get(row.id, {}), _best(session, row))

    def children(self, workload_id: int) -> list[tuple[int, str]]:
        """(id, name) of the drill-downs launched from a workload: one indexed read, for live pages."""
        with self._session() as session:
            return [tuple(r) for r in session.execute(
                select(WorkloadRow.id, WorkloadRow.name).where(WorkloadRow.parent_workload_id == workload_id)
                .order_by(WorkloadRow.id))]

    def set_status(self, workload_id: int, target: WorkloadStatus, *, action: str, actor: str) -> None:
        """Pause or resume a whole workload (the transition table decides what is allowed)."""
        with self._session() as session:
            row = get_row(session, WorkloadRow, workload_id, "workload")
            before = row.status
            check_transition(row.status, target, what=f"workload {workload_id}", action=action.split("_")[0])
            row.status = target
            add_event(session, actor, action, "workload", workload_id, {"status": before}, {"status": target.value})

    def set_weight(self, workload_id: int, weight: float, *, actor: str) -> None:
        """Change a workload's fair-share weight; the scheduler uses it from its next decision."""
        with self._session() as session:
            row = get_row(session, WorkloadRow, workload_id, "workload")
            if row.status in (WorkloadStatus.FAILED, WorkloadStatus.BUDGET_SPENT):
                raise InvalidState(f"cannot change the weight of workload {workload_id}: it is {row.status}")
            before = row.weight
            row.weight = float(weight)
            add_event(session, actor, "set_workload_weight", "workload", workload_id, {"weight": before},
                      {"weight": row.weight})

    def spend_budget(self, workload_id: int, reason: str, *, actor: str = "scheduler") -> bool:
        """Mark a running workload ``budget_spent`` (nothing more is dispatched for it; running sub-epochs
        still commit); False when it is no longer running."""
        with self._session() as session:
            row = get_row(session, WorkloadRow, workload_id, "workload")
            if row.status != WorkloadStatus.RUNNING:
                return False
            check_transition(row.status, WorkloadStatus.BUDGET_SPENT, what=f"workload {workload_id}")
            row.status = WorkloadStatus.BUDGET_SPENT
            row.error = reason[:20_000]
            add_event(session, actor, "budget_spent", "workload", workload_id, {"status": WorkloadStatus.RUNNING.value},
                      {"status": row.status, "reason": reason})
            return True

    def sharing(self) -> list[tuple[int, float, str, dict | None, datetime]]:
        """(id, weight, owner, budget, created_at) of every running workload: what fair share and budgets need."""
        with self._session() as session:
            return [tuple(r) for r in session.execute(
                select(WorkloadRow.id, WorkloadRow.weight, WorkloadRow.owner, WorkloadRow.budget,
                       WorkloadRow.created_at).where(WorkloadRow.status == WorkloadStatus.RUNNING)
                .order_by(WorkloadRow.id))]

    def usage(self, workload_id: int) -> WorkloadUsage:
        """What a workload used of the workers (from the schedule log) and how many sub-epochs it has left."""
        with self._session() as session:
            row = get_row(session, WorkloadRow, workload_id, "workload")
            partitions = session.scalar(select(DatasetRow.partition_count).where(DatasetRow.id == row.dataset_id)) or 1
            now = utcnow()
            committed, done, running, running_seconds = 0.0, 0, 0, 0.0
            visited_now: dict[int, int] = {}
            configs = {c.id: c for c in session.scalars(select(ConfigRow).where(ConfigRow.workload_id == workload_id))}
            for config_id, epoch, outcome, started, finished in session.execute(
                select(SubEpochRow.config_id, SubEpochRow.epoch, SubEpochRow.outcome, SubEpochRow.started_at,
                       SubEpochRow.finished_at).join(ConfigRow, ConfigRow.id == SubEpochRow.config_id)
                .where(ConfigRow.workload_id == workload_id,
                       SubEpochRow.outcome.in_([SubEpochOutcome.OK, SubEpochOutcome.RUNNING]))
            ):
                if outcome == SubEpochOutcome.RUNNING:
                    running += 1
                    running_seconds += max(0.0, (now - started).total_seconds()) if started else 0.0
                    continue
                done += 1
                committed += max(0.0, (finished - started).total_seconds()) if started and finished else 0.0
                if epoch == configs[config_id].epochs_done:
                    visited_now[config_id] = visited_now.get(config_id, 0) + 1
            left = sum(max(0, (row.max_epochs - c.epochs_done) * partitions - visited_now.get(c.id, 0))
                       for c in configs.values() if c.status in RUNNABLE_CONFIG)
            if row.max_configs is not None:
                left += max(0, row.max_configs - len(configs)) * row.max_epochs * partitions
            return WorkloadUsage(committed + running_seconds, done, committed, running, left)

    def update_budget(self, workload_id: int, *, actor: str, max_epochs: int | None = None,
                      max_configs: int | None = None, search_space: dict | None = None) -> None:
        """Change a running workload's budget or space; configs done under a lower max_epochs are queued again."""
        with self._session() as session:
            row = get_row(session, WorkloadRow, workload_id, "workload", lock=True)  # see reopen
            if row.status == WorkloadStatus.FAILED:
                raise InvalidState(f"workload {workload_id} has failed: {row.error}")
            before = {"max_epochs": row.max_epochs, "max_configs": row.max_configs, "search_space": row.search_space}
            if search_space is not None:
                row.search_space = search_space
            if max_epochs is not None:
                row.max_epochs = max_epochs
                for config in session.scalars(select(ConfigRow).where(
                        ConfigRow.workload_id == workload_id, ConfigRow.status == ConfigStatus.DONE,
                        ConfigRow.epochs_done < max_epochs)):
                    check_transition(config.status, ConfigStatus.QUEUED, what=f"config {config.id}")
                    config.status = ConfigStatus.QUEUED
            if max_configs is not None:
                row.max_configs = max_configs
            if (search_space, max_epochs, max_configs) != (None, None, None):
                reopen(row)
            add_event(session, actor, "update_workload", "workload", workload_id, before,
                      {"max_epochs": row.max_epochs, "max_configs": row.max_configs, "search_space": row.search_space})

    # -- for the scheduler ----------------------------------------------------------------------------------
    def running(self) -> list[tuple[int, datetime]]:
        """(id, updated_at) of every running workload; updated_at changes whenever its space or budget does."""
        with self._session() as session:
            return [tuple(r) for r in session.execute(
                select(WorkloadRow.id, WorkloadRow.updated_at).where(WorkloadRow.status == WorkloadStatus.RUNNING)
                .order_by(WorkloadRow.id))]

    def plan_settings(self, workload_ids: Iterable[int]) -> dict[int, tuple[str, int, bool, dict | None]]:
        """Workload id -> (the plan it asked for, its dataset id, whether it trains with DP-SGD, the scheduler's
        last choice or None): what the scheduler chooses an execution plan from."""
        ids = list(workload_ids)
        if not ids:
            return {}
        with self._session() as session:
            return {wid: (plan or "auto", dataset_id, private is not None, None if choice is None else dict(choice))
                    for wid, plan, dataset_id, private, choice in session.execute(
                        select(WorkloadRow.id, WorkloadRow.plan, WorkloadRow.dataset_id, WorkloadRow.privacy,
                               WorkloadRow.plan_choice).where(WorkloadRow.id.in_(ids)))}

    def record_plan(self, workload_id: int, choice: dict, *, actor: str = "scheduler") -> None:
        """Store the scheduler's execution-plan choice for a workload (shown with it) and audit the change."""
        with self._session() as session:
            row = get_row(session, WorkloadRow, workload_id, "workload")
            before = None if row.plan_choice is None else dict(row.plan_choice)
            row.plan_choice = dict(choice)
            add_event(session, actor, "choose_plan", "workload", workload_id, before, dict(choice))

    def top_up(self, workload_id: int, propose: Proposer) -> bool:
        """Add what the workload's procedure proposes now; True when it will propose nothing more.

        The procedure is rebuilt from every config in the same transaction that adds its proposals.
        """
        with self._session() as session:
            row = get_row(session, WorkloadRow, workload_id, "workload")
            if row.status != WorkloadStatus.RUNNING:
                return False
            proposal = propose(WorkloadInfo.from_row(row), observations(session, workload_id, curves=False))
            _add_proposals(session, row, proposal)
            return proposal.exhausted

    def decide(self, workload_id: int, decider: Callable[[WorkloadInfo, list[ConfigObservation]], T]) -> T | None:
        """Run ``decider`` (the procedure, rebuilt) over the workload and its configs read in one transaction;
        None when the workload is not running."""
        with self._session() as session:
            row = get_row(session, WorkloadRow, workload_id, "workload")
            if row.status != WorkloadStatus.RUNNING:
                return None
            return decider(WorkloadInfo.from_row(row), observations(session, workload_id))

    def grow_space(self, config_id: int, additions: dict) -> list[str]:
        """Add to the space of the config's workload the hyperparameters its script declared that the space
        lacks (first seen in a later build or in ``fit``), as KerasTuner's oracle does with ``update_space``;
        the audit log records it with the script as the actor. Returns the names added (none: already there).

        The workload's ``updated_at`` moves with it, so the scheduler asks its procedure again on the new space.
        """
        with self._session() as session:
            config = get_row(session, ConfigRow, config_id, "config")
            row = session.get(WorkloadRow, config.workload_id)
            added = {name: spec for name, spec in additions.items() if name not in (row.search_space or {})}
            if not added:
                return []
            before = sorted(row.search_space or {})
            row.search_space = {**(row.search_space or {}), **added}
            script = session.get(ScriptRow, row.script_id) if row.script_id is not None else None
            actor = f"script:{script.name}" if script is not None else "script"
            add_event(session, actor, "grow_space", "workload", row.id, {"names": before},
                      {"added": added, "seen_by_config": config_id})
            return sorted(added)

    def fail(self, workload_id: int, error: str) -> None:
        """The workload cannot go on (its procedure raised, its dataset does not fit the workers)."""
        with self._session() as session:
            row = get_row(session, WorkloadRow, workload_id, "workload")
            check_transition(row.status, WorkloadStatus.FAILED, what=f"workload {workload_id}")
            row.status, row.error = WorkloadStatus.FAILED, error[:20_000]

    def finish_idle(self, workload_ids: Iterable[int]) -> list[int]:
        """Mark done those of the given running workloads with no runnable config left; returns them."""
        finished = []
        with self._session() as session:
            for workload_id in workload_ids:
                if self._has_active_config(session, workload_id):
                    continue  # the common case, decided without a lock
                # Locked, then read again: a config being added or queued now (reopen) either committed already
                # and is seen below, or waits for this transaction and then reopens the workload.
                row = locked_row(session, WorkloadRow, workload_id)
                if row is None or row.status != WorkloadStatus.RUNNING or self._has_active_config(session, workload_id):
                    continue
                error = _all_failed_error(session, workload_id)
                if error is None:
                    row.status = WorkloadStatus.DONE
                else:
                    check_transition(row.status, WorkloadStatus.FAILED, what=f"workload {workload_id}")
                    row.status, row.error = WorkloadStatus.FAILED, error
                finished.append(workload_id)
        return finished

    @staticmethod
    def _has_active_config(session: Session, workload_id: int) -> bool:
        return session.scalar(select(ConfigRow.id).where(
            ConfigRow.workload_id == workload_id,
            ConfigRow.status.in_([ConfigStatus.QUEUED, ConfigStatus.RUNNING])).limit(1)) is not None

    def any_running(self, workload_ids: list[int] | None = None) -> bool:
        with self._session() as session:
            stmt = select(func.count()).select_from(WorkloadRow).where(WorkloadRow.status == WorkloadStatus.RUNNING)
            if workload_ids:
                stmt = stmt.where(WorkloadRow.id.in_(workload_ids))
            return bool(session.scalar(stmt))
