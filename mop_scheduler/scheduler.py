"""The model-hopper-parallel scheduling loop: joins the policy, the ledger and a backend.

Each step: collect finished sub-epochs and commit them (ledger), apply what the procedures of the workloads
whose epochs ended decide (stop, pause at a rung, promote, exploit), let procedures top up their workloads,
then give every idle worker a runnable config that has not yet visited some of the shards that worker owns in
its current epoch (policy). Users' changes (stop, resume, add, clone, priority, pause, and the worker count)
are plain store writes, so they take effect at the next step: between sub-epochs.

Elastic workers: each step reads the requested worker count from the store and resizes the backend. Shard
ownership is recomputed from the previous ownership whenever the set of workers taking tasks changes
(``hopper.mop_scheduler.shards.rebalance``), so a joining worker takes a balanced share and a leaving one hands
over only its own shards; new owners load them on first use.

Execution plans: before a workload's configs are dispatched, and again after each of its epochs, the scheduler
chooses its plan (``hopper.mop_scheduler.plans``: MOP, or every worker holding all the data and training a
config's whole epoch per dispatch) from the data's size and the hop and compute times its sub-epochs measured.
A changed choice is stored with its reason on the workload (shown by REST and the UI) and in the audit log.
"""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial

import psutil

from hopper.engine.budget import budget_exceeded, utc_now
from hopper.engine.entities import DatasetLayout
from hopper.engine.errors import Conflict, HopperError, InvalidState, LeaseHeld, StoreUnavailable
from hopper.engine.search import propose
from hopper.engine.services import Services
from hopper.engine.services.steering import replicated_bytes
from hopper.engine.tensorboard_log import write_hparams, write_scalars
from hopper.mop_scheduler.backends import Backend, Completion, make_backend
from hopper.mop_scheduler.chores import ScheduledChores
from hopper.mop_scheduler.ledger import MAX_CONSECUTIVE_LOSSES, EpochReport, Ledger
from hopper.mop_scheduler.plans import REPLICATED, PlanChoice, choose_plan
from hopper.mop_scheduler.policy import Assignment, MopPolicy, Snapshot, WorkloadShare, visit_key
from hopper.mop_scheduler.shards import Ownership, rebalance
from hopper.mop_scheduler.worker.checkpoints import join_location
from hopper.mop_scheduler.worker.protocol import SubEpochTask

__all__ = ["MAX_CONSECUTIVE_LOSSES", "EpochReport", "Scheduler", "visit_key"]

log = logging.getLogger("hopper.mop_scheduler")

#: What a procedure's own code or its sampler library may raise when it is broken by its inputs.
_PROCEDURE_ERRORS = (ArithmeticError, LookupError, RuntimeError, TypeError, ValueError)


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
        self.policy = MopPolicy(epoch_barrier=epoch_barrier,
                                by_owner=bool(getattr(self.settings, "fair_share_by_owner", True)))
        self.ledger = Ledger(self.store)
        # shard count -> worker -> shards it owns, for the worker set ``_owners_of``
        self._ownership: dict[int, Ownership] = {}
        self._owners_of: tuple[int, ...] = ()
        self._shard_counts: dict[int, int] = {}  # workload id -> its dataset's shards (datasets never change)
        self._pool_report: list[dict] | None = None
        self._pool_warned = False
        self._applied_desired: int | None = None
        self.on_epoch = on_epoch
        self._exhausted: dict[int, object] = {}
        self._layouts: dict[int, DatasetLayout] = {}
        self._scripts: dict[int, tuple[str, str]] = {}
        self._recovered = False
        self._tensorboard_hparams: set[int] = set()  # configs whose hparams TensorBoard has (HParams dashboard)
        # Workloads whose procedure must decide before the next dispatch: an epoch of theirs ended (and, once
        # after recovery, every running one: decisions the killed scheduler did not get to apply).
        self._undecided: set[int] = set()
        # Finished sub-epochs not yet committed: kept here when the store is down, so none is lost.
        self._pending: list[Completion] = []
        self._dispatched = 0
        # sub-epoch id -> (its workload, monotonic start) while it runs: its elapsed time counts toward the
        # workload's use (fair share, worker-seconds budgets) before it commits.
        self._running_since: dict[int, tuple[int, float]] = {}
        # (id, weight, owner, budget, created_at) of the running workloads, read once per step
        self._sharing: list[tuple] | None = None
        # The store's scheduler lease (one scheduler per store): who we are, and until when (monotonic) our
        # last successful heartbeat lets us dispatch and commit.
        self.lease_id = uuid.uuid4().hex
        self._lease_valid_until = 0.0
        self._lease_lost = threading.Event()
        self._lease_stop = threading.Event()
        self._lease_thread: threading.Thread | None = None
        # Execution plans: workload id -> (plan asked for, dataset id, trains with DP-SGD, last stored choice);
        # the current choice of each workload; those to decide again (an epoch of theirs ended); datasets some
        # replicated workload holds whole on every worker.
        self._plan_settings: dict[int, tuple[str, int, bool, dict | None]] = {}
        self._plans: dict[int, PlanChoice] = {}
        self._plan_due: set[int] = set()
        self._replicated_datasets: set[int] = set()
        self._datasets: dict[int, object] = {}
        # Due schedules and webhooks, between steps (chores.py); tests swap in one with shorter intervals.
        self.chores = ScheduledChores(services)

    @property
    def buffered(self) -> list[int]:
        """Sub-epoch ids of finished work held in memory, not yet committed (the store was unreachable)."""
        return [getattr(c, "sub_epoch_id", None) or c.task.sub_epoch_id for c in list(self._pending)]

    @property
    def stats(self) -> dict[str, int]:
        return {"dispatched": self._dispatched, **self.ledger.stats}

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def recover(self) -> int:
        """Mark sub-epochs left 'running' by a previous scheduler as lost; they will be re-run."""
        lost = self.ledger.recover()
        self._recovered = True
        # What is alive now (imports, the visited index) lives as long as the scheduler; moving it out
        # of the collector's generations keeps full collections from re-walking it at every step
        # (they made a 10 000-config decision take 70 ms instead of 17).
        gc.freeze()
        if lost:
            log.warning("recovered %d interrupted sub-epochs", lost)
        return lost

    # -- the lease: one scheduler per store ---------------------------------------------------------------------
    @property
    def _lease_seconds(self) -> float:
        return float(getattr(self.settings, "scheduler_lease_seconds", 15.0))

    def acquire_lease(self) -> None:
        """Take the store's scheduler lease, or raise ``LeaseHeld`` naming the scheduler that has it.

        A holder on this host whose process no longer exists (``kill -9``) is taken over at once; one on another
        host only once its lease expired (``HOPPER_SCHEDULER_LEASE_SECONDS`` after its last heartbeat).
        """
        started = time.monotonic()
        host, pid = socket.gethostname(), os.getpid()
        taken, info = self.store.lease.acquire(self.lease_id, host, pid, self._lease_seconds)
        if not taken and info.host == host and not psutil.pid_exists(info.pid):
            log.warning("taking over the scheduler lease of %s: that process is gone", info.describe())
            self.store.lease.release(info.holder)
            taken, info = self.store.lease.acquire(self.lease_id, host, pid, self._lease_seconds)
        if not taken:
            raise LeaseHeld(f"another scheduler runs on this store: {info.describe()}; stop it first, or wait "
                            f"until its lease expires {self._lease_seconds:g} s after its last heartbeat")
        self._lease_valid_until = started + self._lease_seconds
        self._lease_lost.clear()

    def _heartbeat(self) -> None:
        """Renew the lease every third of its length; a refused renewal means another scheduler took it."""
        interval = self._lease_seconds / 3
        while not self._lease_stop.wait(interval):
            started = time.monotonic()
            try:
                if self.store.lease.renew(self.lease_id, self._lease_seconds):
                    self._lease_valid_until = started + self._lease_seconds
                else:
                    self._lease_lost.set()
                    return
            except HopperError as exc:  # a store outage: keep trying; dispatch stops once the lease runs out
                log.warning("could not renew the scheduler lease (%s)", exc.message)

    def _lease_ok(self) -> bool:
        """Whether we may dispatch and commit now; re-takes a lease that ran out while nobody else took it."""
        if self._lease_lost.is_set():
            raise LeaseHeld("this scheduler lost the store's scheduler lease to another scheduler; stopping")
        if time.monotonic() < self._lease_valid_until:
            return True
        log.warning("the scheduler lease ran out (store unreachable?); not dispatching until it is renewed")
        try:
            self.acquire_lease()
        except StoreUnavailable:
            return False
        return True

    def _start_lease(self) -> None:
        self.acquire_lease()
        self._lease_stop.clear()
        self._lease_thread = threading.Thread(target=self._heartbeat, name="hopper-lease", daemon=True)
        self._lease_thread.start()

    def _end_lease(self) -> None:
        self._lease_stop.set()
        if self._lease_thread is not None:
            self._lease_thread.join(timeout=5)
            self._lease_thread = None
        if not self._lease_lost.is_set():
            try:
                self.store.lease.release(self.lease_id)
            except HopperError as exc:
                log.warning("could not release the scheduler lease (%s); it expires on its own", exc.message)

    def run(self, *, stop_event: threading.Event | None = None, until_done: bool = False,
            timeout: float | None = None, workload_ids: list[int] | None = None) -> None:
        """Loop until stopped, or (``until_done``) until the given or all workloads have finished.

        Raises:
            LeaseHeld: another scheduler holds this store (before anything starts), or took it over
                while this one could not renew its lease.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = self.settings.poll_interval
        self._start_lease()
        try:
            self.backend.start()
        except BaseException:
            self._end_lease()
            raise
        try:
            while not (stop_event is not None and stop_event.is_set()):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"the scheduler ran for {timeout} s without finishing")
                try:
                    if not self._lease_ok():
                        time.sleep(backoff)
                        backoff = min(backoff * 2, 30.0)
                        continue
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
            try:
                self.backend.shutdown()
                self.chores.close()
            finally:
                self._end_lease()

    def _finished(self, workload_ids: list[int] | None) -> bool:
        if self.backend.in_flight() or self._pending:
            return False
        return not self.store.workloads.any_running(workload_ids)

    def step(self) -> None:
        """One scheduling cycle: commit, top up, dispatch, finish."""
        if not self._recovered:
            self.recover()
            self._undecided.update(wid for wid, _ in self.store.workloads.running())
        busy = bool(self.backend.in_flight())
        has_idle = bool(self.backend.idle_workers())
        timeout = self.settings.poll_interval if busy and not has_idle else 0.0
        # Finished work is taken from the workers before anything else reads the store: when the store is down,
        # it is held here (``buffered``) instead of waiting in the workers' queue.
        self._pending.extend(self.backend.poll(timeout))
        self.chores.tick()
        self._resize_pool()
        while self._pending:
            report = self.ledger.commit(self._pending[0])  # a StoreUnavailable leaves it queued for the next step
            self._pending.pop(0)
            if report is not None:
                self._epoch_done(report)
                self._undecided.add(report.workload_id)
                self._plan_due.add(report.workload_id)
        self._decide()
        self._enforce_budgets()
        running = self.store.workloads.running()
        self._top_up(running)
        dispatched = self._dispatch()
        self._finish_workloads(running)
        if not dispatched and not busy:
            time.sleep(self.settings.poll_interval)

    def _epoch_done(self, report: EpochReport) -> None:
        tb_dir = self.services.tensorboard_dir(report.workload_id) / f"config-{report.config_id}"
        write_scalars(tb_dir, report.epoch, report.metrics)
        if report.config_id not in self._tensorboard_hparams:
            hparams = self.store.configs.get(report.config_id, with_metrics=False).hparams
            write_hparams(tb_dir, hparams, f"config-{report.config_id}")
            self._tensorboard_hparams.add(report.config_id)
        if self.on_epoch:
            self.on_epoch(report)

    # -- procedures ---------------------------------------------------------------------------------------------
    def _decide(self) -> None:
        """Apply the decisions of the procedures whose workloads ended an epoch, before anything is dispatched,
        so a config paused at a rung (or stopped, or exploited) never starts its next epoch."""
        for workload_id in sorted(self._undecided):
            try:
                self._run_procedure(workload_id)
            except (Conflict, InvalidState) as exc:
                # People kept changing its configs between the procedure's reads and writes: next step.
                log.warning("workload %d: decisions deferred (%s)", workload_id, exc.message)
                continue
            except HopperError as exc:
                if isinstance(exc, StoreUnavailable):
                    raise
                self._fail_procedure(workload_id, exc.message)
            except _PROCEDURE_ERRORS as exc:
                self._fail_procedure(workload_id, f"{type(exc).__name__}: {exc}")
            self._undecided.discard(workload_id)

    def _run_procedure(self, workload_id: int, attempts: int = 3) -> None:
        for attempt in range(attempts):
            try:
                self.services.run_procedure(workload_id)
                return
            except (Conflict, InvalidState):
                # A person changed a config between the procedure's read and its write: decide again, on what
                # the store says now, before anything is dispatched.
                if attempt == attempts - 1:
                    raise

    def _fail_procedure(self, workload_id: int, message: str) -> None:
        error = f"procedure failed: {message}"
        self.store.workloads.fail(workload_id, error)
        log.error("workload %d: %s", workload_id, error)

    def _top_up(self, running: list[tuple[int, object]]) -> None:
        proposer = partial(propose, n_workers=self.backend.n_workers)
        for workload_id, updated_at in running:
            if self._exhausted.get(workload_id) == updated_at:
                continue
            try:
                if self.store.workloads.top_up(workload_id, proposer):
                    self._exhausted[workload_id] = updated_at
            except HopperError as exc:
                if isinstance(exc, StoreUnavailable):
                    raise
                self._fail_procedure(workload_id, exc.message)
            except _PROCEDURE_ERRORS as exc:
                # A sampler library raising (Optuna, KerasTuner, hyperopt) fails its workload, not the scheduler.
                self._fail_procedure(workload_id, f"{type(exc).__name__}: {exc}")

    # -- elastic workers ----------------------------------------------------------------------------------------
    def _resize_pool(self) -> None:
        """Apply the worker count people asked for (``hopper workers add/remove``), and report the pool."""
        desired, now = self.store.workers.desired()
        # Applied when the request changes (or at start), not whenever the count differs: a backend may shrink
        # on its own (a Spark executor that never came back), and that stands until people ask again.
        if desired is not None and desired != self._applied_desired:
            self._applied_desired = desired
            current = len(self.backend.worker_ids())
            if desired != current and self.backend.elastic:
                log.info("resizing the worker pool from %d to %d%s", current, desired, " (now)" if now else "")
                self.backend.resize(desired, now=now)
            elif desired != current and not self._pool_warned:
                log.warning("%d workers requested, but the %s backend cannot change its worker count while it runs",
                            desired, self.backend.name)
                self._pool_warned = True
        self._report_pool()

    def _owned(self, shard_counts: set[int]) -> dict[int, Ownership]:
        """Shard ownership for every shard count in use, rebalanced when the workers taking tasks changed."""
        workers = tuple(self.backend.worker_ids())
        if workers != self._owners_of:
            self._ownership = {n: rebalance(n, workers, owned) for n, owned in self._ownership.items()}
            self._owners_of = workers
        for n in shard_counts - set(self._ownership):
            self._ownership[n] = rebalance(n, workers)
        return self._ownership

    def _report_pool(self) -> None:
        # Ownership as it is for the workers taking tasks now: right after a drain the planner has not rebalanced
        # yet, and the report showed the remaining worker with only its old shards (the leaver's looked unowned).
        self._owned(set(self._ownership))
        active, draining = self.backend.worker_ids(), self.backend.draining()
        report = [{"id": w, "name": self.backend.worker_name(w), "state": "active",
                   "shards": {str(n): sorted(owned.get(w, ())) for n, owned in sorted(self._ownership.items())}}
                  for w in active]
        report += [{"id": w, "name": self.backend.worker_name(w), "state": "draining", "shards": {}}
                   for w in draining]
        if report != self._pool_report:
            self.store.workers.report(report)
            self._pool_report = report

    # -- sharing and budgets ------------------------------------------------------------------------------------
    def _worker_seconds(self, *, expected: bool = False) -> dict[int, float]:
        """Workload id -> worker-seconds used: committed sub-epochs (kept by the ledger) plus running ones so far.

        With ``expected`` (fair share) a running sub-epoch counts at least its workload's mean sub-epoch time:
        counted by elapsed time alone, a workload with long sub-epochs would look cheap right after it took a
        worker and be given the next one too.
        """
        live = {t.sub_epoch_id for t in self.backend.in_flight().values()}
        for sub_epoch_id in [s for s in self._running_since if s not in live]:
            del self._running_since[sub_epoch_id]
        used = {wid: seconds for wid, (seconds, _) in self.ledger.used.items()}
        now = time.monotonic()
        for workload_id, since in self._running_since.values():
            elapsed = now - since
            if expected:
                elapsed = max(elapsed, self.ledger.mean_sub_epoch_seconds(workload_id) or 0.0)
            used[workload_id] = used.get(workload_id, 0.0) + elapsed
        return used

    def _enforce_budgets(self) -> None:
        """Mark ``budget_spent`` each running workload whose wall-time, worker-seconds or money budget ran out:
        it gets no new sub-epoch from this step on, and the ones it has running commit as usual."""
        sharing = self.store.workloads.sharing()
        used = self._worker_seconds()
        now = utc_now()
        kept = []
        for row in sharing:
            workload_id, _, _, budget, created_at = row
            reason = budget_exceeded(budget or {}, wall_seconds=(now - created_at).total_seconds(),
                                     worker_seconds=used.get(workload_id, 0.0))
            if reason is not None and self.store.workloads.spend_budget(workload_id, reason):
                log.info("workload %d: %s", workload_id, reason)
                continue
            kept.append(row)
        self._sharing = kept

    def _shares(self) -> dict[int, WorkloadShare]:
        if self._sharing is None:
            self._sharing = self.store.workloads.sharing()
        used = self._worker_seconds(expected=True)
        return {wid: WorkloadShare(float(weight or 1.0), used.get(wid, 0.0), owner or "",
                                   self.ledger.mean_sub_epoch_seconds(wid) or 1.0)
                for wid, weight, owner, _, _ in self._sharing}

    # -- dispatch -----------------------------------------------------------------------------------------------
    def plan(self, idle: list[int]) -> list[Assignment]:
        """Decide, without writing, which config each idle worker trains next (one store read + the policy)."""
        runnable = self.store.schedule.runnable()
        unknown = {row[1] for row in runnable} - set(self._shard_counts)
        if unknown:
            self._shard_counts.update(self.store.schedule.shard_counts(unknown))
        replicated = self._replicated({row[1] for row in runnable})
        snapshot = Snapshot(
            runnable=runnable, visited=self.ledger.visited, replicated=replicated, homes=self.ledger.homes,
            in_flight={t.config_id for t in self.backend.in_flight().values()}, cooling=self.ledger.cooling(),
            idle=idle, n_partitions=self.backend.n_workers,
            owned=self._owned({self._shard_counts[row[1]] for row in runnable if row[1] in self._shard_counts}),
            shard_counts=self._shard_counts, shares=self._shares())
        return self.policy.assign(snapshot)

    # -- execution plans ----------------------------------------------------------------------------------------
    def _replicated(self, workload_ids: set[int]) -> frozenset[int]:
        """The workloads among ``workload_ids`` that run the replicated plan now, choosing the plan of those new
        to this scheduler or whose epoch ended since their last choice."""
        new = workload_ids - set(self._plan_settings)
        if new:
            self._plan_settings.update(self.store.workloads.plan_settings(new))
        for workload_id in sorted(workload_ids):
            if workload_id in self._plan_settings and (workload_id not in self._plans or workload_id in self._plan_due):
                self._choose_plan(workload_id)
                self._plan_due.discard(workload_id)
        replicated = frozenset(w for w in workload_ids if w in self._plans and self._plans[w].plan == REPLICATED)
        self._replicated_datasets = {self._plan_settings[w][1] for w in replicated}
        return replicated

    def _choose_plan(self, workload_id: int) -> PlanChoice:
        requested, dataset_id, private, stored = self._plan_settings[workload_id]
        if dataset_id not in self._datasets:
            self._datasets[dataset_id] = self.store.datasets.get(dataset_id)
        dataset = self._datasets[dataset_id]
        budget_mb = int(getattr(self.settings, "worker_data_memory_mb", 0) or 0)
        choice = choose_plan(requested=requested, dataset_name=dataset.name, dataset_bytes=replicated_bytes(dataset),
                             budget_bytes=budget_mb * 2**20, workers=len(self.backend.worker_ids()) or self.backend.n_workers,
                             train_rows=dataset.n_train, costs=self.ledger.costs_of(workload_id), private=private)
        if stored is None or (stored.get("plan"), stored.get("basis")) != (choice.plan, choice.basis):
            # Recorded when the plan or the rule behind it changes, not at every epoch end (the reason's
            # percentages move a little each time).
            record = choice.record(utc_now())
            self.store.workloads.record_plan(workload_id, record)
            self._plan_settings[workload_id] = (requested, dataset_id, private, record)
            log.info("workload %d: %s", workload_id, choice.reason)
        self._plans[workload_id] = choice
        return choice

    def _dispatch(self) -> int:
        idle = self.backend.idle_workers()
        if not idle:
            return 0
        dispatched = 0
        for worker, config_id, evaluate, shards in self.plan(idle):
            try:
                task = self._start_sub_epoch(config_id, worker, evaluate, shards)
            except Conflict:
                continue  # a user changed the config just now; it is reconsidered next step
            if task is None:
                continue
            self.backend.submit(worker, task)
            dispatched += 1
            self._dispatched += 1
        return dispatched

    def _start_sub_epoch(self, config_id: int, worker: int, evaluate: bool,
                         shards: tuple[int, ...] = ()) -> SubEpochTask | None:
        shards = shards or (worker,)
        start = self.store.schedule.start_sub_epoch(config_id, shards[0], self.backend.worker_name(worker),
                                                    layouts=self._layouts, scripts=self._scripts, shards=shards)
        if start is None:
            return None
        partition = start.partition
        if start.dataset.dataset_id in self._replicated_datasets:
            # A replicated workload holds this dataset whole on every worker: nothing of it is handed over.
            owned = frozenset(range(len(start.dataset.partition_paths)))
        else:
            owned = self._ownership.get(len(start.dataset.partition_paths), {}).get(worker, frozenset(shards))
        self._running_since[start.sub_epoch_id] = (start.workload_id, time.monotonic())
        out_path = join_location(self.settings.checkpoint_location, f"workload-{start.workload_id}",
                                 f"config-{start.config_id}", f"e{start.epoch:04d}-p{partition:03d}-s{start.sub_epoch_id}.npz")
        return SubEpochTask(
            sub_epoch_id=start.sub_epoch_id, config_id=start.config_id, epoch=start.epoch, partition=partition,
            shards=start.shards, owned=tuple(sorted(owned)),
            model_ref=start.model_ref, entry_point=start.entry_point, hparams=start.hparams, dataset=start.dataset,
            out_path=str(out_path), seed=visit_key(start.workload_seed, start.config_id, start.epoch, partition),
            evaluate=evaluate, in_checkpoint=start.in_checkpoint, warm_start=start.warm_start, privacy=start.privacy,
            objectives=start.objectives,
            entry_args=(start.entry_options or {}).get("entry_args") or None,
            bind_globals=(start.entry_options or {}).get("bind_globals") or None, objective=start.objective,
        )

    # -- completion ---------------------------------------------------------------------------------------------
    def _finish_workloads(self, running: list[tuple[int, object]]) -> None:
        exhausted = [wid for wid, updated_at in running if self._exhausted.get(wid) == updated_at]
        for workload_id in self.store.workloads.finish_idle(exhausted):
            log.info("workload %d finished", workload_id)
