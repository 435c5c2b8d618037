"""Administration: the audit log, where TensorBoard logs lie, and whether the store answers."""

from __future__ import annotations

from pathlib import Path

from hopper.engine.entities import EventInfo, NoteInfo
from hopper.engine.errors import ValidationError
from hopper.engine.services._base import ServiceContext, default_actor

#: The longest note kept (a page of Markdown); longer text is refused, not cut.
MAX_NOTE_CHARS = 20_000


class AdminServices(ServiceContext):
    """The audit log, people's notes and operational reads."""

    def add_note(self, object_type: str, object_id: int, text: str, *, actor: str | None = None) -> NoteInfo:
        """Keep a person's note (Markdown) on a workload or a config; audited with its text.

        Raises:
            ValidationError: empty or longer than 20,000 characters (``field`` "text"), or an unknown object type.
            NotFound: no such workload or config.
        """
        if object_type not in ("workload", "config"):
            raise ValidationError("a note is about a workload or a config", field="object_type")
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("write something: an empty note says nothing", field="text")
        if len(text) > MAX_NOTE_CHARS:
            raise ValidationError(f"a note holds at most {MAX_NOTE_CHARS} characters, this one {len(text)}",
                                  field="text")
        return self.store.notes.add(object_type, object_id, text.strip(), actor=actor or default_actor())

    def list_notes(self, object_type: str, object_id: int) -> list[NoteInfo]:
        """The notes on a workload or a config, oldest first (``NotFound`` when it does not exist)."""
        if object_type not in ("workload", "config"):
            raise ValidationError("a note is about a workload or a config", field="object_type")
        return self.store.notes.list(object_type, object_id)

    def list_events(self, *, limit: int = 200, object_type: str | None = None,
                    object_id: int | None = None) -> list[EventInfo]:
        """The audit log, newest first: who did what to which object, with before/after."""
        return self.store.events.list(limit=limit, object_type=object_type, object_id=object_id)

    def tensorboard_dir(self, workload_id: int) -> Path:
        """The directory of a workload's TensorBoard event files (one sub-directory per config)."""
        return self.settings.artifact_dir / "tensorboard" / f"workload-{workload_id}"

    def ping_store(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers a trivial query (health checks)."""
        self.store.ping()
