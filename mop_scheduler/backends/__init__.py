"""Scheduler backends: where sub-epochs run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hopper.engine.errors import ValidationError
from hopper.mop_scheduler.backends._base import Backend, Completion, Lost
from hopper.mop_scheduler.backends.local import LocalBackend

if TYPE_CHECKING:
    from hopper.settings import Settings

BACKENDS = ("local", "spark")


def make_backend(settings: Settings, *, threads_per_worker: int = 1) -> Backend:
    """The backend ``settings.backend`` names, configured from the settings."""
    common = {"threads_per_worker": threads_per_worker, "sub_epoch_timeout": settings.sub_epoch_timeout,
              "model_cache": settings.worker_model_cache,
              "data_memory_mb": getattr(settings, "worker_data_memory_mb", 0),
              "allowed_roots": (*map(str, settings.data_roots), str(settings.artifact_dir))}
    if settings.backend == "local":
        return LocalBackend(settings.workers, memory_limit_mb=settings.worker_memory_mb,
                            sandbox_user=settings.sandbox_user, checkpoint_dir=settings.checkpoint_location, **common)
    if settings.backend == "spark":
        from hopper.mop_scheduler.backends.spark import SparkBackend

        return SparkBackend(settings.workers, master=settings.spark_master, driver_host=settings.spark_driver_host,
                            lost_executor_grace=settings.spark_lost_executor_grace_seconds, **common)
    raise ValidationError(f"unknown backend {settings.backend!r}; use one of {', '.join(BACKENDS)}", field="backend")


__all__ = ["BACKENDS", "Backend", "Completion", "LocalBackend", "Lost", "make_backend"]
