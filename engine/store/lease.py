"""The scheduler lease: at most one scheduler dispatches on a store at a time.

Every method is one transaction. ``acquire`` is a compare-and-set: it inserts the single row (id 1) when there
is none, or updates it only where the row is already ours or has expired, and then reads back who holds it. Two
schedulers racing get one winner on SQLite and PostgreSQL alike: the insert collides on the primary key and the
update's WHERE clause is evaluated under the row lock.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_, select, update

from hopper.engine.entities import LeaseInfo
from hopper.engine.errors import Conflict
from hopper.engine.store._common import Repository
from hopper.engine.store.models import SchedulerLeaseRow, utcnow

_LEASE_ID = 1


class LeaseStore(Repository):
    def acquire(self, holder: str, host: str, pid: int, seconds: float) -> tuple[bool, LeaseInfo]:
        """Take the lease if it is free, expired or already ours; return (taken, who holds it now)."""
        for _ in range(5):
            now = utcnow()
            expires = now + timedelta(seconds=seconds)
            try:
                with self._session() as session:
                    row = session.get(SchedulerLeaseRow, _LEASE_ID)
                    if row is None:
                        session.add(SchedulerLeaseRow(id=_LEASE_ID, holder=holder, host=host, pid=pid,
                                                      started_at=now, heartbeat_at=now, expires_at=expires))
                        session.flush()
                    else:
                        session.execute(
                            update(SchedulerLeaseRow)
                            .where(SchedulerLeaseRow.id == _LEASE_ID,
                                   or_(SchedulerLeaseRow.holder == holder, SchedulerLeaseRow.expires_at < now))
                            .values(holder=holder, host=host, pid=pid, started_at=now, heartbeat_at=now,
                                    expires_at=expires)
                            .execution_options(synchronize_session=False))
                    current = session.scalars(select(SchedulerLeaseRow).where(SchedulerLeaseRow.id == _LEASE_ID)
                                              .execution_options(populate_existing=True)).one()
                    info = LeaseInfo.from_row(current)
                    return info.holder == holder, info
            except Conflict:
                continue  # another scheduler inserted the row first (the primary key collided): look again
        raise Conflict("the scheduler lease kept changing hands; try again")

    def renew(self, holder: str, seconds: float) -> bool:
        """Push our lease's expiry forward; False when it is no longer ours (it expired and was taken)."""
        now = utcnow()
        with self._session() as session:
            result = session.execute(
                update(SchedulerLeaseRow)
                .where(SchedulerLeaseRow.id == _LEASE_ID, SchedulerLeaseRow.holder == holder)
                .values(heartbeat_at=now, expires_at=now + timedelta(seconds=seconds))
                .execution_options(synchronize_session=False))
            return result.rowcount == 1

    def release(self, holder: str) -> bool:
        """Give the lease up on a clean exit, so the next scheduler need not wait for it to expire."""
        with self._session() as session:
            result = session.execute(delete(SchedulerLeaseRow).where(SchedulerLeaseRow.id == _LEASE_ID,
                                                                     SchedulerLeaseRow.holder == holder))
            return result.rowcount == 1

    def holder(self) -> LeaseInfo | None:
        """Who holds the lease (expired or not), or None when no scheduler has it."""
        with self._session() as session:
            row = session.scalars(select(SchedulerLeaseRow).where(SchedulerLeaseRow.id == _LEASE_ID)).first()
            return None if row is None else LeaseInfo.from_row(row)
