"""Request bodies of the REST API (pydantic); the OpenAPI document is generated from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hopper.engine.specs import DatasetSpec, WorkloadSpec

Scalar = int | float | str | bool | None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkloadPatch(_Body):
    status: Literal["paused", "running"] | None = None
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
    name: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=1_000_000)
    entry_point: str = Field(default="build_model", min_length=1, max_length=200)
    dataset: str | int | None = None


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
}
