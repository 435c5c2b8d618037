"""Scheduled workloads: the schedule table and its run history.

Firing a due run exactly once rests on one transaction, ``claim``: a conditional update that moves the schedule's
``next_run_at`` from the due time to the next one (only where it still holds that due time) and the insert of
the run row, unique per (schedule, due time). Of two firers racing (two web processes, a scheduler and its
restart), the second finds ``next_run_at`` already moved (the update matches no row) or collides on the unique
key, and gets ``None``: on SQLite the writers serialise on the database lock, on PostgreSQL the update waits for
the first transaction's row lock and then re-checks its WHERE clause.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from hopper.engine.entities import ScheduleInfo, ScheduleRunInfo
from hopper.engine.errors import Conflict
from hopper.engine.status import ScheduleRunStatus, check_transition
from hopper.engine.store._common import Repository, add_event, get_row
from hopper.engine.store.models import ScheduleRow, ScheduleRunRow, utcnow


class CronScheduleStore(Repository):
    def add(self, *, actor: str, name: str, cron: str, timezone: str, spec: dict,
            next_run_at: datetime) -> ScheduleInfo:
        """Insert an enabled schedule whose first run is due at ``next_run_at`` (UTC)."""
        with self._session() as session:
            row = ScheduleRow(name=name, cron=cron, timezone=timezone, spec=spec, enabled=True,
                              next_run_at=next_run_at, created_by=actor)
            session.add(row)
            session.flush()
            add_event(session, actor, "add_schedule", "schedule", row.id,
                      after={"name": name, "cron": cron, "timezone": timezone})
            return ScheduleInfo.from_row(row)

    def list(self) -> list[ScheduleInfo]:
        with self._session() as session:
            return [ScheduleInfo.from_row(r) for r in session.scalars(select(ScheduleRow).order_by(ScheduleRow.id))]

    def get(self, schedule_id: int) -> ScheduleInfo:
        with self._session() as session:
            return ScheduleInfo.from_row(get_row(session, ScheduleRow, schedule_id, "schedule"))

    def set_enabled(self, schedule_id: int, enabled: bool, *, next_run_at: datetime, actor: str) -> ScheduleInfo:
        """Enable (its next run counted from now: runs missed while disabled never fire) or disable a schedule."""
        with self._session() as session:
            row = get_row(session, ScheduleRow, schedule_id, "schedule")
            before = {"enabled": row.enabled}
            if enabled and not row.enabled:
                row.next_run_at = next_run_at
            row.enabled = enabled
            add_event(session, actor, "enable_schedule" if enabled else "disable_schedule", "schedule", schedule_id,
                      before, {"enabled": enabled})
            session.flush()
            return ScheduleInfo.from_row(row)

    def due(self, now: datetime) -> list[ScheduleInfo]:
        """Enabled schedules whose next run is due at ``now`` (UTC) or earlier."""
        with self._session() as session:
            return [ScheduleInfo.from_row(r) for r in session.scalars(
                select(ScheduleRow).where(ScheduleRow.enabled.is_(True), ScheduleRow.next_run_at <= now)
                .order_by(ScheduleRow.next_run_at, ScheduleRow.id))]

    def claim(self, schedule_id: int, due_at: datetime, next_run_at: datetime, claimer: str) -> ScheduleRunInfo | None:
        """Claim the run due at ``due_at`` and move the schedule on to ``next_run_at``; None when another firer
        claimed it first (or the schedule was disabled or changed meanwhile)."""
        try:
            with self._session() as session:
                moved = session.execute(
                    update(ScheduleRow)
                    .where(ScheduleRow.id == schedule_id, ScheduleRow.next_run_at == due_at,
                           ScheduleRow.enabled.is_(True))
                    .values(next_run_at=next_run_at, updated_at=utcnow())
                    .execution_options(synchronize_session=False))
                if moved.rowcount != 1:
                    return None
                run = ScheduleRunRow(schedule_id=schedule_id, due_at=due_at, claimed_by=claimer[:100],
                                     status=ScheduleRunStatus.CLAIMED)
                session.add(run)
                session.flush()
                return ScheduleRunInfo.from_row(run)
        except Conflict:
            return None  # the unique (schedule, due time) key: someone else's claim committed first

    def finish_run(self, run_id: int, *, workload_id: int | None = None, error: str | None = None) -> ScheduleRunInfo:
        """Record what a claimed run did: the workload it launched, or the error that stopped the launch."""
        with self._session() as session:
            run = get_row(session, ScheduleRunRow, run_id, "schedule_run")
            target = ScheduleRunStatus.LAUNCHED if error is None else ScheduleRunStatus.FAILED
            check_transition(run.status, target, what=f"schedule run {run_id}")
            run.status, run.workload_id, run.error = target, workload_id, None if error is None else error[:20_000]
            session.flush()
            return ScheduleRunInfo.from_row(run)

    def abandon_stale_claims(self, claimed_before: datetime) -> list[ScheduleRunInfo]:
        """Runs still claimed since before ``claimed_before``: their firer stopped between the claim and the
        record of its launch. They are marked failed, never launched again (the launch may have happened)."""
        with self._session() as session:
            rows = list(session.scalars(select(ScheduleRunRow).where(
                ScheduleRunRow.status == ScheduleRunStatus.CLAIMED, ScheduleRunRow.claimed_at < claimed_before)))
            for run in rows:
                check_transition(run.status, ScheduleRunStatus.FAILED, what=f"schedule run {run.id}")
                run.status = ScheduleRunStatus.FAILED
                run.error = (f"{run.claimed_by} stopped after claiming this run and before recording its launch; "
                             "not launched again (look for a workload launched by this schedule at that time)")
            session.flush()
            return [ScheduleRunInfo.from_row(r) for r in rows]

    def runs(self, schedule_id: int, limit: int = 200) -> list[ScheduleRunInfo]:
        """A schedule's runs, newest first."""
        with self._session() as session:
            get_row(session, ScheduleRow, schedule_id, "schedule")
            return [ScheduleRunInfo.from_row(r) for r in session.scalars(
                select(ScheduleRunRow).where(ScheduleRunRow.schedule_id == schedule_id)
                .order_by(ScheduleRunRow.due_at.desc(), ScheduleRunRow.id.desc()).limit(limit))]
