"""The scheduler's ledger: turns what workers report into store commits, and keeps what the loop must know.

Each finished sub-epoch is committed in one store transaction (``ScheduleStore.commit_ok``); a failure or a
loss is recorded and decides whether the config is re-run, backs off or fails. The ledger also keeps the one
piece of state the policy needs between store reads: which partitions each config has committed in its
current epoch. Only the scheduler commits sub-epochs, so after one read at start-up that index stays exact
without re-querying the schedule log at every step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from hopper.engine import privacy
from hopper.engine.entities import CommittedSubEpoch, SubEpochStats
from hopper.engine.errors import Conflict
from hopper.engine.store import Store
from hopper.mop_scheduler.backends import Completion, Lost
from hopper.mop_scheduler.plans import SubEpochCosts
from hopper.mop_scheduler.worker.checkpoints import remove_checkpoint
from hopper.mop_scheduler.worker.protocol import SubEpochResult

log = logging.getLogger("hopper.mop_scheduler.ledger")

MAX_CONSECUTIVE_LOSSES = 3
_COMMIT_RETRIES = 5


@dataclass(frozen=True)
class EpochReport:
    workload_id: int
    config_id: int
    epoch: int
    metrics: dict[str, float]
    status: str | None = None  # the config's status after the epoch (privacy_spent when the stop rule fired)


def epoch_metrics(sub_epochs: list[SubEpochStats], val_metrics: dict[str, float]) -> dict[str, float]:
    """An epoch's metrics: training numbers weighted by each sub-epoch's rows, validation as measured, and
    the epoch's wall time on workers (training plus hops)."""
    rows = sum(s.rows or 0 for s in sub_epochs) or 1
    metrics: dict[str, float] = {}
    if all(s.train_loss is not None for s in sub_epochs):
        metrics["train_loss"] = sum((s.train_loss or 0) * (s.rows or 0) for s in sub_epochs) / rows
    if all(s.train_accuracy is not None for s in sub_epochs):
        metrics["train_accuracy"] = sum((s.train_accuracy or 0) * (s.rows or 0) for s in sub_epochs) / rows
    metrics.update(val_metrics)
    metrics["epoch_seconds"] = sum((s.compute_seconds or 0) + (s.hop_seconds or 0) for s in sub_epochs)
    return metrics


def error_text(error: str | None, details: str | None) -> str:
    """A config's error as people read it: the message and the last lines of the traceback."""
    tail = "\n".join((details or "").strip().splitlines()[-12:])
    return f"{error}\n{tail}".strip()[:20_000]


class Ledger:
    """Commits completions to the store and tracks visits and back-offs.

    Args:
        store: the config store.
        n_partitions: shards per epoch every dataset must have; None: each dataset's own shard count.
    """

    def __init__(self, store: Store, n_partitions: int | None = None) -> None:
        self.store = store
        self.n_partitions = n_partitions
        #: (config id, epoch) -> shards committed in that epoch (the current epoch only)
        self.visited: dict[tuple[int, int], set[int]] = {}
        #: config id -> monotonic time before which it is not dispatched (after a retryable failure)
        self.cooldown: dict[int, float] = {}
        self.stats = {"committed": 0, "lost": 0, "failed": 0, "epochs": 0}
        #: workload id -> [worker-seconds of its committed sub-epochs, how many]: read once at recovery, then
        #: kept up to date by each commit (fair share and budgets read it at every step)
        self.used: dict[int, list[float]] = {}
        #: workload id -> [wall, hop, compute seconds, rows, count] of its committed sub-epochs (the plan chooser)
        self.costs: dict[int, list[float]] = {}
        #: config id -> the worker whose sub-epoch of it committed last, which keeps its model built (in memory
        #: only: after a restart no worker holds any model)
        self.homes: dict[int, int] = {}

    def recover(self) -> int:
        """Mark sub-epochs a previous scheduler left running as lost and rebuild the visit index and the
        workloads' use of the workers."""
        lost, visited = self.store.schedule.recover_interrupted()
        self.visited = visited
        costs = self.store.schedule.sub_epoch_costs()
        self.used = {wid: [wall, count] for wid, (wall, _, _, _, count) in costs.items()}
        self.costs = {wid: list(row) for wid, row in costs.items()}
        return lost

    def costs_of(self, workload_id: int) -> SubEpochCosts:
        """What a workload's committed sub-epochs cost (wall, hop, compute, rows), summed."""
        wall, hop, compute, rows, count = self.costs.get(workload_id, (0.0, 0.0, 0.0, 0, 0))
        return SubEpochCosts(wall, hop, compute, int(rows), int(count))

    def committed_seconds(self, workload_id: int) -> float:
        return self.used.get(workload_id, (0.0, 0))[0]

    def mean_sub_epoch_seconds(self, workload_id: int) -> float | None:
        seconds, count = self.used.get(workload_id, (0.0, 0))
        return seconds / count if count else None

    def cooling(self) -> set[int]:
        now = time.monotonic()
        return {c for c, until in self.cooldown.items() if until > now}

    def commit(self, completion: Completion) -> EpochReport | None:
        """Commit one completion; returns the epoch's report when it ended an epoch.

        Raises:
            StoreUnavailable: the store is down; the caller keeps the completion and retries later.
        """
        for attempt in range(_COMMIT_RETRIES):
            try:
                if isinstance(completion, Lost):
                    self._commit_lost(completion)
                    return None
                if completion.ok:
                    return self._commit_ok(completion)
                self._commit_failed(completion)
                return None
            except Conflict:
                # A user wrote the config between our read and write; re-read and apply again.
                log.debug("commit conflict on config %s (attempt %d)", getattr(completion, "config_id", "?"), attempt)
        raise Conflict("could not commit a sub-epoch after repeated concurrent edits")

    def _commit_ok(self, result: SubEpochResult) -> EpochReport | None:
        stats = SubEpochStats(result.rows, result.train_loss, result.train_accuracy, result.compute_seconds,
                              result.hop_seconds)
        if result.new_space:
            # Before the commit, and idempotent: a commit retried after an outage grows nothing twice.
            added = self.store.workloads.grow_space(result.config_id, result.new_space)
            if added:
                log.info("config %d: the script declared %s: added to its workload's space", result.config_id,
                         ", ".join(added))
        done: CommittedSubEpoch = self.store.schedule.commit_ok(
            sub_epoch_id=result.sub_epoch_id, config_id=result.config_id, n_partitions=self.n_partitions,
            checkpoint_path=result.checkpoint_path, checkpoint_sha256=result.checkpoint_sha256,
            checkpoint_bytes=result.checkpoint_bytes, stats=stats, val_metrics=result.val_metrics,
            notes=result.notes, reused_in_memory=result.reused_in_memory, summarize=epoch_metrics,
            dp_event=privacy.merge_events(result.dp_events), account=privacy.account)
        if not done.committed:
            remove_checkpoint(result.checkpoint_path)  # a stale duplicate: its checkpoint is nobody's
            return None
        self.stats["committed"] += 1
        use = self.used.setdefault(done.workload_id, [0.0, 0])
        use[0] += done.seconds
        use[1] += 1
        self.homes[done.config_id] = result.worker
        cost = self.costs.setdefault(done.workload_id, [0.0, 0.0, 0.0, 0, 0])
        cost[0] += done.seconds
        cost[1] += result.hop_seconds or 0.0
        cost[2] += result.compute_seconds or 0.0
        cost[3] += result.rows or 0
        cost[4] += 1
        self.visited.pop((done.config_id, done.epoch - 1), None)
        self.visited[(done.config_id, done.epoch)] = set(done.visited)
        remove_checkpoint(done.superseded_path)
        if not done.epoch_end:
            return None
        self.stats["epochs"] += 1
        return EpochReport(done.workload_id, done.config_id, done.epoch, done.metrics, done.status)

    def _commit_failed(self, result: SubEpochResult) -> None:
        failures = self.store.schedule.commit_failed(
            sub_epoch_id=result.sub_epoch_id, config_id=result.config_id,
            detail=f"{result.error}\n{result.details or ''}".strip(), error=error_text(result.error, result.details),
            retryable=result.retryable, window=MAX_CONSECUTIVE_LOSSES)
        self.homes.pop(result.config_id, None)  # the worker dropped the model it failed with
        if failures is None:
            return
        if result.retryable:
            # Not the config's fault (a full disk, say): run it again later, backing off.
            self.cooldown[result.config_id] = time.monotonic() + min(60.0, 2.0 ** failures)
        self.stats["failed"] += 1
        log.warning("config %d: sub-epoch failed: %s", result.config_id, result.error)

    def _commit_lost(self, lost: Lost) -> None:
        self.homes.pop(lost.task.config_id, None)
        if not self.store.schedule.commit_lost(sub_epoch_id=lost.task.sub_epoch_id, config_id=lost.task.config_id,
                                               hung=lost.hung, reason=lost.reason, fatal=lost.fatal,
                                               max_losses=MAX_CONSECUTIVE_LOSSES):
            return
        self.stats["lost"] += 1
        remove_checkpoint(lost.task.out_path)
