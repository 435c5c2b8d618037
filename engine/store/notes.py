"""Notes on workloads and configs: written once (audited in the same transaction), listed oldest first."""

from __future__ import annotations

from sqlalchemy import select

from hopper.engine.entities import NoteInfo
from hopper.engine.store._common import Repository, add_event, get_row
from hopper.engine.store.models import ConfigRow, NoteRow, WorkloadRow

#: What a note may be about, and the row that must exist for it.
NOTE_OBJECTS = {"workload": WorkloadRow, "config": ConfigRow}


class NoteStore(Repository):
    def add(self, object_type: str, object_id: int, text: str, *, actor: str) -> NoteInfo:
        """A note on an existing workload or config, and its ``add_note`` audit event (the text in ``after``)."""
        with self._session() as session:
            get_row(session, NOTE_OBJECTS[object_type], object_id, object_type)
            row = NoteRow(object_type=object_type, object_id=object_id, author=actor, text=text)
            session.add(row)
            session.flush()
            add_event(session, actor, "add_note", object_type, object_id, after={"note_id": row.id, "text": text})
            return NoteInfo.from_row(row)

    def list(self, object_type: str, object_id: int) -> list[NoteInfo]:
        """The notes on one workload or config, oldest first (``NotFound`` when the object does not exist)."""
        with self._session() as session:
            get_row(session, NOTE_OBJECTS[object_type], object_id, object_type)
            rows = session.scalars(select(NoteRow).where(NoteRow.object_type == object_type,
                                                         NoteRow.object_id == object_id).order_by(NoteRow.id))
            return [NoteInfo.from_row(r) for r in rows]
