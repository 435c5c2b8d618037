"""Datasets and model scripts: registering data under a data root, uploading and validating scripts."""

from __future__ import annotations

import hashlib

from hopper.engine import data as data_mod
from hopper.engine.entities import DatasetInfo, ScriptInfo, ScriptValidator
from hopper.engine.errors import Conflict, HopperError, ScriptRejected, ValidationError
from hopper.engine.services._base import ServiceContext, default_actor
from hopper.engine.specs import DatasetSpec, parse_spec
from hopper.engine.store import Store

MAX_SCRIPT_BYTES = 1_000_000


class DataServices(ServiceContext):
    """Datasets and scripts."""

    def __init__(self, store: Store, settings: object, script_validator: ScriptValidator | None = None) -> None:
        super().__init__(store, settings)
        self.script_validator = script_validator

    def register_dataset(self, spec: dict | DatasetSpec, *, actor: str | None = None) -> DatasetInfo:
        """Load a dataset from a data root, split it, and partition it once for the workers.

        Raises:
            PathNotAllowed: the path is outside every configured data root.
            Conflict: a dataset of that name exists.
            ValidationError: the file cannot be read as the given format, or a named column is missing.
        """
        spec = spec if isinstance(spec, DatasetSpec) else parse_spec(DatasetSpec, spec)
        path = data_mod.confine_path(spec.path, self.settings.data_roots)
        if self.store.datasets.name_taken(spec.name):
            raise Conflict(f"a dataset named {spec.name!r} already exists", field="name")
        fmt = spec.format or data_mod.detect_format(path)
        loaded = data_mod.load_source(path, fmt, spec.feature_columns, spec.label_column, task=spec.task,
                                      image_size=spec.image_size)
        out_dir = self.settings.artifact_dir / "datasets" / spec.name
        parts = data_mod.split_and_partition(loaded, out_dir, workers=self.settings.workers,
                                             validation_fraction=spec.validation_fraction, seed=spec.seed)
        return self.store.datasets.add(
            actor=actor or default_actor(), name=spec.name, source_path=str(path), format=fmt,
            feature_columns=loaded.feature_columns, label_column=loaded.label_column, task=loaded.task,
            n_rows=int(len(loaded.x)), n_train=parts["n_train"], n_validation=parts["n_validation"],
            feature_shape=list(loaded.x.shape[1:]), classes=loaded.classes, partition_count=self.settings.workers,
            partition_paths=parts["partition_paths"], validation_path=parts["validation_path"], schema=loaded.schema,
        )

    def list_datasets(self) -> list[DatasetInfo]:
        """Every registered dataset, oldest first."""
        return self.store.datasets.list()

    def get_dataset(self, ref: str | int) -> DatasetInfo:
        """A dataset by id or name."""
        return self.store.datasets.get(ref)

    def upload_script(self, name: str, content: bytes | str, *, entry_point: str = "build_model",
                      dataset: str | int | None = None, sample_config: dict | None = None,
                      actor: str | None = None) -> ScriptInfo:
        """Store a model script and validate it in a sandboxed child process.

        Raises:
            ScriptRejected: the script raised, hung, or returned something other than a Keras model;
                the stored row keeps the reason and traceback.
        """
        if self.script_validator is None:
            raise HopperError("this Services has no script validator; open it with hopper.app.open_services")
        raw = content.encode() if isinstance(content, str) else content
        if len(raw) > MAX_SCRIPT_BYTES:
            raise ValidationError(f"the script is {len(raw)} bytes; the limit is {MAX_SCRIPT_BYTES}", field="script")
        if not entry_point.isidentifier():
            raise ValidationError(f"entry point {entry_point!r} is not a Python identifier", field="entry_point")
        try:
            compile(raw, name or "script.py", "exec")
        except SyntaxError as exc:
            raise ScriptRejected(f"syntax error at line {exc.lineno}: {exc.msg}", details=str(exc),
                                 field="script") from None
        sha = hashlib.sha256(raw).hexdigest()
        scripts_dir = self.settings.artifact_dir / "scripts"
        scripts_dir.mkdir(parents=True, exist_ok=True)
        path = scripts_dir / f"{sha}.py"
        path.write_bytes(raw)
        shape, n_outputs, task = (64,), 10, "classification"
        if dataset is not None:
            ds = self.get_dataset(dataset)
            shape, n_outputs, task = tuple(ds.feature_shape), ds.n_outputs, ds.task
        result = self.script_validator(path, entry_point, input_shape=shape, n_outputs=n_outputs, task=task,
                                       sample_config=sample_config, timeout=self.settings.script_timeout,
                                       memory_mb=self.settings.script_memory_mb,
                                       allowed_roots=tuple(map(str, self.settings.data_roots)))
        info = self.store.scripts.add(name=name, sha256=sha, path=str(path), entry_point=entry_point,
                                      kind=result.kind, valid=result.ok, validation=result.to_dict(),
                                      actor=actor or default_actor(), message=result.message)
        if not result.ok:
            raise ScriptRejected(f"script {name!r} (id {info.id}) is not usable: {result.message}",
                                 details=result.details, field="script")
        return info

    def list_scripts(self, *, valid_only: bool = False) -> list[ScriptInfo]:
        """Uploaded scripts, oldest first (rejected ones too, with their validation result)."""
        return self.store.scripts.list(valid_only=valid_only)

    def get_script(self, script_id: int) -> ScriptInfo:
        """One uploaded script with its validation result."""
        return self.store.scripts.get(script_id)
