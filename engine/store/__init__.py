"""The SQL config store (SQLite by default, PostgreSQL for teams)."""

from hopper.engine.store._store import Store
from hopper.engine.store.models import (
    Base,
    CheckpointRow,
    ConfigRow,
    DatasetRow,
    DecisionRow,
    DeploymentRow,
    DeviceRow,
    EventRow,
    ExportRequestRow,
    ExportRow,
    MetricRow,
    ProfileJobRow,
    ProfileRow,
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
    "DecisionRow",
    "DeploymentRow",
    "DeviceRow",
    "EventRow",
    "ExportRequestRow",
    "ExportRow",
    "MetricRow",
    "ProfileJobRow",
    "ProfileRow",
    "ScriptRow",
    "Store",
    "SubEpochRow",
    "WorkloadRow",
    "utcnow",
]
