"""Request bodies of the REST API (pydantic); the OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hopper.engine.specs import DatasetSpec, WorkloadSpec

Scalar = int | float | str | bool | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkloadPatch(_Body):
    status: Literal["paused", "running", "stopped"] | None = None
    weight: float | None = Field(default=None, gt=0, le=10_000,
                                 description="fair-share weight against the other runnable workloads")
    max_epochs: int | None = Field(default=None, ge=1, le=10_000)
    max_configs: int | None = Field(default=None, ge=1, le=100_000)
    search_space: dict[str, Any] | None = None


class AddConfigBody(_Body):
    hparams: dict[str, Scalar]
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)


class VersionedBody(_Body):
    version: int | None = Field(default=None, ge=1, description="expected config version (or If-Match)")


class CloneBody(VersionedBody):
    overrides: dict[str, Scalar] = Field(default_factory=dict)
    priority: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)


class PriorityBody(VersionedBody):
    priority: int = Field(ge=-1_000_000, le=1_000_000)


class DrillDownBody(_Body):
    space: dict[str, Any]
    name: str | None = Field(default=None, min_length=1, max_length=200)
    procedure: Literal["grid", "random", "tpe"] = "grid"
    max_configs: int | None = Field(default=None, ge=1, le=100_000)
    max_epochs: int | None = Field(default=None, ge=1, le=10_000)


class ScriptBody(_Body):
    # No NUL: it is the file name Python compiles under, and PostgreSQL text cannot hold it.
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")
    content: str = Field(min_length=1, max_length=1_000_000)
    entry_point: str = Field(default="build_model", min_length=1, max_length=200)
    dataset: str | int | None = None


class RegisterDeviceBody(_Body):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    interpreter: Literal["tflite-runtime", "ai-edge-litert"]
    hardware: dict[str, Any] = Field(default_factory=dict)


class DeviceRefBody(_Body):
    device_id: int = Field(ge=0, le=2**31 - 1)


class ProfileResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    latency_p50_ms: float = Field(ge=0)
    latency_p95_ms: float = Field(ge=0)
    size_bytes: int = Field(ge=0)
    peak_memory_bytes: int | None = Field(default=None, ge=0)
    energy_mj: float | None = Field(default=None, ge=0)
    runs: int = Field(default=0, ge=0)


class CompleteJobBody(DeviceRefBody):
    result: ProfileResult


class FailJobBody(DeviceRefBody):
    error: str = Field(min_length=1, max_length=4000)
    retryable: bool = True


class ProfileBody(_Body):
    device_id: int | None = Field(default=None, ge=0, le=2**31 - 1, description="one device (default: any)")
    all_devices: bool = Field(default=False, description="one job per online device")
    runs: int | None = Field(default=None, ge=1, le=100_000)
    warmup: int | None = Field(default=None, ge=0, le=100_000)


class ExportRequestBody(_Body):
    quantizations: list[Literal["float32", "int8"]] = Field(default_factory=lambda: ["float32", "int8"],
                                                            min_length=1, max_length=2)
    profile: bool = Field(default=False, description="then profile each export on every online device")


class DeployBody(_Body):
    format: Literal["tflite", "keras"] = "tflite"
    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    port: int | None = Field(default=None, ge=1024, le=65535)


class WorkersBody(_Body):
    """Resize the worker pool: exactly one of ``add`` or ``remove``."""

    # The document states "exactly one" itself, so a request it calls valid is never refused as malformed.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["add"], "properties": {"add": {"type": "integer"}, "remove": {"type": "null"},
                                             "now": {"const": False}}},
        {"required": ["remove"], "properties": {"remove": {"type": "integer"}, "add": {"type": "null"}}},
    ]})

    add: int | None = Field(default=None, ge=1, le=1000, description="workers to start")
    remove: int | None = Field(default=None, ge=1, le=1000, description="workers to stop")
    now: bool = Field(default=False, description="with remove: stop them at once; their running sub-epochs are "
                                                 "re-run elsewhere (default: they finish them first)")

    @model_validator(mode="after")
    def _one_change(self) -> WorkersBody:
        if (self.add is None) == (self.remove is None):
            raise ValueError("give exactly one of add or remove")
        if self.now and self.add is not None:
            raise ValueError("now applies to remove only")
        return self


BODIES: dict[str, type[BaseModel]] = {
    "WorkloadSpec": WorkloadSpec,
    "DatasetSpec": DatasetSpec,
    "WorkloadPatch": WorkloadPatch,
    "AddConfigBody": AddConfigBody,
    "VersionedBody": VersionedBody,
    "CloneBody": CloneBody,
    "PriorityBody": PriorityBody,
    "DrillDownBody": DrillDownBody,
    "ScriptBody": ScriptBody,
    "RegisterDeviceBody": RegisterDeviceBody,
    "DeviceRefBody": DeviceRefBody,
    "CompleteJobBody": CompleteJobBody,
    "FailJobBody": FailJobBody,
    "ProfileBody": ProfileBody,
    "ExportRequestBody": ExportRequestBody,
    "DeployBody": DeployBody,
    "WorkersBody": WorkersBody,
}


class ScheduleBody(_Body):
    cron: str = Field(min_length=1, max_length=200, description='5 fields: minute hour day month weekday ("0 2 * * *")')
    spec: WorkloadSpec = Field(description="the workload launched at each run, validated now as a launch would")
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="IANA zone the cron is read in")
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[^\x00]*$",
                             description="default: the spec's name")


class SchedulePatch(_Body):
    enabled: bool = Field(description="false stops launching runs; true launches from the next cron time on")


class NoteBody(_Body):
    text: str = Field(min_length=1, max_length=20_000, description="Markdown: why a person stopped, cloned or chose")
