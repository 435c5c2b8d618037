"""What every repository of the store shares: row lookup with a clear 404, the audit event, the id range."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session

from hopper.engine.errors import NotFound
from hopper.engine.store.models import EventRow


class SessionSource(Protocol):
    """The one thing a repository needs from the ``Store``: a unit of work."""

    def session(self) -> AbstractContextManager[Session]: ...

MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL; larger ones cannot exist


def get_row(session: Session, model: type, object_id: int, what: str, *, lock: bool = False) -> Any:
    """The row, or ``NotFound`` naming the object (``what`` 12 does not exist, field ``what_id``).

    ``lock``: hold the row against other writers until the transaction ends, and read it as committed now (see
    :func:`lock_row`).
    """
    if not (isinstance(object_id, int) and 0 <= object_id <= MAX_ID):
        row = None
    else:
        row = locked_row(session, model, object_id) if lock else session.get(model, object_id)
    if row is None:
        raise NotFound(f"{what} {object_id} does not exist", field=f"{what}_id")
    return row


def locked_row(session: Session, model: type, object_id: int) -> Any:
    """The row (None when missing), locked as :func:`lock_row` says and read as committed now."""
    lock_row(session, model, object_id)
    return session.get(model, object_id, with_for_update=True, populate_existing=True)


def lock_row(session: Session, model: type, object_id: int) -> None:
    """Make this transaction the only writer of a row until it ends; what it reads afterwards is committed data.

    PostgreSQL: the caller's ``SELECT ... FOR UPDATE``. SQLite ignores FOR UPDATE, and its driver runs reads
    outside any transaction until the first write, so two read-then-write transactions can both act on what they
    read before the other committed. A write that changes nothing (no ``onupdate`` timestamp either) opens the
    transaction and takes SQLite's one write lock here instead: another writer waits (busy timeout) until this one
    commits.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text(f"UPDATE {model.__tablename__} SET id = id WHERE id = :id"), {"id": object_id})


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
