"""Datasets and model scripts: registering data under a data root, uploading and validating scripts."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hopper.engine import data as data_mod
from hopper.engine.entities import DatasetInfo, ScriptCheck, ScriptInfo, ScriptValidator
from hopper.engine.errors import Conflict, HopperError, ScriptRejected, TooBusy, ValidationError
from hopper.engine.services._base import ServiceContext, default_actor
from hopper.engine.specs import DatasetSpec, parse_spec
from hopper.engine.status import ScriptValidation
from hopper.engine.store import Store

MAX_SCRIPT_BYTES = 1_000_000
# A dataset file sent through the browser travels base64-encoded inside one callback request; larger files belong
# under a data root already (copied there by other means) and are registered by path.
MAX_DATASET_UPLOAD_BYTES = 20_000_000
UPLOAD_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}

log = logging.getLogger("hopper.engine.services.data")


class ValidationPool:
    """A bounded pool that validates scripts on its own threads, never on a web server's request thread.

    ``workers`` validations run at once (each in its own contained child process); up to ``queue`` more wait.
    ``reserve`` refuses (``TooBusy``, with a Retry-After) instead of queueing without bound, so ten looping
    uploads cost the server at most ``workers`` busy children, not ten request threads.
    """

    def __init__(self, workers: int, queue: int, retry_after: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hopper-validate")
        self._slots = threading.BoundedSemaphore(max(1, workers) + max(0, queue))
        self.retry_after = retry_after

    def reserve(self) -> None:
        """Take a slot for one validation, or raise ``TooBusy`` when every slot is taken."""
        if not self._slots.acquire(blocking=False):
            raise TooBusy("too many scripts are being validated; try again later", retry_after=self.retry_after,
                          field="script")

    def release(self) -> None:
        self._slots.release()

    def submit(self, fn, *args: object) -> None:  # noqa: ANN001
        """Run ``fn(*args)`` on a pool thread; the slot taken by ``reserve`` is given back when it ends."""
        def run() -> None:
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001 - a pool thread must not die silently
                log.exception("script validation failed unexpectedly")
            finally:
                self.release()
        self._executor.submit(run)


class DataServices(ServiceContext):
    """Datasets and scripts."""

    def __init__(self, store: Store, settings: object, script_validator: ScriptValidator | None = None) -> None:
        super().__init__(store, settings)
        self.script_validator = script_validator
        self._pool: ValidationPool | None = None
        self._pool_lock = threading.Lock()

    def _validation_pool(self) -> ValidationPool:
        with self._pool_lock:
            if self._pool is None:
                settings = self.settings
                self._pool = ValidationPool(getattr(settings, "script_validators", 2), getattr(settings, "script_queue", 8),
                                            retry_after=max(1, int(settings.script_timeout // 4)))
            return self._pool

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
                                      image_size=spec.image_size, label_kind=spec.label_kind)
        out_dir = self.settings.artifact_dir / "datasets" / spec.name
        parts = data_mod.split_and_partition(loaded, out_dir, workers=self.settings.dataset_shards,
                                             validation_fraction=spec.validation_fraction, seed=spec.seed)
        return self.store.datasets.add(
            actor=actor or default_actor(), name=spec.name, source_path=str(path), format=fmt,
            feature_columns=loaded.feature_columns, label_column=loaded.label_column, task=loaded.task,
            n_rows=int(len(loaded.x)), n_train=parts["n_train"], n_validation=parts["n_validation"],
            feature_shape=data_mod.feature_shape(loaded.x), classes=loaded.classes, partition_count=self.settings.dataset_shards,
            partition_paths=parts["partition_paths"], validation_path=parts["validation_path"], schema=loaded.schema,
        )

    def register_uploaded_dataset(self, filename: str, content: bytes, spec: dict, *,
                                  actor: str | None = None) -> DatasetInfo:
        """Save an uploaded file as ``uploads/<dataset name><suffix>`` under the first data root, then register it
        like :meth:`register_dataset` (``spec`` without ``path``). A refused registration removes the saved file,
        so the person can fix a field and send it again.

        Raises:
            ValidationError: no data root, an unknown suffix, an empty or too large file, or what registering
                refuses.
            Conflict: a dataset of that name exists.
        """
        roots = list(self.settings.data_roots)
        if not roots:
            raise ValidationError("no data root is configured; set HOPPER_DATA_ROOTS", field="file")
        suffix = Path(filename or "").suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise ValidationError(f"{filename or 'the file'} is not a CSV, Parquet or NPZ file "
                                  f"(its name must end in {', '.join(UPLOAD_SUFFIXES)})", field="file")
        if not content:
            raise ValidationError(f"{filename} is empty", field="file")
        if len(content) > MAX_DATASET_UPLOAD_BYTES:
            raise ValidationError(f"{filename} is {len(content):,} bytes; an upload may be at most "
                                  f"{MAX_DATASET_UPLOAD_BYTES:,} (copy larger files under a data root and register "
                                  "them by path)", field="file")
        spec = {**spec, "path": "-", "format": spec.get("format") or UPLOAD_SUFFIXES[suffix]}
        name = parse_spec(DatasetSpec, spec).name  # the name becomes the file name: check it before any write
        if self.store.datasets.name_taken(name):
            raise Conflict(f"a dataset named {name!r} already exists", field="name")
        target = data_mod.confine_path(Path(roots[0]) / "uploads" / f"{name}{suffix}", roots, field="file")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        try:
            return self.register_dataset({**spec, "path": str(target)}, actor=actor)
        except BaseException:
            target.unlink(missing_ok=True)
            raise

    def list_datasets(self) -> list[DatasetInfo]:
        """Every registered dataset, oldest first."""
        return self.store.datasets.list()

    def get_dataset(self, ref: str | int) -> DatasetInfo:
        """A dataset by id or name."""
        return self.store.datasets.get(ref)

    def upload_script(self, name: str, content: bytes | str, *, entry_point: str = "build_model",
                      dataset: str | int | None = None, sample_config: dict | None = None,
                      actor: str | None = None, wait: bool = True) -> ScriptInfo:
        """Store a model script and validate it in a contained child process.

        With ``wait`` (the CLI), the call returns once the script is validated. Without it (the web server),
        the script is stored with ``validation.state`` pending and validated on the bounded pool; poll
        ``get_script`` for the result. The web server's request threads never wait on user code.

        Raises:
            ScriptRejected: (``wait``) the script raised, hung, or returned something other than a Keras model;
                the stored row keeps the reason and traceback.
            TooBusy: (not ``wait``) the validation pool and its queue are full; retry later.
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
        except ValueError as exc:  # a NUL character (found by the API fuzzer: it was a 500)
            raise ScriptRejected(f"the script cannot be compiled: {exc}", field="script") from None
        sha = hashlib.sha256(raw).hexdigest()
        scripts_dir = self.settings.artifact_dir / "scripts"
        scripts_dir.mkdir(parents=True, exist_ok=True)
        path = scripts_dir / f"{sha}.py"
        path.write_bytes(raw)
        shape, n_outputs, task = (64,), 10, "classification"
        check: dict = {}
        if dataset is not None:
            ds = self.get_dataset(dataset)
            shape, n_outputs, task = tuple(ds.feature_shape), ds.n_outputs, ds.task
            check = dict(label_kind=ds.label_kind, columns=ds.schema.get("columns"), label_names=ds.label_names)
        check.update(input_shape=shape, n_outputs=n_outputs, task=task, sample_config=sample_config)
        actor = actor or default_actor()
        if wait:
            result = self._validate(path, entry_point, check)
            info = self.store.scripts.add(name=name, sha256=sha, path=str(path), entry_point=entry_point,
                                          kind=result.kind, valid=result.ok, validation=_validation(result),
                                          actor=actor, message=result.message)
            if not result.ok:
                raise ScriptRejected(f"script {name!r} (id {info.id}) is not usable: {result.message}",
                                     details=result.details, field="script")
            return info
        pool = self._validation_pool()
        pool.reserve()
        try:
            info = self.store.scripts.add(
                name=name, sha256=sha, path=str(path), entry_point=entry_point, kind=None, valid=False,
                validation={"state": str(ScriptValidation.PENDING), "message": "validation pending"}, actor=actor,
                message="validation pending")
        except BaseException:
            pool.release()
            raise
        pool.submit(self._validate_later, info.id, path, entry_point, check)
        return info

    def _validate(self, path: Path, entry_point: str, check: dict) -> ScriptCheck:
        s = self.settings
        return self.script_validator(
            path, entry_point, **check, timeout=s.script_timeout, memory_mb=s.script_memory_mb,
            allowed_roots=tuple(map(str, s.data_roots)), cpu_seconds=getattr(s, "script_cpu_seconds", 0),
            processes=getattr(s, "script_processes", 0), file_mb=getattr(s, "script_file_mb", 0),
            user=getattr(s, "sandbox_user", ""))

    def _validate_later(self, script_id: int, path: Path, entry_point: str, check: dict) -> None:
        try:
            result = self._validate(path, entry_point, check)
        except Exception as exc:  # noqa: BLE001 - the row must not stay pending forever
            result = ScriptCheck(False, None, f"validation could not run: {type(exc).__name__}: {exc}")
        # The store may be briefly unavailable (a locked SQLite file on a loaded machine, a PostgreSQL restart):
        # retried, since a verdict that is never written leaves the upload pending for good.
        for attempt in range(6):
            try:
                self.store.scripts.record_validation(script_id, kind=result.kind, valid=result.ok,
                                                     validation=_validation(result))
                return
            except Exception:  # noqa: BLE001 - logged, then retried
                if attempt == 5:
                    raise
                log.warning("script %d: recording its validation failed (attempt %d); retrying", script_id,
                            attempt + 1, exc_info=True)
                time.sleep(2.0 ** attempt)

    def list_scripts(self, *, valid_only: bool = False) -> list[ScriptInfo]:
        """Uploaded scripts, oldest first (rejected ones too, with their validation result)."""
        return self.store.scripts.list(valid_only=valid_only)

    def get_script(self, script_id: int) -> ScriptInfo:
        """One uploaded script with its validation result."""
        return self.store.scripts.get(script_id)


def _validation(result: ScriptCheck) -> dict:
    """The stored validation: the check's fields plus its state (accepted or rejected)."""
    state = ScriptValidation.ACCEPTED if result.ok else ScriptValidation.REJECTED
    return {**result.to_dict(), "state": str(state)}
