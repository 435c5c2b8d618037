"""The SQL config store (SQLite by default, PostgreSQL for teams)."""

from hopper.engine.store._store import Store
from hopper.engine.store.models import (
    Base,
    CheckpointRow,
    ConfigRow,
    DatasetRow,
    EventRow,
    ExportRow,
    MetricRow,
    ScriptRow,
    SubEpochRow,
    WorkloadRow,
    utcnow,
)

__all__ = [
    "Base",
    "CheckpointRow",
    "ConfigRow",
    "DatasetRow",
    "EventRow",
    "ExportRow",
    "MetricRow",
    "ScriptRow",
    "Store",
    "SubEpochRow",
    "WorkloadRow",
    "utcnow",
]
