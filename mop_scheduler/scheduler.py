"""The model-hopper-parallel scheduling loop.

Each step: collect finished sub-epochs and commit them, let procedures top up their workloads,
then give every idle worker a runnable config that has not yet visited that worker's partition in
its current epoch (highest priority, then least progress, then a seeded per-config-per-epoch
shuffle). Users' changes (stop, resume, add, clone, priority, pause) are plain store writes, so they
take effect at the next step: between sub-epochs.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from hopper.engine.entities import DatasetInfo
from hopper.engine.errors import Conflict, HopperError, StoreUnavailable
from hopper.engine.procedures import Objective
from hopper.engine.search import RUNNABLE, top_up
from hopper.engine.services import Services
from hopper.engine.store import (
    CheckpointRow,
    ConfigRow,
    DatasetRow,
    MetricRow,
    ScriptRow,
    SubEpochRow,
    WorkloadRow,
    utcnow,
)
from hopper.engine.tensorboard_log import write_scalars
from hopper.mop_scheduler.backends import Backend, Completion, Lost, make_backend
from hopper.mop_scheduler.worker.checkpoints import join_location, remove_checkpoint
from hopper.mop_scheduler.worker.protocol import DatasetRef, SubEpochResult, SubEpochTask

log = logging.getLogger("hopper.mop_scheduler")

MAX_CONSECUTIVE_LOSSES = 3
_COMMIT_RETRIES = 5
_MASK64 = (1 << 64) - 1
# When thousands of configs tie on rank, shuffle among the oldest this many: keeps a decision
# O(configs) to sort, not O(configs x workers) to hash, at 10 000 configs.
_MAX_TIED = 64


def visit_key(seed: int, config_id: int, epoch: int, partition: int) -> int:
    """Seeded tie-break that shuffles each config's partition order per epoch (replayable).

    A multiplicative hash (splitmix64's finaliser) rather than sha256: it runs for every tied
    candidate of every idle worker at every step, and needs to be stable, not secret.
    """
    z = (seed * 0x9E3779B97F4A7C15 + config_id * 0xBF58476D1CE4E5B9 + epoch * 0x94D049BB133111EB
         + partition * 0xD6E8FEB86659FD93) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


@dataclass(frozen=True)
class EpochReport:
    workload_id: int
    config_id: int
    epoch: int
    metrics: dict[str, float]


class Scheduler:
    """Drives workers from the store.

    Args:
        services: services on the config store (settings give workers, artefact dir, poll interval).
        backend: where sub-epochs run; by default the one ``settings.backend`` names, with
            ``settings.workers`` workers.
        epoch_barrier: strict MOP template: no config of a workload starts epoch e+1 before all of its
            runnable configs finished epoch e.
        on_epoch: called after each committed epoch (CLI progress).
    """

    def __init__(self, services: Services, backend: Backend | None = None, *, epoch_barrier: bool = False,
                 threads_per_worker: int = 1, on_epoch: Callable[[EpochReport], None] | None = None) -> None:
        self.services = services
        self.store = services.store
        self.settings = services.settings
        self.backend = backend or make_backend(self.settings, threads_per_worker=threads_per_worker)
        self.epoch_barrier = epoch_barrier
        self.on_epoch = on_epoch
        self._exhausted: dict[int, object] = {}
        self._datasets: dict[int, DatasetRef] = {}
        self._scripts: dict[int, tuple[str, str]] = {}
        self._recovered = False
        # (config id, epoch) -> partitions committed in that epoch. Only the scheduler commits
        # sub-epochs, so after one read at start-up this stays exact without re-querying the log.
        self._visited: dict[tuple[int, int], set[int]] = {}
        # config id -> monotonic time before which it is not dispatched (after a retryable failure)
        self._cooldown: dict[int, float] = {}
        # Finished sub-epochs not yet committed: kept here when the store is down, so none is lost.
        self._pending: list[Completion] = []
        self.stats = {"dispatched": 0, "committed": 0, "lost": 0, "failed": 0, "epochs": 0}

    # -- lifecycle ----------------------------------------------------------------------------
    def recover(self) -> int:
        """Mark sub-epochs left 'running' by a previous scheduler as lost; they will be re-run."""
        with self.store.session() as session:
            rows = list(session.scalars(select(SubEpochRow).where(SubEpochRow.outcome == "running")))
            for row in rows:
                row.outcome, row.finished_at = "lost", utcnow()
                row.detail = "the scheduler stopped while this sub-epoch ran; it is re-run"
            for config_id, epoch, partition in session.execute(
                select(SubEpochRow.config_id, SubEpochRow.epoch, SubEpochRow.partition)
                .join(ConfigRow, (ConfigRow.id == SubEpochRow.config_id) & (ConfigRow.epochs_done == SubEpochRow.epoch))
                .where(SubEpochRow.outcome == "ok")
            ):
                self._visited.setdefault((config_id, epoch), set()).add(partition)
        self._recovered = True
        # What is alive now (imports, the visited index) lives as long as the scheduler; moving it out
        # of the collector's generations keeps full collections from re-walking it at every step
        # (they made a 10 000-config decision take 70 ms instead of 17).
        gc.freeze()
        if rows:
            log.warning("recovered %d interrupted sub-epochs", len(rows))
        return len(rows)

    def run(self, *, stop_event: threading.Event | None = None, until_done: bool = False,
            timeout: float | None = None, workload_ids: list[int] | None = None) -> None:
        """Loop until stopped, or (``until_done``) until the given or all workloads have finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = self.settings.poll_interval
        self.backend.start()
        try:
            while not (stop_event is not None and stop_event.is_set()):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"the scheduler ran for {timeout} s without finishing")
                try:
                    self.step()
                    backoff = self.settings.poll_interval
                except StoreUnavailable as exc:
                    # The store is down or locked: keep workers' results queued and try again.
                    log.warning("config store unavailable (%s); retrying in %.1f s", exc.message, backoff)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                if until_done and self._finished(workload_ids):
                    return
        finally:
            self.backend.shutdown()

    def _finished(self, workload_ids: list[int] | None) -> bool:
        if self.backend.in_flight() or self._pending:
            return False
        with self.store.session() as session:
            stmt = select(func.count()).select_from(WorkloadRow).where(WorkloadRow.status == "running")
            if workload_ids:
                stmt = stmt.where(WorkloadRow.id.in_(workload_ids))
            return session.scalar(stmt) == 0

    def step(self) -> None:
        """One scheduling cycle: commit, top up, dispatch, finish."""
        if not self._recovered:
            self.recover()
        busy = bool(self.backend.in_flight())
        has_idle = bool(self.backend.idle_workers())
        timeout = self.settings.poll_interval if busy and not has_idle else 0.0
        self._pending.extend(self.backend.poll(timeout))
        while self._pending:
            self._commit(self._pending[0])  # a StoreUnavailable leaves it queued for the next step
            self._pending.pop(0)
        self._top_up()
        dispatched = self._dispatch()
        self._finish_workloads()
        if not dispatched and not busy:
            time.sleep(self.settings.poll_interval)

    # -- procedures ---------------------------------------------------------------------------
    def _top_up(self) -> None:
        with self.store.session() as session:
            workloads = list(session.scalars(select(WorkloadRow).where(WorkloadRow.status == "running")))
            for workload in workloads:
                if self._exhausted.get(workload.id) == workload.updated_at:
                    continue
                try:
                    if top_up(session, workload, self.backend.n_workers):
                        self._exhausted[workload.id] = workload.updated_at
                except HopperError as exc:
                    workload.status, workload.error = "failed", f"procedure failed: {exc.message}"
                    log.error("workload %d: %s", workload.id, workload.error)

    # -- dispatch -----------------------------------------------------------------------------
    def _dataset_ref(self, session, dataset_id: int) -> DatasetRef:  # noqa: ANN001
        if dataset_id not in self._datasets:
            info = DatasetInfo.from_row(row := session.get(DatasetRow, dataset_id))
            self._datasets[dataset_id] = DatasetRef(dataset_id, tuple(row.partition_paths), row.validation_path,
                                                    tuple(info.feature_shape), info.n_outputs, info.task)
        return self._datasets[dataset_id]

    def _model_ref(self, session, workload: WorkloadRow) -> tuple[str, str]:  # noqa: ANN001
        if workload.script_id is None:
            return workload.model_ref, "build_model"
        if workload.script_id not in self._scripts:
            script = session.get(ScriptRow, workload.script_id)
            self._scripts[workload.script_id] = (f"script:{script.path}", script.entry_point)
        return self._scripts[workload.script_id]

    def plan(self, idle: list[int]) -> list[tuple[int, int, bool]]:
        """Decide, without writing, which config each idle worker trains next.

        Returns:
            (worker, config id, evaluate) triples; ``evaluate`` marks a config's last partition of
            its epoch (the worker then also scores it on the validation split).
        """
        in_flight = {t.config_id for t in self.backend.in_flight().values()}
        n_parts = self.backend.n_workers
        with self.store.session() as session:
            rows = session.execute(
                select(ConfigRow.id, ConfigRow.workload_id, ConfigRow.priority, ConfigRow.epochs_done,
                       WorkloadRow.max_epochs, WorkloadRow.seed)
                .join(WorkloadRow, WorkloadRow.id == ConfigRow.workload_id)
                .where(ConfigRow.status.in_(RUNNABLE), WorkloadRow.status == "running")
            ).all()
            if not rows:
                return []
        min_epoch: dict[int, int] = {}
        if self.epoch_barrier:
            for _, workload_id, _, epochs_done, _, _ in rows:
                min_epoch[workload_id] = min(min_epoch.get(workload_id, epochs_done), epochs_done)
        none: set[int] = set()
        visited = self._visited
        now = time.monotonic()
        cooling = {c for c, until in self._cooldown.items() if until > now}
        candidates = []
        # plain tuple unpacking: attribute access on result rows costs more than the query at 10k rows
        for config_id, workload_id, priority, epochs_done, max_epochs, seed in rows:
            if epochs_done >= max_epochs or config_id in in_flight or config_id in cooling:
                continue
            if self.epoch_barrier and epochs_done != min_epoch[workload_id]:
                continue
            done = visited.get((config_id, epochs_done), none)
            # highest priority, then least progress (epochs, then partitions this epoch)
            candidates.append(((-priority, epochs_done, len(done)), config_id, epochs_done, seed, done))
        candidates.sort(key=lambda c: c[0])
        plan = []
        for worker in idle:
            best, best_key, top_rank, examined = None, -1, None, 0
            for rank, config_id, epochs_done, seed, done in candidates:
                if top_rank is not None and (rank != top_rank or examined >= _MAX_TIED):
                    break  # past the best rank group that has a fit for this worker
                if worker in done or config_id in in_flight:
                    continue
                top_rank = rank
                examined += 1
                # the seeded shuffle only breaks ties inside the best rank group
                key = visit_key(seed, config_id, epochs_done, worker)
                if key > best_key:
                    best, best_key = (config_id, len(done)), key
            if best is None:
                continue
            plan.append((worker, best[0], best[1] + 1 == n_parts))
            in_flight.add(best[0])
        return plan

    def _dispatch(self) -> int:
        idle = self.backend.idle_workers()
        if not idle:
            return 0
        dispatched = 0
        for worker, config_id, evaluate in self.plan(idle):
            try:
                task = self._start_sub_epoch(config_id, worker, evaluate)
            except Conflict:
                continue  # a user changed the config just now; it is reconsidered next step
            if task is None:
                continue
            self.backend.submit(worker, task)
            dispatched += 1
            self.stats["dispatched"] += 1
        return dispatched

    def _start_sub_epoch(self, config_id: int, worker: int, evaluate: bool) -> SubEpochTask | None:
        with self.store.session() as session:
            config = session.get(ConfigRow, config_id)
            workload = session.get(WorkloadRow, config.workload_id)
            if config.status not in RUNNABLE or workload.status != "running":
                return None
            dataset = self._dataset_ref(session, workload.dataset_id)
            if len(dataset.partition_paths) != self.backend.n_workers:
                workload.status = "failed"
                workload.error = (f"dataset {workload.dataset_id} has {len(dataset.partition_paths)} partitions but "
                                  f"the scheduler runs {self.backend.n_workers} workers")
                return None
            model_ref, entry_point = self._model_ref(session, workload)
            in_ckpt = warm = None
            if config.current_checkpoint_id is not None:
                ck = session.get(CheckpointRow, config.current_checkpoint_id)
                in_ckpt = (ck.path, ck.sha256)
            else:
                warm_id = config.warm_start_checkpoint_id
                if warm_id is not None:
                    ck = session.get(CheckpointRow, warm_id)
                    warm = (ck.path, ck.sha256)
            sub_epoch = SubEpochRow(config_id=config.id, epoch=config.epochs_done, partition=worker,
                                    worker=self.backend.worker_name(worker), outcome="running",
                                    input_checkpoint_id=config.current_checkpoint_id)
            session.add(sub_epoch)
            if config.status == "queued":
                config.status = "running"
            session.flush()
            out_path = join_location(self.settings.checkpoint_location, f"workload-{workload.id}",
                                     f"config-{config.id}", f"e{config.epochs_done:04d}-p{worker:03d}-s{sub_epoch.id}.npz")
            return SubEpochTask(
                sub_epoch_id=sub_epoch.id, config_id=config.id, epoch=config.epochs_done, partition=worker,
                model_ref=model_ref, entry_point=entry_point, hparams=dict(config.hparams), dataset=dataset,
                out_path=str(out_path), seed=visit_key(workload.seed, config.id, config.epochs_done, worker),
                evaluate=evaluate, in_checkpoint=in_ckpt, warm_start=warm,
            )

    # -- commit -------------------------------------------------------------------------------
    def _commit(self, completion: Completion) -> None:
        for attempt in range(_COMMIT_RETRIES):
            try:
                if isinstance(completion, Lost):
                    self._commit_lost(completion)
                elif completion.ok:
                    self._commit_ok(completion)
                else:
                    self._commit_failed(completion)
                return
            except Conflict:
                # A user wrote the config between our read and write; re-read and apply again.
                log.debug("commit conflict on config %s (attempt %d)", getattr(completion, "config_id", "?"), attempt)
        raise Conflict("could not commit a sub-epoch after repeated concurrent edits")

    def _commit_ok(self, result: SubEpochResult) -> None:
        report = None
        previous_path = None
        with self.store.session() as session:
            sub_epoch = session.get(SubEpochRow, result.sub_epoch_id)
            config = session.get(ConfigRow, result.config_id)
            if sub_epoch is None or sub_epoch.outcome != "running" or sub_epoch.epoch != config.epochs_done:
                remove_checkpoint(result.checkpoint_path)
                return
            workload = session.get(WorkloadRow, config.workload_id)
            done_before = list(session.scalars(select(SubEpochRow).where(
                SubEpochRow.config_id == config.id, SubEpochRow.epoch == sub_epoch.epoch, SubEpochRow.outcome == "ok")))
            visited = {s.partition for s in done_before} | {sub_epoch.partition}
            epoch_end = len(visited) >= self.backend.n_workers
            committed_visit = (config.id, sub_epoch.epoch, visited)
            seq = (session.scalar(select(func.max(CheckpointRow.seq)).where(CheckpointRow.config_id == config.id))
                   or 0) + 1
            checkpoint = CheckpointRow(config_id=config.id, epoch=sub_epoch.epoch, seq=seq,
                                       path=result.checkpoint_path, sha256=result.checkpoint_sha256,
                                       bytes=result.checkpoint_bytes, epoch_end=epoch_end)
            session.add(checkpoint)
            session.flush()
            sub_epoch.outcome, sub_epoch.finished_at = "ok", utcnow()
            sub_epoch.output_checkpoint_id = checkpoint.id
            sub_epoch.rows, sub_epoch.train_loss, sub_epoch.train_accuracy = (
                result.rows, result.train_loss, result.train_accuracy)
            sub_epoch.compute_seconds, sub_epoch.hop_seconds = result.compute_seconds, result.hop_seconds
            if result.reused_in_memory:
                sub_epoch.detail = "model reused from worker memory"
            if config.current_checkpoint_id is not None:
                previous = session.get(CheckpointRow, config.current_checkpoint_id)
                if previous is not None and not previous.epoch_end:
                    previous_path = previous.path
            config.current_checkpoint_id = checkpoint.id
            if result.notes:
                config.notes = "\n".join(dict.fromkeys([*(config.notes or "").splitlines(), *result.notes]))
            if epoch_end:
                metrics = self._epoch_metrics([*done_before, sub_epoch], result.val_metrics)
                for name, value in metrics.items():
                    session.add(MetricRow(config_id=config.id, epoch=sub_epoch.epoch, name=name, value=value))
                config.epochs_done = sub_epoch.epoch + 1
                # Keep what other producers put there (edge profiles: edge_latency_ms@device, model_bytes)
                # until they measure again; this epoch's own metrics replace the previous epoch's.
                config.latest_metrics = {**(config.latest_metrics or {}), "epoch": sub_epoch.epoch, **metrics}
                objective = workload.objectives[0]
                value = metrics.get(objective["metric"])
                if value is not None and (config.best_objective is None or Objective(
                        objective["metric"], objective["direction"]).better(value, config.best_objective)):
                    config.best_objective = value
                if config.epochs_done >= workload.max_epochs and config.status in RUNNABLE:
                    config.status = "done"
                report = EpochReport(workload.id, config.id, sub_epoch.epoch, metrics)
            session.flush()
        self.stats["committed"] += 1
        config_id, epoch, visited = committed_visit
        self._visited.pop((config_id, epoch - 1), None)
        self._visited[(config_id, epoch)] = visited
        remove_checkpoint(previous_path)
        if report is not None:
            self.stats["epochs"] += 1
            tb_dir = self.services.tensorboard_dir(report.workload_id) / f"config-{report.config_id}"
            write_scalars(tb_dir, report.epoch, report.metrics)
            if self.on_epoch:
                self.on_epoch(report)

    @staticmethod
    def _epoch_metrics(sub_epochs: list[SubEpochRow], val_metrics: dict[str, float]) -> dict[str, float]:
        rows = sum(s.rows or 0 for s in sub_epochs) or 1
        metrics: dict[str, float] = {}
        if all(s.train_loss is not None for s in sub_epochs):
            metrics["train_loss"] = sum((s.train_loss or 0) * (s.rows or 0) for s in sub_epochs) / rows
        if all(s.train_accuracy is not None for s in sub_epochs):
            metrics["train_accuracy"] = sum((s.train_accuracy or 0) * (s.rows or 0) for s in sub_epochs) / rows
        metrics.update(val_metrics)
        metrics["epoch_seconds"] = sum((s.compute_seconds or 0) + (s.hop_seconds or 0) for s in sub_epochs)
        return metrics

    def _consecutive_failures(self, session, config_id: int) -> int:  # noqa: ANN001
        recent = session.scalars(select(SubEpochRow.outcome).where(SubEpochRow.config_id == config_id)
                                 .order_by(SubEpochRow.id.desc()).limit(MAX_CONSECUTIVE_LOSSES)).all()
        count = 0
        for outcome in recent:
            if outcome == "ok":
                break
            count += 1
        return count

    def _commit_failed(self, result: SubEpochResult) -> None:
        with self.store.session() as session:
            sub_epoch = session.get(SubEpochRow, result.sub_epoch_id)
            if sub_epoch is None or sub_epoch.outcome != "running":
                return
            sub_epoch.outcome, sub_epoch.finished_at = "failed", utcnow()
            sub_epoch.detail = f"{result.error}\n{result.details or ''}".strip()[:20_000]
            session.flush()
            config = session.get(ConfigRow, result.config_id)
            if result.retryable:
                # Not the config's fault (a full disk, say): run it again later, backing off.
                failures = self._consecutive_failures(session, config.id)
                self._cooldown[config.id] = time.monotonic() + min(60.0, 2.0 ** failures)
            elif config.status in RUNNABLE:
                config.status = "failed"
                config.error = _error_text(result.error, result.details)
        self.stats["failed"] += 1
        log.warning("config %d: sub-epoch failed: %s", result.config_id, result.error)

    def _commit_lost(self, lost: Lost) -> None:
        with self.store.session() as session:
            sub_epoch = session.get(SubEpochRow, lost.task.sub_epoch_id)
            if sub_epoch is None or sub_epoch.outcome != "running":
                return
            sub_epoch.outcome = "timeout" if lost.hung else "lost"
            sub_epoch.finished_at, sub_epoch.detail = utcnow(), lost.reason
            session.flush()
            config = session.get(ConfigRow, lost.task.config_id)
            if config.status in RUNNABLE:
                if lost.fatal:
                    config.status, config.error = "failed", lost.reason
                elif self._consecutive_failures(session, config.id) >= MAX_CONSECUTIVE_LOSSES:
                    config.status = "failed"
                    config.error = (f"its worker died {MAX_CONSECUTIVE_LOSSES} times in a row while training it "
                                    f"(last: {lost.reason}); out of memory?")
        self.stats["lost"] += 1
        remove_checkpoint(lost.task.out_path)

    # -- completion ---------------------------------------------------------------------------
    def _finish_workloads(self) -> None:
        with self.store.session() as session:
            for workload in session.scalars(select(WorkloadRow).where(WorkloadRow.status == "running")):
                if self._exhausted.get(workload.id) != workload.updated_at:
                    continue
                active = session.scalars(select(ConfigRow.id).where(
                    ConfigRow.workload_id == workload.id, ConfigRow.status.in_(RUNNABLE))).all()
                if not active:
                    workload.status = "done"
                    log.info("workload %d finished", workload.id)


def _error_text(error: str | None, details: str | None) -> str:
    tail = "\n".join((details or "").strip().splitlines()[-12:])
    return f"{error}\n{tail}".strip()[:20_000]
