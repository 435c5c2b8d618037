"""The worker pool as people steer it: list the workers, add or remove some while workloads run.

The scheduler is another process: these actions only write the requested count to the store, and the
scheduler applies it at its next step (within a poll interval), like every other steering change.
"""

from __future__ import annotations

from hopper.engine.entities import WorkerPoolInfo
from hopper.engine.errors import ValidationError
from hopper.engine.services._base import ServiceContext, default_actor


def _count(n: object, field: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValidationError(f"{field} must be a whole number of workers, at least 1 (got {n!r})", field=field)
    return n


class WorkerServices(ServiceContext):
    def list_workers(self) -> WorkerPoolInfo:
        """The requested worker count and the workers the scheduler last reported, with the shards they own."""
        return self.store.workers.get()

    def add_workers(self, n: int, *, actor: str | None = None) -> WorkerPoolInfo:
        """Ask for ``n`` more workers; they start, take a balanced share of the shards and load them on first use.

        Raises:
            ValidationError: ``n`` is not a positive whole number.
            Unprocessable: the pool would pass ``max_workers``.
        """
        return self.store.workers.resize(_count(n, "add"), actor=actor or default_actor(),
                                         configured=self.settings.workers, maximum=self.settings.worker_limit)

    def remove_workers(self, n: int, *, now: bool = False, actor: str | None = None) -> WorkerPoolInfo:
        """Ask for ``n`` fewer workers. Each finishes its running sub-epoch first (``now``: it stops at once, and
        that sub-epoch is re-run elsewhere); its shards go to the others.

        Raises:
            ValidationError: ``n`` is not a positive whole number.
            Unprocessable: no worker would be left.
        """
        return self.store.workers.resize(-_count(n, "remove"), actor=actor or default_actor(), now=now,
                                         configured=self.settings.workers, maximum=self.settings.worker_limit)
