"""Datasets: load CSV / Parquet / NPZ / image folders, split, and partition once into Parquet files.

Partitions are plain Parquet with a ``features`` column (``list<float32>`` or ``list<int32>``,
flattened; the shape is in the dataset row) and a ``label`` column, one file per worker, so the
local backend and Petastorm's ``make_batch_reader`` read the same files.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hopper.engine.errors import PathNotAllowed, ValidationError

log = logging.getLogger("hopper.engine.data")

FORMATS = ("csv", "parquet", "npz", "image_folder")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
MAX_CLASSES = 10_000


def confine_path(path: str | os.PathLike, roots: Sequence[Path], *, field: str = "path") -> Path:
    """Resolve ``path`` (symlinks and ``..`` included) and require it to lie under a data root."""
    if not str(path).strip():
        raise ValidationError("a path is required", field=field)
    if "\x00" in str(path):
        raise ValidationError("the path contains a NUL byte", field=field)
    resolved = Path(path).expanduser().resolve()
    for root in roots:
        root = Path(root).resolve()
        if resolved == root or root in resolved.parents:
            return resolved
    raise PathNotAllowed(
        f"{path} is outside the data roots ({', '.join(str(r) for r in roots) or 'none configured'}); "
        "set HOPPER_DATA_ROOTS to allow it",
        field=field,
    )


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "image_folder"
    suffix = path.suffix.lower()
    for fmt, suffixes in (("csv", {".csv", ".tsv"}), ("parquet", {".parquet", ".pq"}), ("npz", {".npz"})):
        if suffix in suffixes:
            return fmt
    raise ValidationError(f"cannot tell the format of {path.name}; pass one of {', '.join(FORMATS)}",
                          field="format")


@dataclass
class LoadedData:
    x: np.ndarray
    y: np.ndarray
    feature_columns: list[str]
    label_column: str
    task: str
    classes: list | None
    schema: dict


def _encode_labels(raw: np.ndarray, task: str | None) -> tuple[np.ndarray, str, list | None]:
    if raw.ndim != 1:
        raise ValidationError(f"the label must be one value per row, got shape {raw.shape}", field="label_column")
    if task is None:
        if raw.dtype.kind in "OUSb":
            task = "classification"
        elif raw.dtype.kind in "iu":
            task = "classification" if len(np.unique(raw)) <= MAX_CLASSES else "regression"
        else:
            integral = np.all(np.isfinite(raw)) and np.all(np.mod(raw, 1) == 0)
            task = "classification" if integral and len(np.unique(raw)) <= 50 else "regression"
    if task == "regression":
        return raw.astype(np.float32), task, None
    if task != "classification":
        raise ValidationError(f"task must be classification or regression (got {task!r})", field="task")
    classes, encoded = np.unique(raw.astype(str) if raw.dtype.kind in "OUS" else raw, return_inverse=True)
    if len(classes) < 2:
        raise ValidationError("the label has a single class; nothing to learn", field="label_column")
    return encoded.astype(np.int64), task, [c.item() if hasattr(c, "item") else c for c in classes]


def _check_columns(available: list[str], wanted: list[str], field: str) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ValidationError(
            f"column {missing[0]!r} is not in the data (columns: {', '.join(available[:30])})", field=field
        )


def load_source(path: Path, fmt: str, feature_columns: list[str] | None, label_column: str | None,
                *, task: str | None = None, image_size: tuple[int, int] | None = None) -> LoadedData:
    """Read a source into arrays; errors name the missing column or the unreadable file."""
    if not path.exists():
        raise ValidationError(f"{path} does not exist", field="path")
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", field="format")
    if fmt in ("csv", "parquet"):
        import pandas as pd

        try:
            frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",") if fmt == "csv" \
                else pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - parser errors come in many types
            raise ValidationError(f"cannot read {path.name} as {fmt}: {exc}", field="path") from exc
        columns = [str(c) for c in frame.columns]
        label_column = label_column or columns[-1]
        _check_columns(columns, [label_column], "label_column")
        if not feature_columns or feature_columns == ["*"]:
            feature_columns = [c for c in columns if c != label_column]
        _check_columns(columns, feature_columns, "feature_columns")
        if label_column in feature_columns:
            raise ValidationError(f"{label_column!r} is both a feature and the label", field="feature_columns")
        features = frame[feature_columns]
        non_numeric = [c for c in feature_columns if features[c].dtype.kind not in "biuf"]
        if non_numeric:
            raise ValidationError(f"feature column {non_numeric[0]!r} is not numeric", field="feature_columns")
        x = features.to_numpy(dtype=np.float32)
        raw_y = frame[label_column].to_numpy()
    elif fmt == "npz":
        try:
            archive = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise ValidationError(f"cannot read {path.name} as npz: {exc}", field="path") from exc
        keys = list(archive.files)
        feature_key = (feature_columns or ["x"])[0]
        label_column = label_column or "y"
        _check_columns(keys, [feature_key], "feature_columns")
        _check_columns(keys, [label_column], "label_column")
        x, raw_y = archive[feature_key], archive[label_column]
        feature_columns = [feature_key]
        if len(x) != len(raw_y):
            raise ValidationError(f"{feature_key} has {len(x)} rows but {label_column} has {len(raw_y)}",
                                  field="label_column")
        x = x.astype(np.int32 if x.dtype.kind in "iu" and task != "regression" and x.max(initial=0) > 255
                     else np.float32)
    else:
        x, raw_y = _load_image_folder(path, image_size)
        feature_columns, label_column = ["image"], "class"
    if len(x) < 4:
        raise ValidationError(f"{path.name} has {len(x)} rows; at least 4 are needed", field="path")
    if x.dtype == np.float32 and not np.all(np.isfinite(x)):
        raise ValidationError("the features contain NaN or infinite values", field="feature_columns")
    y, task, classes = _encode_labels(np.asarray(raw_y), task)
    schema = {"feature_dtype": str(x.dtype), "label_dtype": str(y.dtype)}
    return LoadedData(x, y, list(feature_columns), str(label_column), task, classes, schema)


def _load_image_folder(path: Path, image_size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    class_dirs = sorted(d for d in path.iterdir() if d.is_dir())
    if len(class_dirs) < 2:
        raise ValidationError(f"{path} needs one sub-folder per class (found {len(class_dirs)})", field="path")
    images, labels, mode = [], [], None
    for class_dir in class_dirs:
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            with Image.open(file) as img:
                mode = mode or ("L" if img.mode in ("L", "1", "P") else "RGB")
                img = img.convert(mode)
                image_size = image_size or img.size
                img = img.resize(image_size)
                arr = np.asarray(img, dtype=np.float32) / 255.0
            images.append(arr[..., None] if arr.ndim == 2 else arr)
            labels.append(class_dir.name)
    if not images:
        raise ValidationError(f"{path} contains no images", field="path")
    return np.stack(images), np.asarray(labels)


def split_and_partition(data: LoadedData, out_dir: Path, *, workers: int, validation_fraction: float,
                        seed: int) -> dict:
    """Shuffle, hold out a validation split, and write one Parquet partition per worker."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if workers < 1:
        raise ValidationError("workers must be at least 1", field="workers")
    if not 0.0 < validation_fraction < 0.9:
        raise ValidationError("validation_fraction must be in (0, 0.9)", field="validation_fraction")
    n = len(data.x)
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * validation_fraction)))
    if n - n_val < workers:
        raise ValidationError(f"{n - n_val} training rows cannot fill {workers} partitions", field="workers")
    val_idx, train_idx = order[:n_val], order[n_val:]
    out_dir.mkdir(parents=True, exist_ok=True)

    def write(indices: np.ndarray, target: Path) -> None:
        x = data.x[indices].reshape(len(indices), -1)
        value_type = pa.int32() if x.dtype == np.int32 else pa.float32()
        features = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), type=value_type), x.shape[1])
        # Petastorm reads list<...> columns; a fixed-size list is cast to a plain list on write.
        features = features.cast(pa.list_(value_type))
        table = pa.table({"features": features, "label": pa.array(data.y[indices])})
        tmp = target.with_suffix(".tmp")
        pq.write_table(table, tmp, row_group_size=max(1, min(len(indices), 8192)))
        os.replace(tmp, target)

    partition_paths = []
    for w, chunk in enumerate(np.array_split(train_idx, workers)):
        target = out_dir / f"partition-{w:03d}.parquet"
        write(chunk, target)
        partition_paths.append(str(target))
    validation_path = out_dir / "validation.parquet"
    write(val_idx, validation_path)
    return {"n_train": int(len(train_idx)), "n_validation": int(n_val), "partition_paths": partition_paths,
            "validation_path": str(validation_path)}


def read_partition(path: str | Path, feature_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Read one partition back into arrays of the dataset's feature shape."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    features = table.column("features").combine_chunks()
    flat = features.flatten().to_numpy(zero_copy_only=False)
    x = flat.reshape((len(table), *feature_shape))
    y = table.column("label").to_numpy()
    return x, y


def partition_url(path: str) -> str:
    """A partition path as the URL Petastorm opens (``file://`` for local paths, others unchanged)."""
    return path if "://" in path else Path(path).resolve().as_uri()


def read_partition_petastorm(path: str, feature_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Read one partition through Petastorm's batch reader (the Spark backend's data path).

    Row groups are read in file order, so a worker sees the same rows in the same order as
    ``read_partition`` gives the local backend, and the same seed trains the same model.
    """
    import warnings

    from petastorm import make_batch_reader

    features, labels = [], []
    with warnings.catch_warnings():
        # Petastorm 0.13 drives pyarrow 14 through APIs pyarrow deprecates; they still work.
        warnings.simplefilter("ignore", FutureWarning)
        # Its reader prints "Cache cleanup complete." on close; keep that out of the user's console.
        with contextlib.redirect_stdout(io.StringIO()), \
                make_batch_reader(partition_url(path), num_epochs=1, workers_count=1, shuffle_row_groups=False,
                                  reader_pool_type="dummy") as reader:
            batches = list(reader)
    for batch in batches:
        if len(batch.label):
            features.append(np.stack(batch.features))
            labels.append(np.asarray(batch.label))
    if not features:
        raise ValidationError(f"partition {path} has no rows", field="dataset")
    x = np.concatenate(features).reshape((-1, *feature_shape))
    return x, np.concatenate(labels)
