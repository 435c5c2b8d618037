"""The worker pool row: people's requested worker count, and what the scheduler reports running.

Every method is one transaction. A resize is relative to the last request (or, before any, to what the
scheduler last reported, or to the configured count), so two people adding a worker each get two more.
"""

from __future__ import annotations

from sqlalchemy import select

from hopper.engine.entities import WorkerPoolInfo
from hopper.engine.errors import Unprocessable
from hopper.engine.store._common import Repository, add_event
from hopper.engine.store.models import WorkerPoolRow, utcnow

_POOL_ID = 1


def _info(row: WorkerPoolRow | None) -> WorkerPoolInfo:
    if row is None:
        return WorkerPoolInfo(None, False, None, None, [], None)
    return WorkerPoolInfo(row.desired, bool(row.remove_now), row.requested_by, row.requested_at,
                          list(row.workers or []), row.reported_at)


def _active(workers: list | None) -> int:
    return sum(1 for w in workers or [] if w.get("state") == "active")


class WorkerPoolStore(Repository):
    def get(self) -> WorkerPoolInfo:
        """The pool as last requested and reported (no row yet: nothing requested, nothing reported)."""
        with self._session() as session:
            return _info(session.get(WorkerPoolRow, _POOL_ID))

    def desired(self) -> tuple[int | None, bool]:
        """(requested worker count or None, whether removals should not wait for running sub-epochs)."""
        with self._session() as session:
            row = session.execute(select(WorkerPoolRow.desired, WorkerPoolRow.remove_now)
                                  .where(WorkerPoolRow.id == _POOL_ID)).first()
            return (None, False) if row is None else (row[0], bool(row[1]))

    def resize(self, change: int, *, actor: str, configured: int, maximum: int, now: bool = False) -> WorkerPoolInfo:
        """Ask for ``change`` more (or, negative, fewer) workers; the scheduler applies it at its next step.

        Raises:
            Unprocessable: the pool would have no worker left, or more than ``maximum``.
        """
        with self._session() as session:
            row = session.get(WorkerPoolRow, _POOL_ID)
            if row is None:
                row = WorkerPoolRow(id=_POOL_ID, remove_now=False)
                session.add(row)
            base = row.desired if row.desired is not None else (_active(row.workers) or configured)
            wanted = base + change
            if wanted < 1:
                raise Unprocessable(f"cannot remove {-change} worker{'s' if -change != 1 else ''}: the pool has "
                                    f"{base} and at least one worker must stay", field="remove")
            if wanted > maximum:
                raise Unprocessable(f"cannot add {change} worker{'s' if change != 1 else ''}: the pool has {base} "
                                    f"and at most {maximum} are allowed (datasets are cut into shards for that "
                                    f"many: raise HOPPER_MAX_WORKERS and register datasets again to go further)",
                                    field="add")
            before = {"desired": base}
            row.desired, row.remove_now = wanted, bool(now and change < 0)
            row.requested_by, row.requested_at = actor, utcnow()
            session.flush()
            add_event(session, actor, "resize_workers", "worker_pool", None, before,
                      {"desired": wanted, "now": row.remove_now})
            return _info(row)

    def report(self, workers: list[dict]) -> None:
        """The scheduler's account of the workers it runs (replaces the previous one)."""
        with self._session() as session:
            row = session.get(WorkerPoolRow, _POOL_ID)
            if row is None:
                row = WorkerPoolRow(id=_POOL_ID, remove_now=False)
                session.add(row)
            row.workers, row.reported_at = workers, utcnow()
