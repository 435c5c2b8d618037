"""What every repository of the store shares: row lookup with a clear 404, the audit event, the id range."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy.orm import Session

from hopper.engine.errors import NotFound
from hopper.engine.store.models import EventRow


class SessionSource(Protocol):
    """The one thing a repository needs from the ``Store``: a unit of work."""

    def session(self) -> AbstractContextManager[Session]: ...

MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL; larger ones cannot exist


def get_row(session: Session, model: type, object_id: int, what: str) -> Any:
    """The row, or ``NotFound`` naming the object (``what`` 12 does not exist, field ``what_id``)."""
    row = session.get(model, object_id) if isinstance(object_id, int) and 0 <= object_id <= MAX_ID else None
    if row is None:
        raise NotFound(f"{what} {object_id} does not exist", field=f"{what}_id")
    return row


def add_event(session: Session, actor: str, action: str, object_type: str, object_id: int | None,
              before: dict | None = None, after: dict | None = None) -> None:
    """Append to the audit log inside the caller's transaction, so the change and its record commit together."""
    session.add(EventRow(actor=actor, action=action, object_type=object_type, object_id=object_id,
                         before=before, after=after))


class Repository:
    """A group of store methods over a few tables; each public method is one transaction."""

    def __init__(self, store: SessionSource) -> None:
        self._store = store

    def _session(self) -> AbstractContextManager[Session]:
        return self._store.session()
