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
    """Runs sub-epochs on ``n_workers`` workers; worker ``i`` owns data partition ``i``."""

    name = "base"

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

    def worker_name(self, worker: int) -> str:
        return f"{self.name}-{worker}"

    def worker_pids(self) -> dict[int, int]:
        return {}
