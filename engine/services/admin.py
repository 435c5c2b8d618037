"""Administration: the audit log, where TensorBoard logs lie, and whether the store answers."""

from __future__ import annotations

from pathlib import Path

from hopper.engine.entities import EventInfo
from hopper.engine.services._base import ServiceContext


class AdminServices(ServiceContext):
    """The audit log and operational reads."""

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
