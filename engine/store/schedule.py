"""The scheduler's ledger in SQL: the schedule log (sub-epochs), checkpoints and metrics it commits.

Only the scheduler writes here. Each commit is one transaction: the sub-epoch's outcome, its checkpoint row,
the config's pointer to it and, at an epoch end, the epoch's metrics and the config's new status. So a crash
between two commits loses at most the sub-epochs still running, and never leaves half a commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import func, select

from hopper.engine.entities import (
    CommittedSubEpoch,
    DatasetLayout,
    EventInfo,
    ShardVisit,
    SubEpochInfo,
    SubEpochStart,
    SubEpochStats,
)
from hopper.engine.errors import NotFound, ValidationError
from hopper.engine.objectives import computed_objectives
from hopper.engine.status import (
    RUNNABLE_CONFIG,
    ConfigStatus,
    SubEpochOutcome,
    WorkloadStatus,
    check_transition,
)
from hopper.engine.store._common import Repository
from hopper.engine.store.datasets import layout_of
from hopper.engine.store.models import (
    CheckpointRow,
    ConfigRow,
    DatasetRow,
    EventRow,
    MetricRow,
    ScriptRow,
    SubEpochRow,
    WorkloadRow,
    utcnow,
)

#: The detail of a sub-epoch a restarted scheduler found 'running': lost, re-run, and not counted against its config.
RECOVERED_DETAIL = "the scheduler stopped while this sub-epoch ran; it is re-run"
#: The detail of a sub-epoch lost because people removed its worker at once (``hopper workers remove --now``):
#: re-run elsewhere, and not counted against its config either.
REMOVED_DETAIL = "its worker was removed while it ran (workers remove --now); it is re-run"
#: How many recovered rows the consecutive-failure count looks past (one per scheduler restart it may meet).
_RECOVERY_SLACK = 8

#: (config id, workload id, priority, epochs done, workload max epochs, workload seed)
RunnableRow = tuple[int, int, int, int, int, int]
EpochSummary = Callable[[list[SubEpochStats], dict[str, float]], dict[str, float]]
#: (q, sigma, steps) blocks by partition, the workload's privacy options -> an object with ``epsilon`` and
#: ``budget_spent`` (``hopper.engine.privacy.account``; the store only gathers the rows).
PrivacyAccount = Callable[[dict[int, list[tuple[float, float, int]]], dict], Any]

_RUNNABLE = [s.value for s in RUNNABLE_CONFIG]


def shards_of(shards: list | None, partition: int) -> frozenset[int]:
    """The shards a sub-epoch row trained on (rows from before shards trained on their partition alone)."""
    return frozenset((partition,)) if shards is None else frozenset(int(s) for s in shards)


def _seconds(row: SubEpochRow) -> float:
    """Worker time of a finished sub-epoch, from its start to its commit."""
    if row.started_at is None or row.finished_at is None:
        return 0.0
    return max(0.0, (row.finished_at - row.started_at).total_seconds())


def _stats(row: SubEpochRow) -> SubEpochStats:
    return SubEpochStats(row.rows, row.train_loss, row.train_accuracy, row.compute_seconds, row.hop_seconds)


def dp_events(session, config: ConfigRow) -> dict[int, list[tuple[float, float, int]]]:  # noqa: ANN001
    """Every committed DP-SGD block a config's weights went through, by partition, oldest first.

    A clone or drill-down child starts from another config's checkpoint: the blocks its source committed up
    to that checkpoint (and, recursively, the source's own warm start) come first, so the child inherits the
    epsilon already spent. Only ``ok`` sub-epochs count: a lost or failed one left no checkpoint behind.
    """
    return _lineage_events(session, [(config.id, None)], config.warm_start_checkpoint_id)


def _lineage_events(session, chain: list[tuple[int, int | None]],  # noqa: ANN001
                    warm_id: int | None) -> dict[int, list[tuple[float, float, int]]]:
    """The blocks of ``chain`` ((config id, last checkpoint seq included or None: all)), preceded by those of
    the warm-start checkpoint ``warm_id`` and its own ancestors."""
    seen = {config_id for config_id, _ in chain}
    chain = list(chain)
    while warm_id is not None:
        ck = session.get(CheckpointRow, warm_id)
        if ck is None or ck.config_id in seen:
            break
        seen.add(ck.config_id)
        chain.append((ck.config_id, ck.seq))
        warm_id = session.scalar(select(ConfigRow.warm_start_checkpoint_id).where(ConfigRow.id == ck.config_id))
    out: dict[int, list[tuple[float, float, int]]] = {}
    for config_id, upto in reversed(chain):
        stmt = (select(SubEpochRow.partition, SubEpochRow.dp_q, SubEpochRow.dp_sigma, SubEpochRow.dp_steps)
                .where(SubEpochRow.config_id == config_id, SubEpochRow.outcome == SubEpochOutcome.OK,
                       SubEpochRow.dp_steps.is_not(None)).order_by(SubEpochRow.id))
        if upto is not None:
            stmt = stmt.join(CheckpointRow, CheckpointRow.id == SubEpochRow.output_checkpoint_id).where(
                CheckpointRow.seq <= upto)
        for partition, q, sigma, steps in session.execute(stmt):
            out.setdefault(partition, []).append((float(q), float(sigma), int(steps)))
    return out


class ScheduleStore(Repository):
    def recover_interrupted(self) -> tuple[int, dict[tuple[int, int], set[int]]]:
        """Mark sub-epochs a previous scheduler left running as lost (they are re-run), and return how many,
        with each config's shards already committed in its current epoch."""
        visited: dict[tuple[int, int], set[int]] = {}
        with self._session() as session:
            rows = list(session.scalars(select(SubEpochRow).where(SubEpochRow.outcome == SubEpochOutcome.RUNNING)))
            for row in rows:
                check_transition(row.outcome, SubEpochOutcome.LOST, what=f"sub-epoch {row.id}")
                row.outcome, row.finished_at = SubEpochOutcome.LOST, utcnow()
                row.detail = RECOVERED_DETAIL
            for config_id, epoch, partition, shards in session.execute(
                select(SubEpochRow.config_id, SubEpochRow.epoch, SubEpochRow.partition, SubEpochRow.shards)
                .join(ConfigRow, (ConfigRow.id == SubEpochRow.config_id) & (ConfigRow.epochs_done == SubEpochRow.epoch))
                .where(SubEpochRow.outcome == SubEpochOutcome.OK)
            ):
                visited.setdefault((config_id, epoch), set()).update(shards_of(shards, partition))
        return len(rows), visited

    def committed_seconds(self) -> dict[int, tuple[float, int]]:
        """Workload id -> (worker-seconds of its committed sub-epochs, how many): read once by a starting
        scheduler, which then adds each commit itself (fair share and budgets never re-scan the log)."""
        used: dict[int, tuple[float, int]] = {}
        with self._session() as session:
            for workload_id, started, finished in session.execute(
                select(ConfigRow.workload_id, SubEpochRow.started_at, SubEpochRow.finished_at)
                .join(ConfigRow, ConfigRow.id == SubEpochRow.config_id)
                .where(SubEpochRow.outcome == SubEpochOutcome.OK)
            ):
                seconds, count = used.get(workload_id, (0.0, 0))
                if started is not None and finished is not None:
                    seconds += max(0.0, (finished - started).total_seconds())
                used[workload_id] = (seconds, count + 1)
        return used

    def sub_epoch_costs(self) -> dict[int, tuple[float, float, float, int, int]]:
        """Workload id -> (worker-seconds, hop seconds, compute seconds, rows, sub-epochs) of its committed
        sub-epochs: read once by a starting scheduler, which then adds each commit itself (the execution-plan
        chooser weighs hops against compute)."""
        costs: dict[int, tuple[float, float, float, int, int]] = {}
        with self._session() as session:
            for workload_id, started, finished, hop, compute, rows in session.execute(
                select(ConfigRow.workload_id, SubEpochRow.started_at, SubEpochRow.finished_at, SubEpochRow.hop_seconds,
                       SubEpochRow.compute_seconds, SubEpochRow.rows)
                .join(ConfigRow, ConfigRow.id == SubEpochRow.config_id)
                .where(SubEpochRow.outcome == SubEpochOutcome.OK)
            ):
                wall = max(0.0, (finished - started).total_seconds()) if started and finished else 0.0
                w, h, c, r, n = costs.get(workload_id, (0.0, 0.0, 0.0, 0, 0))
                costs[workload_id] = (w + wall, h + (hop or 0.0), c + (compute or 0.0), r + (rows or 0), n + 1)
        return costs

    def runnable(self) -> list[RunnableRow]:
        """Every dispatchable config of every running workload, as plain tuples (read at every step:
        attribute access on result rows costs more than the query itself at 10 000 configs)."""
        with self._session() as session:
            return [tuple(r) for r in session.execute(
                select(ConfigRow.id, ConfigRow.workload_id, ConfigRow.priority, ConfigRow.epochs_done,
                       WorkloadRow.max_epochs, WorkloadRow.seed)
                .join(WorkloadRow, WorkloadRow.id == ConfigRow.workload_id)
                .where(ConfigRow.status.in_(_RUNNABLE), WorkloadRow.status == WorkloadStatus.RUNNING))]

    def start_sub_epoch(self, config_id: int, partition: int, worker_name: str, *, n_partitions: int | None = None,
                        layouts: dict[int, DatasetLayout], scripts: dict[int, tuple[str, str]],
                        shards: Sequence[int] | None = None) -> SubEpochStart | None:
        """Record that ``worker_name`` starts training the config on ``shards`` (default: ``partition`` alone;
        ``partition`` is logged as their lowest); None when it is no longer runnable (a person stopped it, or its
        workload paused, since the plan was made).

        ``n_partitions``: the shard count the caller requires of the dataset (a mismatch fails the workload);
        None takes the dataset's own. ``layouts`` and ``scripts`` are the caller's caches (datasets and scripts
        never change once written).
        """
        shard_list = sorted({int(s) for s in shards}) if shards else [partition]
        partition = shard_list[0]
        with self._session() as session:
            config = session.get(ConfigRow, config_id)
            workload = session.get(WorkloadRow, config.workload_id)
            if config.status not in RUNNABLE_CONFIG or workload.status != WorkloadStatus.RUNNING:
                return None
            if workload.dataset_id not in layouts:
                layouts[workload.dataset_id] = layout_of(session.get(DatasetRow, workload.dataset_id))
            layout = layouts[workload.dataset_id]
            if n_partitions is not None and len(layout.partition_paths) != n_partitions:
                check_transition(workload.status, WorkloadStatus.FAILED, what=f"workload {workload.id}")
                workload.status = WorkloadStatus.FAILED
                workload.error = (f"dataset {workload.dataset_id} has {len(layout.partition_paths)} partitions but "
                                  f"the scheduler runs {n_partitions} workers")
                return None
            if workload.script_id is None:
                model_ref, entry_point = workload.model_ref, "build_model"
            else:
                if workload.script_id not in scripts:
                    script = session.get(ScriptRow, workload.script_id)
                    scripts[workload.script_id] = (f"script:{script.path}", script.entry_point)
                model_ref, entry_point = scripts[workload.script_id]
            in_ckpt = warm = None
            if config.current_checkpoint_id is not None:
                ck = session.get(CheckpointRow, config.current_checkpoint_id)
                in_ckpt = (ck.path, ck.sha256)
            elif config.warm_start_checkpoint_id is not None:
                ck = session.get(CheckpointRow, config.warm_start_checkpoint_id)
                warm = (ck.path, ck.sha256)
            if shard_list[-1] >= len(layout.partition_paths):
                raise ValidationError(f"dataset {workload.dataset_id} has {len(layout.partition_paths)} shards; "
                                      f"there is no shard {shard_list[-1]}", field="shards")
            row = SubEpochRow(config_id=config.id, epoch=config.epochs_done, partition=partition, worker=worker_name,
                              outcome=SubEpochOutcome.RUNNING, input_checkpoint_id=config.current_checkpoint_id,
                              shards=None if shards is None else shard_list)
            session.add(row)
            if config.status == ConfigStatus.QUEUED:
                config.status = ConfigStatus.RUNNING
            session.flush()
            return SubEpochStart(row.id, config.id, workload.id, workload.seed, config.epochs_done, partition,
                                 dict(config.hparams), layout, model_ref, entry_point, in_ckpt, warm,
                                 None if workload.privacy is None else dict(workload.privacy),
                                 computed_objectives(workload.objectives),
                                 None if workload.entry_options is None else dict(workload.entry_options),
                                 (workload.objectives[0]["metric"], workload.objectives[0]["direction"]),
                                 tuple(shard_list))

    def commit_ok(self, *, sub_epoch_id: int, config_id: int, n_partitions: int | None = None, checkpoint_path: str,
                  checkpoint_sha256: str, checkpoint_bytes: int, stats: SubEpochStats, val_metrics: dict[str, float],
                  notes: Iterable[str] = (), reused_in_memory: bool = False,
                  summarize: EpochSummary, dp_event: tuple[float, float, int] | None = None,
                  account: PrivacyAccount | None = None) -> CommittedSubEpoch:
        """Commit a finished sub-epoch: its checkpoint becomes the config's, and when it completed the config's
        visit of every shard this epoch (``n_partitions`` shards; None: the dataset's count), ``summarize`` turns the epoch's sub-epochs into its metrics, which are written
        with the config's progress (and ``done`` status after its last epoch) in the same transaction.

        ``dp_event`` is the sub-epoch's DP-SGD block, stored on its row. In a private workload ``account``
        turns every committed block of the config into the epoch's ``epsilon`` and decides the stop rule
        (``privacy_spent``), in the same transaction, so a re-run or a restart never counts a block twice.
        """
        with self._session() as session:
            sub_epoch = session.get(SubEpochRow, sub_epoch_id)
            config = session.get(ConfigRow, config_id)
            if (sub_epoch is None or sub_epoch.outcome != SubEpochOutcome.RUNNING
                    or sub_epoch.epoch != config.epochs_done):
                return CommittedSubEpoch(False, config_id)
            workload = session.get(WorkloadRow, config.workload_id)
            done_before = list(session.scalars(select(SubEpochRow).where(
                SubEpochRow.config_id == config.id, SubEpochRow.epoch == sub_epoch.epoch,
                SubEpochRow.outcome == SubEpochOutcome.OK)))
            before: set[int] = set()
            for s in done_before:
                before |= shards_of(s.shards, s.partition)
            mine = shards_of(sub_epoch.shards, sub_epoch.partition)
            if before & mine:
                # A shard this config already trained on this epoch: committing it would count it twice.
                return CommittedSubEpoch(False, config_id)
            visited = frozenset(before | mine)
            if n_partitions is None:
                n_partitions = len(session.get(DatasetRow, workload.dataset_id).partition_paths)
            epoch_end = len(visited) >= n_partitions
            seq = (session.scalar(select(func.max(CheckpointRow.seq)).where(CheckpointRow.config_id == config.id))
                   or 0) + 1
            checkpoint = CheckpointRow(config_id=config.id, epoch=sub_epoch.epoch, seq=seq, path=checkpoint_path,
                                       sha256=checkpoint_sha256, bytes=checkpoint_bytes, epoch_end=epoch_end)
            session.add(checkpoint)
            session.flush()
            check_transition(sub_epoch.outcome, SubEpochOutcome.OK, what=f"sub-epoch {sub_epoch.id}")
            sub_epoch.outcome, sub_epoch.finished_at = SubEpochOutcome.OK, utcnow()
            sub_epoch.output_checkpoint_id = checkpoint.id
            sub_epoch.rows, sub_epoch.train_loss, sub_epoch.train_accuracy = (
                stats.rows, stats.train_loss, stats.train_accuracy)
            sub_epoch.compute_seconds, sub_epoch.hop_seconds = stats.compute_seconds, stats.hop_seconds
            if dp_event is not None:
                sub_epoch.dp_q, sub_epoch.dp_sigma, sub_epoch.dp_steps = (
                    float(dp_event[0]), float(dp_event[1]), int(dp_event[2]))
            if reused_in_memory:
                sub_epoch.detail = "model reused from worker memory"
            superseded = None
            if config.current_checkpoint_id is not None:
                previous = session.get(CheckpointRow, config.current_checkpoint_id)
                if previous is not None and not previous.epoch_end:
                    superseded = previous.path
            config.current_checkpoint_id = checkpoint.id
            notes = list(notes)
            if notes:
                config.notes = "\n".join(dict.fromkeys([*(config.notes or "").splitlines(), *notes]))
            metrics: dict[str, float] = {}
            if epoch_end:
                metrics = summarize([*map(_stats, done_before), stats], val_metrics)
                spent = None
                if workload.privacy is not None and account is not None:
                    session.flush()  # this sub-epoch's block is read back with the others
                    spent = account(dp_events(session, config), dict(workload.privacy))
                    metrics["epsilon"] = float(spent.epsilon)
                for name, value in metrics.items():
                    session.add(MetricRow(config_id=config.id, epoch=sub_epoch.epoch, name=name, value=value))
                config.epochs_done = sub_epoch.epoch + 1
                # Keep what other producers put there (edge profiles: edge_latency_ms@device, model_bytes)
                # until they measure again; this epoch's own metrics replace the previous epoch's.
                config.latest_metrics = {**(config.latest_metrics or {}), "epoch": sub_epoch.epoch, **metrics}
                objective = workload.objectives[0]
                value = metrics.get(objective["metric"])
                if value is not None and (config.best_objective is None or (
                        value > config.best_objective if objective["direction"] == "max"
                        else value < config.best_objective)):
                    config.best_objective = value
                if config.epochs_done >= workload.max_epochs and config.status in RUNNABLE_CONFIG:
                    check_transition(config.status, ConfigStatus.DONE, what=f"config {config.id}")
                    config.status = ConfigStatus.DONE
                elif spent is not None and spent.budget_spent and config.status in RUNNABLE_CONFIG:
                    check_transition(config.status, ConfigStatus.PRIVACY_SPENT, what=f"config {config.id}")
                    config.status = ConfigStatus.PRIVACY_SPENT
                    config.notes = "\n".join(dict.fromkeys([*(config.notes or "").splitlines(), (
                        f"stopped after epoch {sub_epoch.epoch} at epsilon {spent.epsilon:.4g}: the next epoch "
                        f"would reach {spent.next_epoch_epsilon:.4g}, past privacy.target_epsilon "
                        f"{spent.target_epsilon:g}")]))
            session.flush()
            return CommittedSubEpoch(True, config.id, workload.id, sub_epoch.epoch, visited, epoch_end, metrics,
                                     superseded, config.status, _seconds(sub_epoch))

    def _recent_failures(self, session, config_id: int, window: int) -> int:  # noqa: ANN001
        recent = session.execute(select(SubEpochRow.outcome, SubEpochRow.detail)
                                 .where(SubEpochRow.config_id == config_id)
                                 .order_by(SubEpochRow.id.desc()).limit(window + _RECOVERY_SLACK)).all()
        count = 0
        for outcome, detail in recent:
            if outcome == SubEpochOutcome.OK:
                break
            if detail in (RECOVERED_DETAIL, REMOVED_DETAIL):
                continue  # the scheduler died or people removed the worker: not the config's failure
            count += 1
            if count >= window:
                break
        return count

    def commit_failed(self, *, sub_epoch_id: int, config_id: int, detail: str, error: str | None,
                      retryable: bool, window: int) -> int | None:
        """Record a sub-epoch whose code raised. A non-retryable failure fails the config with ``error``;
        a retryable one leaves it runnable and returns its consecutive failures (for back-off). None: stale."""
        with self._session() as session:
            sub_epoch = session.get(SubEpochRow, sub_epoch_id)
            if sub_epoch is None or sub_epoch.outcome != SubEpochOutcome.RUNNING:
                return None
            sub_epoch.outcome, sub_epoch.finished_at = SubEpochOutcome.FAILED, utcnow()
            sub_epoch.detail = detail[:20_000]
            session.flush()
            config = session.get(ConfigRow, config_id)
            if retryable:
                return self._recent_failures(session, config.id, window)
            if config.status in RUNNABLE_CONFIG:
                config.status, config.error = ConfigStatus.FAILED, error
            return 0

    def commit_lost(self, *, sub_epoch_id: int, config_id: int, hung: bool, reason: str, fatal: bool,
                    max_losses: int) -> bool:
        """Record a sub-epoch whose worker died or hung; the config fails when that was fatal (a hang) or the
        ``max_losses``-th loss in a row, else it is re-run. False: already recorded (stale)."""
        with self._session() as session:
            sub_epoch = session.get(SubEpochRow, sub_epoch_id)
            if sub_epoch is None or sub_epoch.outcome != SubEpochOutcome.RUNNING:
                return False
            sub_epoch.outcome = SubEpochOutcome.TIMEOUT if hung else SubEpochOutcome.LOST
            sub_epoch.finished_at, sub_epoch.detail = utcnow(), reason
            session.flush()
            config = session.get(ConfigRow, config_id)
            if config.status not in RUNNABLE_CONFIG:
                return True
            if fatal:
                config.status, config.error = ConfigStatus.FAILED, reason
            elif self._recent_failures(session, config.id, max_losses) >= max_losses:
                config.status = ConfigStatus.FAILED
                config.error = (f"its worker died {max_losses} times in a row while training it "
                                f"(last: {reason}); out of memory?")
            return True

    def inherited_dp_events(self, checkpoint_id: int) -> dict[int, list[tuple[float, float, int]]]:
        """The DP-SGD blocks a config warm-started from ``checkpoint_id`` inherits, by partition, oldest first."""
        with self._session() as session:
            return _lineage_events(session, [], checkpoint_id)

    def shard_counts(self, workload_ids: Iterable[int]) -> dict[int, int]:
        """Workload id -> how many shards its dataset has (one epoch visits them all)."""
        ids = list(workload_ids)
        if not ids:
            return {}
        with self._session() as session:
            return {wid: len(paths) for wid, paths in session.execute(
                select(WorkloadRow.id, DatasetRow.partition_paths)
                .join(DatasetRow, DatasetRow.id == WorkloadRow.dataset_id).where(WorkloadRow.id.in_(ids)))}

    def shard_visits(self, workload_id: int) -> list[ShardVisit]:
        """Every sub-epoch of a workload with the shards it trained on, oldest first (invariant checks, the
        elastic benchmark)."""
        with self._session() as session:
            stmt = (select(SubEpochRow.id, SubEpochRow.config_id, SubEpochRow.epoch, SubEpochRow.worker,
                           SubEpochRow.outcome, SubEpochRow.partition, SubEpochRow.shards, SubEpochRow.started_at,
                           SubEpochRow.finished_at)
                    .join(ConfigRow, ConfigRow.id == SubEpochRow.config_id)
                    .where(ConfigRow.workload_id == workload_id).order_by(SubEpochRow.id))
            return [ShardVisit(sid, cid, epoch, worker, outcome, tuple(sorted(shards_of(shards, partition))),
                               started, finished)
                    for sid, cid, epoch, worker, outcome, partition, shards, started, finished in session.execute(stmt)]

    # -- reads for people ------------------------------------------------------------------------------------
    def content_revision(self, workload_id: int) -> tuple:
        """A value that changes whenever anything the workload's config list or schedule log shows changes (a
        cache key for those reads; about a millisecond against tens for the reads themselves at 1 000 rows).

        Configs: their count, highest id, summed ``version`` (every ORM update bumps it) and latest
        ``updated_at`` (which Core updates of ``latest_metrics`` move too, through its ``onupdate``). Sub-epochs
        are inserted running and updated once, when they leave running, together with ``finished_at``: their
        count, highest id and count of finished rows see every change.

        Raises:
            NotFound: no workload ``workload_id``.
        """
        with self._session() as session:
            if session.get(WorkloadRow, workload_id) is None:
                raise NotFound(f"workload {workload_id} does not exist", field="workload_id")
            configs = session.execute(
                select(func.count(), func.max(ConfigRow.id), func.sum(ConfigRow.version), func.max(ConfigRow.updated_at))
                .where(ConfigRow.workload_id == workload_id)).one()
            sub_epochs = session.execute(
                select(func.count(), func.max(SubEpochRow.id), func.count(SubEpochRow.finished_at))
                .join(ConfigRow, ConfigRow.id == SubEpochRow.config_id)
                .where(ConfigRow.workload_id == workload_id)).one()
            return (*configs, *sub_epochs)

    def list_sub_epochs(self, workload_id: int | None = None, *, config_id: int | None = None,
                        limit: int = 10_000, offset: int = 0) -> list[SubEpochInfo]:
        """The schedule log, oldest first (plain column rows: the Gantt chart asks for thousands).

        Raises:
            NotFound: ``workload_id`` names no workload (checked in the same read, not by loading the workload).
        """
        columns = [getattr(SubEpochRow, f.name) for f in fields(SubEpochInfo)]
        with self._session() as session:
            if workload_id is not None and session.get(WorkloadRow, workload_id) is None:
                raise NotFound(f"workload {workload_id} does not exist", field="workload_id")
            stmt = select(*columns).order_by(SubEpochRow.id).limit(limit).offset(offset)
            if config_id is not None:
                stmt = stmt.where(SubEpochRow.config_id == config_id)
            if workload_id is not None:
                stmt = stmt.join(ConfigRow, ConfigRow.id == SubEpochRow.config_id).where(
                    ConfigRow.workload_id == workload_id)
            return [SubEpochInfo(*row) for row in session.execute(stmt)]


class EventStore(Repository):
    def list(self, *, limit: int = 200, object_type: str | None = None,
             object_id: int | None = None) -> list[EventInfo]:
        """The audit log, newest first."""
        with self._session() as session:
            stmt = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
            if object_type:
                stmt = stmt.where(EventRow.object_type == object_type)
            if object_id is not None:
                stmt = stmt.where(EventRow.object_id == object_id)
            return [EventInfo.from_row(r) for r in session.scalars(stmt)]
