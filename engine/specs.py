"""Input specs (workload, dataset) validated with pydantic; errors become ``ValidationError`` with a field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from hopper.engine.errors import ValidationError

#: Keys of entry_args / bind_globals: ASCII Python identifiers (the document and the validator say the same).
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ObjectiveSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(min_length=1, max_length=100)
    direction: Literal["max", "min"]
    cost_matrix: list[list[float]] | None = Field(
        default=None, description="for val_cost: cost of predicting column j for true class i (K x K, >= 0)")

    def stored(self) -> dict:
        """The objective as the workload keeps it (no empty options)."""
        return self.model_dump(exclude_none=True)


class PrivacySpec(BaseModel):
    """Differentially private training (DP-SGD) for every config of a workload.

    ``noise_multiplier``, ``l2_norm_clip`` and ``microbatches`` may also appear in the search space or a
    config's hparams, where they override these workload-wide values (see ``hopper.engine.privacy.plan``).
    """

    # The document says what _one_noise_source enforces: exactly one of the two is a number.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["noise_multiplier"], "properties": {"noise_multiplier": {"type": "number"}}},
        {"required": ["target_epsilon"], "properties": {"target_epsilon": {"type": "number"}}}]})
    l2_norm_clip: float = Field(default=1.0, gt=0.0, le=1e6,
                                description="each example's gradient is clipped to this L2 norm (C)")
    noise_multiplier: float | None = Field(default=None, ge=0.0, le=1e4,
                                           description="Gaussian noise std as a multiple of C (sigma)")
    target_epsilon: float | None = Field(default=None, gt=0.0, le=1e4,
                                         description="calibrate sigma so that max_epochs spend at most this")
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0, description="the delta of (epsilon, delta)-DP; keep < 1/N")
    microbatches: int | None = Field(default=None, ge=1, le=1_000_000,
                                     description="clip per microbatch instead of per example (faster, noisier)")
    accountant: Literal["rdp", "pld"] = "rdp"

    @model_validator(mode="after")
    def _one_noise_source(self) -> PrivacySpec:
        # Both would be ambiguous (which one wins?), neither leaves the noise undefined.
        if (self.noise_multiplier is None) == (self.target_epsilon is None):
            raise PydanticCustomError(
                "privacy_noise",
                "set exactly one of privacy.noise_multiplier (>= 0) or privacy.target_epsilon (> 0), got "
                "{got}", {"got": "both" if self.noise_multiplier is not None else "neither"})
        return self

    def warnings(self, n_rows: int) -> list[str]:
        """Advice that does not block a launch: a delta of 1/N or more lets a mechanism leak a whole row."""
        out = []
        if n_rows > 0 and self.delta >= 1.0 / n_rows:
            out.append(f"privacy.delta={self.delta:g} is not below 1/N = {1.0 / n_rows:.3g} for {n_rows} training "
                       f"rows: such a guarantee allows releasing a whole example; use delta <= {0.1 / n_rows:.1g}")
        if self.noise_multiplier == 0:
            out.append("privacy.noise_multiplier=0 clips gradients but adds no noise: epsilon is infinite")
        return out


class NotifySpec(BaseModel):
    """Who is told when a workload ends (done, failed, budget spent): a JSON summary POSTed to ``webhook``."""

    model_config = ConfigDict(extra="forbid")
    webhook: str = Field(min_length=8, max_length=2000, pattern=r"^https?://[^\s/?#]+[^\s]*$",
                         description="an http(s) URL that receives a POST with the workload's summary when it ends")


class BudgetSpec(BaseModel):
    """What a workload may spend; when one limit is reached its running sub-epochs finish and it is
    ``budget_spent``. Each limit is optional; money needs ``price_per_worker_hour`` in the settings."""

    model_config = ConfigDict(extra="forbid")
    wall_seconds: float | None = Field(default=None, gt=0, le=10**8, description="seconds since launch")
    worker_seconds: float | None = Field(default=None, gt=0, le=10**10,
                                         description="worker time its sub-epochs use (running ones included)")
    money: float | None = Field(default=None, gt=0, le=10**9,
                                description="worker-seconds / 3600 x the price_per_worker_hour setting")


class WorkloadSpec(BaseModel):
    """What a user submits to launch a workload (YAML/JSON file, REST body, UI wizard)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    model: str | None = Field(default=None, description="a roster model name")
    script: int | None = Field(default=None, description="id of an uploaded, validated script")
    dataset: str | int
    procedure: Literal["grid", "random", "tpe", "manual", "asha", "hyperband", "pbt", "bayesian", "evolution",
                       "nsga2", "motpe"] = "grid"
    procedure_options: dict[str, Any] = Field(
        default_factory=dict, description="the procedure's options (asha: min_epochs, eta, sampler; pbt: population, "
        "interval, quantile, resample_probability; median_stop on any), validated by the procedure")
    space: dict[str, Any] | None = None
    advisor: bool = Field(default=False, description="the procedure suggests its decisions (stop, pause, promote, "
                                                     "exploit) to people instead of applying them")
    objectives: list[ObjectiveSpec] = Field(
        default_factory=lambda: [ObjectiveSpec(metric="val_accuracy", direction="max")], min_length=1
    )
    max_epochs: int = Field(default=3, ge=1, le=10_000)
    max_configs: int | None = Field(default=None, ge=1, le=100_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    export_top_k: int | None = Field(default=None, ge=1, le=100,
                                     description="when the workload is done, export (and profile) its best k configs")
    privacy: PrivacySpec | None = Field(default=None, description="train every config with DP-SGD")
    notify: NotifySpec | None = Field(default=None, description="POST a summary to a webhook when the workload ends")
    weight: float = Field(default=1.0, gt=0, le=10_000,
                          description="its share of the workers against other runnable workloads (fair share)")
    budget: BudgetSpec | None = Field(default=None, description="wall-time, worker-seconds and money limits")
    plan: Literal["auto", "mop", "replicated"] | None = Field(
        default=None, description="execution plan: mop partitions the data and moves models between workers; "
        "replicated gives every worker all the data and trains a config a whole epoch per dispatch; auto lets the "
        "scheduler choose from the data's size and measured hop costs; left out: the default_plan setting (auto "
        "unless set; README, Execution plans)")
    entry_args: dict[str, Any] | None = Field(
        default=None, description="constructor arguments of a script's HyperModel class entry (keyword: value)",
        json_schema_extra={"anyOf": [{"type": "object", "propertyNames": {"pattern": _IDENTIFIER}}, {"type": "null"}]})
    bind_globals: dict[str, Literal["x", "y", "frame"]] | None = Field(
        default=None, description="script globals bound to the training sample before the script runs "
                                  "(x_train: x, y_train: y, train_dataframe: frame)",
        json_schema_extra={"anyOf": [{"type": "object", "propertyNames": {"pattern": _IDENTIFIER},
                                      "additionalProperties": {"enum": ["x", "y", "frame"]}}, {"type": "null"}]})

    @field_validator("entry_args", "bind_globals")
    @classmethod
    def _identifier_keys(cls, value: dict | None) -> dict | None:
        for key in value or {}:
            if not re.match(_IDENTIFIER, key):
                raise PydanticCustomError("identifier", "'{key}' is not a Python identifier", {"key": key})
        return value

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives_mapping(cls, value: Any) -> Any:
        # Accept the short form {val_accuracy: max, loss: min} as well as a list.
        if isinstance(value, dict):
            return [{"metric": k, "direction": v} for k, v in value.items()]
        return value


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")
    path: str = Field(min_length=1, max_length=4096)
    format: Literal["csv", "parquet", "npz", "image_folder"] | None = None
    feature_columns: list[str] | None = None
    # One column, or several that together hold k values per row (one-hot, multi-label, multi-output regression).
    label_column: str | list[str] | None = None
    task: Literal["classification", "regression"] | None = None
    # How the labels are given; inferred from the values when left out (README, "Labels").
    label_kind: Literal["sparse", "one_hot", "multi_label", "regression"] | None = None
    validation_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)
    seed: int = Field(default=0, ge=0)
    image_size: tuple[int, int] | None = None


def parse_spec(model: type[BaseModel], data: Any) -> Any:
    """Validate ``data`` against a spec model; the first problem becomes a precise ValidationError."""
    if not isinstance(data, dict):
        raise ValidationError(f"a {model.__name__} must be a mapping, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        raise ValidationError(f"{loc}: {message}", field=loc or None) from None


def spec_problems(model: type[BaseModel], data: Any) -> list[ValidationError]:
    """Every problem of ``data`` against a spec model at once (``parse_spec`` stops at the first): a form shows
    each next to its field."""
    if not isinstance(data, dict):
        return [ValidationError(f"a {model.__name__} must be a mapping, got {type(data).__name__}")]
    try:
        model.model_validate(data)
    except PydanticValidationError as exc:
        problems = []
        for problem in exc.errors():
            loc = ".".join(str(p) for p in problem["loc"])
            message = "unknown field" if problem["type"] == "extra_forbidden" else problem["msg"]
            problems.append(ValidationError(f"{loc}: {message}", field=loc or None))
        return problems
    return []


class _StrictLoader(yaml.SafeLoader):
    """YAML as people type it, without the two silent readings of PyYAML: a key given twice (the last one won)
    and a key with nothing after its colon (``{units: }`` read as ``units: null``)."""


def _strict_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise ValidationError(f"{key} is given twice (line {key_node.start_mark.line + 1}); keep one", field=str(key))
        seen.add(key)
        if isinstance(value_node, yaml.ScalarNode) and value_node.value == "" and value_node.style is None \
                and value_node.tag == "tag:yaml.org,2002:null":
            raise ValidationError(f"{key} has no value (line {key_node.start_mark.line + 1}); write null to mean none",
                                  field=str(key))
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def strict_yaml(text: str, what: str) -> Any:
    """Parse YAML/JSON typed by a person; a duplicate key or a key without a value is a ``ValidationError`` whose
    field is ``what.key``.

    Raises:
        ValidationError: the text is not YAML, or repeats a key, or leaves a key without a value.
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except ValidationError as exc:
        raise ValidationError(f"{what}.{exc.message}", field=f"{what}.{exc.field}") from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"{what} is not valid YAML/JSON: {exc}", field=what) from None


def parse_mapping_text(text: str | None, what: str) -> dict:
    """YAML or JSON text typed by a person (a space, hparams, overrides) as a mapping; empty -> {}."""
    if not text or not text.strip():
        return {}
    value = strict_yaml(text, what)
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a mapping of name to value", field=what)
    return value


def load_spec_file(path: str | Path) -> dict:
    """Read a YAML or JSON spec file with errors that name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"spec file {path} does not exist", field="spec")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValidationError(f"{path.name} is not valid YAML/JSON: {exc}", field="spec") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"{path.name} must contain a mapping at the top level", field="spec")
    return data
