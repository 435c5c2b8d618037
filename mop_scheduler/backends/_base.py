"""The backend interface: run "train config C on partition P from checkpoint K" on a worker.

A backend never chooses what to train; the scheduler does. Dispatch is asynchronous so that the
scheduler can keep every worker busy: ``submit`` hands a task to an idle worker, ``poll`` returns
what finished (or was lost with a dead worker).
"""

from __future__ import annotations

import queue
from abc import ABC, abstractmethod
from dataclasses import dataclass

from hopper.mop_scheduler.worker.protocol import SubEpochResult, SubEpochTask


@dataclass(frozen=True)
class Lost:
    """A sub-epoch whose worker died or hung; nothing it did is committed."""

    task: SubEpochTask
    worker: int
    reason: str
    hung: bool = False
    #: the config itself caused it (hung, over the memory limit): fail it instead of re-running
    fatal: bool = False


Completion = SubEpochResult | Lost


def drain(source: queue.Queue, timeout: float) -> list:
    """Wait up to ``timeout`` seconds for the first item, then take every item already queued."""
    items = []
    try:
        items.append(source.get(timeout=timeout) if timeout > 0 else source.get_nowait())
        while True:
            items.append(source.get_nowait())
    except queue.Empty:
        return items


class Backend(ABC):
    """Runs sub-epochs on ``n_workers`` workers, named by integer ids; the scheduler decides which data shards
    each worker owns (``hopper.mop_scheduler.shards``)."""

    name = "base"
    #: whether ``resize`` can change the worker count while sub-epochs run
    elastic = False

    def __init__(self, n_workers: int) -> None:
        self.n_workers = n_workers
        # worker -> (the task it runs, monotonic start time); subclasses add and remove entries
        self._running: dict[int, tuple[SubEpochTask, float]] = {}

    @abstractmethod
    def start(self) -> None:
        """Start the workers (idempotent)."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop every worker; in-flight sub-epochs are abandoned (they are re-run later)."""

    @abstractmethod
    def idle_workers(self) -> list[int]:
        """Workers ready for a task."""

    @abstractmethod
    def submit(self, worker: int, task: SubEpochTask) -> None:
        """Start ``task`` on an idle ``worker``."""

    @abstractmethod
    def poll(self, timeout: float) -> list[Completion]:
        """Wait up to ``timeout`` seconds and return finished or lost sub-epochs."""

    def in_flight(self) -> dict[int, SubEpochTask]:
        """Worker index -> the task it is running."""
        return {w: task for w, (task, _) in self._running.items()}

    def worker_ids(self) -> list[int]:
        """The workers that take new tasks (own shards), in id order; draining workers are not among them."""
        return list(range(self.n_workers))

    def draining(self) -> list[int]:
        """Workers being removed: they finish their running sub-epoch and take no new one."""
        return []

    def resize(self, n_workers: int, *, now: bool = False) -> None:
        """Grow or shrink to ``n_workers`` workers. A removed worker finishes its running sub-epoch first;
        ``now``: it is stopped at once and its sub-epoch comes back from ``poll`` as ``Lost`` (re-run)."""
        raise NotImplementedError(f"the {self.name} backend has a fixed number of workers")

    def worker_name(self, worker: int) -> str:
        return f"{self.name}-{worker}"

    def worker_pids(self) -> dict[int, int]:
        return {}
