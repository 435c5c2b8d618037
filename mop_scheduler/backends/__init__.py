"""Scheduler backends: where sub-epochs run."""

from hopper.mop_scheduler.backends._base import Backend, Completion, Lost
from hopper.mop_scheduler.backends.local import LocalBackend

__all__ = ["Backend", "Completion", "LocalBackend", "Lost"]
