"""Datasets: load CSV / Parquet / NPZ / image folders, split, and partition once into Parquet files.

Partitions are plain Parquet, one file per worker, so the local backend and Petastorm's
``make_batch_reader`` read the same files. Two layouts:

* arrays (NPZ, image folders): a ``features`` column (``list<float32>`` or ``list<int32>``, flattened;
  the shape is in the dataset row) and a ``label`` column;
* typed tables (CSV, Parquet): one Parquet column per feature column in its own type (``float32``,
  ``int64``, ``string``, ``list<int32>`` for token ids), named ``col0``, ``col1``, ... because Petastorm
  turns column names into namedtuple fields (``thal-2`` or ``class`` would break it); the real names and
  types are in the file's key-value metadata (``hopper.columns``) and in the dataset's schema.

The label column holds one value per row (class index or float) or, for one-hot, multi-label and
multi-output regression labels, a ``list<float32>`` of ``k`` values.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


# Column types a typed table keeps (the dataset's schema and the partitions' metadata say which is which).
FLOAT, INT, STRING, TEXT, TOKEN_IDS = "float", "int", "string", "text", "token_ids"
_STRING_TYPES = (STRING, TEXT)
# How labels are given, from which ``compile_for_task`` picks the loss.
SPARSE, ONE_HOT, MULTI_LABEL, REGRESSION = "sparse", "one_hot", "multi_label", "regression"
LABEL_KINDS = (SPARSE, ONE_HOT, MULTI_LABEL, REGRESSION)
# A string column whose values average this many words or more is free text (TextVectorization), else a category.
_TEXT_MIN_WORDS = 3
_PARQUET_COLUMNS_KEY = b"hopper.columns"


@dataclass(frozen=True)
class Columns:
    """Typed feature columns of a table, in the dataset's column order: what a CSV/Parquet partition holds.

    ``len()`` is the number of rows. Scalar columns are ``(N,)`` arrays (``float32``, ``int64``, or ``object``
    holding Python strings); a token-id column is an ``(N, L)`` ``int32`` matrix.
    """

    names: tuple[str, ...]
    types: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.arrays[0]) if self.arrays else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[self.names.index(name)]

    def type_of(self, name: str) -> str:
        return self.types[self.names.index(name)]

    def take(self, indices: np.ndarray) -> Columns:
        """The given rows, in that order."""
        return Columns(self.names, self.types, tuple(a[indices] for a in self.arrays))

    @property
    def string_columns(self) -> list[str]:
        return [n for n, t in zip(self.names, self.types, strict=True) if t in _STRING_TYPES]

    @property
    def width(self) -> int:
        """Values per row if every column were flattened (a token-id column counts its length)."""
        return sum(a.shape[1] if a.ndim == 2 else 1 for a in self.arrays)

    @property
    def matrix_dtype(self) -> str:
        """``int32`` for token ids only (the roster's text models), ``string`` with string columns, else ``float32``."""
        if self.string_columns:
            return "string"
        return "int32" if self.types and all(t == TOKEN_IDS for t in self.types) else "float32"

    @functools.cached_property
    def matrix(self) -> np.ndarray:
        """The numeric matrix a model with one unnamed input receives (ints are cast for it; the columns are not).

        Raises:
            ValidationError: the table has string columns, which no single numeric matrix can hold.
        """
        if self.string_columns:
            raise ValidationError(
                f"the dataset has string columns ({', '.join(self.string_columns)}), so a model with one unnamed "
                "input cannot receive it as one numeric matrix: name each keras.Input after a column, e.g. "
                f"keras.Input(shape=(1,), name={self.string_columns[0]!r}, dtype=\"string\"), to receive a dict "
                f"of named columns (columns: {self.describe()})", field="dataset")
        dtype = np.int32 if self.matrix_dtype == "int32" else np.float32
        # reshape(len, -1) is ambiguous on zero rows (the empty table validation stands in): name the width
        parts = [a.reshape(len(a), int(np.prod(a.shape[1:], dtype=np.int64))).astype(dtype, copy=False)
                 for a in self.arrays]
        return np.concatenate(parts, axis=1) if parts else np.zeros((0, 0), dtype)

    def schema(self) -> list[dict]:
        """Per column: name, type, and its length (token ids) or number of distinct values (strings)."""
        out = []
        for name, kind, array in zip(self.names, self.types, self.arrays, strict=True):
            entry: dict[str, Any] = {"name": name, "type": kind, "dtype": _dtype_name(array)}
            if kind == TOKEN_IDS:
                entry["length"] = int(array.shape[1])
            elif kind in _STRING_TYPES:
                entry["distinct"] = int(len(set(array.tolist())))
            out.append(entry)
        return out

    def describe(self) -> str:
        return ", ".join(f"{n} ({t})" for n, t in zip(self.names, self.types, strict=True))

    def to_frame(self):  # noqa: ANN201 - pandas is imported lazily
        """A pandas DataFrame with the original column names (a token-id column holds one array per row)."""
        import pandas as pd

        return pd.DataFrame({n: list(a) if a.ndim == 2 else a for n, a in zip(self.names, self.arrays, strict=True)})

    @classmethod
    def empty(cls, schema: Sequence[dict]) -> Columns:
        """Zero rows of the given column schema: enough to check a model's inputs against it without data."""
        arrays = []
        for column in schema:
            if column["type"] == TOKEN_IDS:
                arrays.append(np.zeros((0, int(column.get("length", 1))), np.int32))
            elif column["type"] in _STRING_TYPES:
                arrays.append(np.zeros(0, object))
            else:
                arrays.append(np.zeros(0, np.int64 if column["type"] == INT else np.float32))
        return cls(tuple(c["name"] for c in schema), tuple(c["type"] for c in schema), tuple(arrays))


def _dtype_name(array: np.ndarray) -> str:
    return "string" if array.dtype == object else str(array.dtype)


Features = np.ndarray | Columns


def feature_shape(x: Features) -> list[int]:
    """The dataset's ``feature_shape``: the array's per-row shape, or a table's flattened width."""
    return [x.width] if isinstance(x, Columns) else list(x.shape[1:])


def as_matrix(x: Features) -> np.ndarray:
    """The numeric matrix of a partition (for code that only knows matrices: the roster, exporters, benchmarks)."""
    return x.matrix if isinstance(x, Columns) else x


@dataclass
class LoadedData:
    x: Features
    y: np.ndarray
    feature_columns: list[str]
    label_column: str
    task: str
    classes: list | None
    schema: dict = field(default_factory=dict)


def _label_kind_of_matrix(raw: np.ndarray, task: str | None) -> str:
    """One-hot when every row is 0/1 with exactly one 1, multi-label for other 0/1 rows, else regression."""
    if task == "regression" or raw.dtype.kind not in "biuf":
        return REGRESSION
    values = raw.astype(np.float64)
    if not np.all(np.isin(values, (0.0, 1.0))):
        if task == "classification":
            raise ValidationError("classification labels with several values per row must be 0/1 (one-hot or "
                                  "multi-label); these have other values", field="label_column")
        return REGRESSION
    return ONE_HOT if np.all(values.sum(axis=1) == 1) else MULTI_LABEL


def _encode_labels(raw: np.ndarray, task: str | None, label_kind: str | None = None,
                   names: Sequence[str] | None = None) -> tuple[np.ndarray, str, list | None, dict]:
    """Encoded labels, the task, the classes, and the label's schema (kind, k, how given)."""
    if raw.ndim == 2 and raw.shape[1] == 1 and label_kind in (None, SPARSE):
        raw = raw[:, 0]
    if raw.ndim == 2:
        if raw.dtype.kind not in "biuf":
            raise ValidationError(f"labels with several values per row must be numbers, got {raw.dtype}",
                                  field="label_column")
        if not np.all(np.isfinite(raw.astype(np.float64))):
            raise ValidationError("the labels contain NaN or infinite values", field="label_column")
        kind = label_kind or _label_kind_of_matrix(raw, task)
        if kind == SPARSE:
            raise ValidationError(f"label_kind sparse needs one value per row; these labels have shape {raw.shape}",
                                  field="label_kind")
        if kind == ONE_HOT and not (np.all(np.isin(raw, (0, 1))) and np.all(raw.sum(axis=1) == 1)):
            raise ValidationError("label_kind one_hot needs exactly one 1 per row (the rest 0)", field="label_kind")
        if kind == MULTI_LABEL and not np.all(np.isin(raw, (0, 1))):
            raise ValidationError("label_kind multi_label needs 0/1 values", field="label_kind")
        k = int(raw.shape[1])
        if kind == REGRESSION:
            return raw.astype(np.float32), "regression", None, {"kind": kind, "k": k}
        classes = list(names) if names else list(range(k))
        return raw.astype(np.float32), "classification", classes, {"kind": kind, "k": k}
    if raw.ndim != 1:
        raise ValidationError(f"the label must be one value or one list of k values per row, got shape {raw.shape}",
                              field="label_column")
    if label_kind in (ONE_HOT, MULTI_LABEL):
        raise ValidationError(f"label_kind {label_kind} needs k values per row (several label columns or a column "
                              "of lists); this label has one value per row", field="label_kind")
    if label_kind == REGRESSION:
        task = "regression"
    if task is None:
        if raw.dtype.kind in "OUSb":
            task = "classification"
        elif raw.dtype.kind in "iu":
            task = "classification" if len(np.unique(raw)) <= MAX_CLASSES else "regression"
        else:
            integral = np.all(np.isfinite(raw)) and np.all(np.mod(raw, 1) == 0)
            task = "classification" if integral and len(np.unique(raw)) <= 50 else "regression"
    if task == "regression":
        return raw.astype(np.float32), task, None, {"kind": REGRESSION, "k": 1}
    if task != "classification":
        raise ValidationError(f"task must be classification or regression (got {task!r})", field="task")
    classes, encoded = np.unique(raw.astype(str) if raw.dtype.kind in "OUS" else raw, return_inverse=True)
    if len(classes) < 2:
        raise ValidationError("the label has a single class; nothing to learn", field="label_column")
    classes = [c.item() if hasattr(c, "item") else c for c in classes]
    return encoded.astype(np.int64), task, classes, {"kind": SPARSE, "k": len(classes)}


def _check_columns(available: list[str], wanted: list[str], field: str) -> None:
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ValidationError(
            f"column {missing[0]!r} is not in the data (columns: {', '.join(available[:30])})", field=field
        )


def _parse_list_cell(cell: Any) -> list | None:
    """A cell holding a list: a Parquet list, or CSV text like ``[3, 14, 15]``; None for a missing cell."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return None
    if isinstance(cell, (list, tuple, np.ndarray)):
        return list(cell)
    text = str(cell).strip()
    if not text:
        return None
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def _looks_like_lists(series: Any) -> bool:
    present = [c for c in series.tolist() if c is not None and not (isinstance(c, float) and np.isnan(c))]
    if not present:
        return False
    return all(isinstance(c, (list, tuple, np.ndarray)) or (isinstance(c, str) and c.lstrip().startswith("["))
               for c in present)


def _list_matrix(series: Any, name: str, field: str) -> list[list]:
    rows = []
    for i, cell in enumerate(series.tolist()):
        try:
            rows.append(_parse_list_cell(cell) or [])
        except (ValueError, TypeError):
            raise ValidationError(f"row {i} of column {name!r} is not a list ({str(cell)[:40]!r}); a column of "
                                  "lists needs every cell to be one, e.g. [3, 14, 15]", field=field) from None
    return rows


def _token_ids(series: Any, name: str) -> np.ndarray:
    """A column of token-id lists as an ``(N, L)`` int32 matrix, ragged rows padded with 0 at the end."""
    rows = _list_matrix(series, name, "feature_columns")
    length = max((len(r) for r in rows), default=0)
    if length == 0:
        raise ValidationError(f"column {name!r} holds only empty lists", field="feature_columns")
    out = np.zeros((len(rows), length), np.int32)
    for i, row in enumerate(rows):
        try:
            values = np.asarray(row, dtype=np.float64)
        except (ValueError, TypeError):
            values = np.asarray([np.nan])
        if values.size and (not np.all(np.isfinite(values)) or np.any(np.mod(values, 1) != 0) or values.min() < 0):
            raise ValidationError(f"row {i} of column {name!r} is not a list of non-negative integer token ids",
                                  field="feature_columns")
        out[i, :len(row)] = values
    return out


def _typed_columns(frame: Any, names: list[str]) -> Columns:
    """Each feature column in its own type: float, int, string (category or free text), or token ids."""
    types, arrays = [], []
    for name in names:
        series = frame[name]
        kind = series.dtype.kind
        if kind in "biu":
            types.append(INT)
            arrays.append(series.to_numpy().astype(np.int64))
        elif kind == "f":
            values = series.to_numpy().astype(np.float32)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                raise ValidationError(f"feature column {name!r} has missing or infinite values (rows "
                                      f"{', '.join(map(str, bad[:5]))}{', ...' if bad.size > 5 else ''})",
                                      field="feature_columns")
            types.append(FLOAT)
            arrays.append(values)
        elif kind in "OSU" or str(series.dtype) in ("string", "str"):
            if _looks_like_lists(series):
                types.append(TOKEN_IDS)
                arrays.append(_token_ids(series, name))
                continue
            values = np.asarray(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                                 for v in series.tolist()], dtype=object)
            words = np.mean([len(v.split()) for v in values]) if len(values) else 0
            types.append(TEXT if words >= _TEXT_MIN_WORDS else STRING)
            arrays.append(values)
        else:
            raise ValidationError(f"feature column {name!r} has type {series.dtype}; Hopper keeps float, int, "
                                  "string and token-id list columns (convert it first)", field="feature_columns")
    return Columns(tuple(names), tuple(types), tuple(arrays))


def _table_labels(frame: Any, label_columns: list[str]) -> tuple[np.ndarray, list[str] | None]:
    """The raw labels: one column, a column of lists (``[0, 1, 0]``), or several columns side by side."""
    if len(label_columns) > 1:
        return frame[label_columns].to_numpy(), list(label_columns)
    series = frame[label_columns[0]]
    if series.dtype.kind == "O" and _looks_like_lists(series):
        rows = _list_matrix(series, label_columns[0], "label_column")
        lengths = {len(r) for r in rows}
        if len(lengths) != 1:
            raise ValidationError(f"the lists in label column {label_columns[0]!r} have different lengths "
                                  f"({', '.join(map(str, sorted(lengths)[:5]))}); every row needs the same k values",
                                  field="label_column")
        try:
            return np.asarray(rows, dtype=np.float64), None
        except (ValueError, TypeError):
            raise ValidationError(f"label column {label_columns[0]!r} holds lists that are not all numbers",
                                  field="label_column") from None
    return series.to_numpy(), None


def _label_name(label_columns: list[str]) -> str:
    """What the dataset row's ``label_column`` (200 characters) records; the full list is in the schema."""
    joined = ",".join(label_columns)
    return joined if len(joined) <= 200 else f"{label_columns[0]}..{label_columns[-1]} ({len(label_columns)} columns)"


def load_source(path: Path, fmt: str, feature_columns: list[str] | None, label_column: str | list[str] | None,
                *, task: str | None = None, image_size: tuple[int, int] | None = None,
                label_kind: str | None = None) -> LoadedData:
    """Read a source into arrays (or typed columns, for tables); errors name the missing column or the unreadable file.

    Args:
        label_column: one column, or a list of columns that together hold k values per row (one-hot,
            multi-label, multi-output regression). A single column may also hold lists (``[0, 1, 0]``).
        label_kind: sparse / one_hot / multi_label / regression; inferred from the values when not given.
    """
    if not path.exists():
        raise ValidationError(f"{path} does not exist", field="path")
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}", field="format")
    if label_kind is not None and label_kind not in LABEL_KINDS:
        raise ValidationError(f"label_kind must be one of {', '.join(LABEL_KINDS)} (got {label_kind!r})",
                              field="label_kind")
    label_names: list[str] | None = None
    columns_schema: list[dict] | None = None
    if fmt in ("csv", "parquet"):
        import pandas as pd

        try:
            frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",") if fmt == "csv" \
                else pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - parser errors come in many types
            raise ValidationError(f"cannot read {path.name} as {fmt}: {exc}", field="path") from exc
        columns = [str(c) for c in frame.columns]
        frame.columns = columns
        label_columns = list(label_column) if isinstance(label_column, (list, tuple)) else [label_column or columns[-1]]
        if not label_columns:
            raise ValidationError("label_column is an empty list", field="label_column")
        _check_columns(columns, label_columns, "label_column")
        if not feature_columns or feature_columns == ["*"]:
            feature_columns = [c for c in columns if c not in label_columns]
        _check_columns(columns, feature_columns, "feature_columns")
        both = [c for c in label_columns if c in feature_columns]
        if both:
            raise ValidationError(f"{both[0]!r} is both a feature and the label", field="feature_columns")
        x: Features = _typed_columns(frame, feature_columns)
        columns_schema = x.schema()
        raw_y, label_names = _table_labels(frame, label_columns)
        label_column = _label_name(label_columns)
    elif fmt == "npz":
        try:
            archive = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise ValidationError(f"cannot read {path.name} as npz: {exc}", field="path") from exc
        keys = list(archive.files)
        feature_key = (feature_columns or ["x"])[0]
        label_column = label_column or "y"
        if isinstance(label_column, (list, tuple)):
            raise ValidationError("an npz dataset has one label array; give its key as label_column",
                                  field="label_column")
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
    if isinstance(x, np.ndarray) and x.dtype == np.float32 and not np.all(np.isfinite(x)):
        raise ValidationError("the features contain NaN or infinite values", field="feature_columns")
    y, task, classes, label_schema = _encode_labels(np.asarray(raw_y), task, label_kind, label_names)
    if label_names:
        label_schema["columns"] = label_names
    elif columns_schema is not None:
        label_schema["name"] = str(label_column)
    feature_dtype = x.matrix_dtype if isinstance(x, Columns) else str(x.dtype)
    schema: dict[str, Any] = {"feature_dtype": feature_dtype, "label_dtype": str(y.dtype), "label": label_schema}
    if columns_schema is not None:
        schema["columns"] = columns_schema
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



def _label_array(y: np.ndarray):  # noqa: ANN202 - a pyarrow array
    import pyarrow as pa

    if y.ndim == 1:
        return pa.array(y)
    k = y.shape[1]
    # Petastorm reads list<...> columns; a fixed-size list is cast to a plain list on write.
    return pa.FixedSizeListArray.from_arrays(pa.array(y.astype(np.float32).ravel(), type=pa.float32()), k) \
        .cast(pa.list_(pa.float32()))


def _column_array(array: np.ndarray, kind: str):  # noqa: ANN202 - a pyarrow array
    import pyarrow as pa

    if kind == TOKEN_IDS:
        flat = pa.array(array.ravel(), type=pa.int32())
        return pa.FixedSizeListArray.from_arrays(flat, array.shape[1]).cast(pa.list_(pa.int32()))
    if kind in _STRING_TYPES:
        return pa.array(array.tolist(), type=pa.string())
    return pa.array(array, type=pa.int64() if kind == INT else pa.float32())


def _partition_table(x: Features, y: np.ndarray):  # noqa: ANN202 - a pyarrow Table
    import pyarrow as pa

    if isinstance(x, Columns):
        data = {f"col{i}": _column_array(a, t) for i, (a, t) in enumerate(zip(x.arrays, x.types, strict=True))}
        data["label"] = _label_array(y)
        table = pa.table(data)
        return table.replace_schema_metadata({_PARQUET_COLUMNS_KEY: json.dumps(x.schema()).encode()})
    x = x.reshape(len(x), -1)
    value_type = pa.int32() if x.dtype == np.int32 else pa.float32()
    features = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), type=value_type), x.shape[1])
    # Petastorm reads list<...> columns; a fixed-size list is cast to a plain list on write.
    features = features.cast(pa.list_(value_type))
    return pa.table({"features": features, "label": _label_array(y)})


def split_and_partition(data: LoadedData, out_dir: Path, *, workers: int, validation_fraction: float,
                        seed: int) -> dict:
    """Shuffle, hold out a validation split, and write one Parquet partition per worker."""
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
        x = data.x.take(indices) if isinstance(data.x, Columns) else data.x[indices]
        table = _partition_table(x, data.y[indices])
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


def _assemble(fields: dict[str, np.ndarray], columns_schema: list[dict] | None,
              feature_shape: Sequence[int]) -> tuple[Features, np.ndarray]:
    """Arrays read from a partition (by pyarrow or Petastorm) as features and labels."""
    y = fields["label"]
    if y.dtype == object:  # list<float32> labels, one array per row
        y = np.stack(y).astype(np.float32) if len(y) else np.zeros((0, 0), np.float32)
    if columns_schema is None:
        features = fields["features"]
        flat = np.stack(features) if features.dtype == object else features
        return flat.reshape((-1, *feature_shape)), y
    arrays = []
    for i, column in enumerate(columns_schema):
        values = fields[f"col{i}"]
        if column["type"] == TOKEN_IDS:
            values = np.stack(values).astype(np.int32) if values.dtype == object else values.astype(np.int32)
            values = values.reshape(len(y), int(column["length"]))
        elif column["type"] in _STRING_TYPES:
            values = values.astype(object)  # Petastorm gives fixed-width numpy strings; Keras takes Python str
        else:
            values = values.astype(np.int64 if column["type"] == INT else np.float32, copy=False)
        arrays.append(values)
    return Columns(tuple(c["name"] for c in columns_schema), tuple(c["type"] for c in columns_schema),
                   tuple(arrays)), y


def _columns_metadata(metadata: dict | None) -> list[dict] | None:
    raw = (metadata or {}).get(_PARQUET_COLUMNS_KEY)
    return None if raw is None else json.loads(raw)


def read_partition(path: str | Path, feature_shape: Sequence[int]) -> tuple[Features, np.ndarray]:
    """Read one partition back: an array of the dataset's feature shape, or typed ``Columns`` for a table."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    fields = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if str(column.type).startswith("list"):
            width = len(column[0]) if len(column) else 0
            fields[name] = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), width)
        else:
            fields[name] = column.to_numpy(zero_copy_only=False)
    return _assemble(fields, _columns_metadata(table.schema.metadata), feature_shape)


def partition_url(path: str) -> str:
    """A partition path as the URL Petastorm opens (``file://`` for local paths, others unchanged)."""
    return path if "://" in path else Path(path).resolve().as_uri()


def read_partition_petastorm(path: str, feature_shape: Sequence[int]) -> tuple[Features, np.ndarray]:
    """Read one partition through Petastorm's batch reader (the Spark backend's data path).

    Row groups are read in file order, so a worker sees the same rows in the same order as
    ``read_partition`` gives the local backend, and the same seed trains the same model. A typed
    table's column names and types come from the file's metadata, read with pyarrow's filesystem for the URL.
    """
    import warnings

    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    from petastorm import make_batch_reader

    url = partition_url(path)
    filesystem, inner = pafs.FileSystem.from_uri(url)
    columns_schema = _columns_metadata(pq.read_schema(inner, filesystem=filesystem).metadata)
    batches = []
    with warnings.catch_warnings():
        # Petastorm 0.13 drives pyarrow 14 through APIs pyarrow deprecates; they still work.
        warnings.simplefilter("ignore", FutureWarning)
        # Its reader prints "Cache cleanup complete." on close; keep that out of the user's console.
        with contextlib.redirect_stdout(io.StringIO()), \
                make_batch_reader(url, num_epochs=1, workers_count=1, shuffle_row_groups=False,
                                  reader_pool_type="dummy") as reader:
            batches = [b for b in reader if len(b.label)]
    if not batches:
        raise ValidationError(f"partition {path} has no rows", field="dataset")
    fields = {}
    for name in batches[0]._fields:
        parts = [np.asarray(getattr(b, name)) for b in batches]
        fields[name] = np.concatenate(parts)
    return _assemble(fields, columns_schema, feature_shape)


# -- what a model receives ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInput:
    """One ``keras.Input`` of a model: its name, per-row shape (None for an unknown size) and dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


def _shaped(column: np.ndarray, kind: str, spec: ModelInput, source: str) -> np.ndarray:
    """A column in the per-row shape and dtype the model's Input declares."""
    rows = len(column)
    if kind == TOKEN_IDS:
        if len(spec.shape) != 1 or spec.shape[0] not in (None, column.shape[1]):
            raise ValidationError(f"input {spec.name!r} declares shape {spec.shape} but column {source!r} holds "
                                  f"{column.shape[1]} token ids per row: declare shape=({column.shape[1]},) or "
                                  "(None,)", field="dataset")
        out = column
    else:
        size = int(np.prod([d or 1 for d in spec.shape])) if spec.shape else 1
        if size != 1:
            raise ValidationError(f"input {spec.name!r} declares shape {spec.shape} but column {source!r} holds "
                                  "one value per row: declare shape=(1,) or shape=()", field="dataset")
        out = column.reshape((rows, *[1 for _ in spec.shape]))
    if kind in _STRING_TYPES:
        if spec.dtype != "string":
            raise ValidationError(f"input {spec.name!r} has dtype {spec.dtype} but column {source!r} holds strings: "
                                  "declare dtype=\"string\"", field="dataset")
        return out
    if spec.dtype == "string":
        raise ValidationError(f"input {spec.name!r} has dtype string but column {source!r} is {kind}", field="dataset")
    return out.astype(spec.dtype, copy=False)


def model_inputs(x: Features, inputs: Sequence[ModelInput]) -> np.ndarray | dict[str, np.ndarray]:
    """What a model is fed from a partition; the runner, validation and exporters all use this.

    * arrays (NPZ, images): the array, as always;
    * a table and a model whose Inputs are all named after columns: a dict of those columns, each in the
      shape its Input declares (``(N, 1)`` for ``shape=(1,)``, ``(N,)`` for ``shape=()``, ``(N, L)`` token ids);
      string columns stay strings (``object`` arrays of ``str``);
    * a table and one unnamed string Input: the table's only string column;
    * a table and one unnamed (or undeclared, for a model not built yet) numeric Input: the numeric matrix.

    Raises:
        ValidationError: the inputs match no column, only some do, or one numeric matrix cannot hold the table;
            the message lists the columns and says how to name the Inputs.
    """
    if not isinstance(x, Columns):
        return x
    named = [spec for spec in inputs if spec.name in x.names]
    if named and len(named) == len(inputs):
        shaped = {s.name: _shaped(x[s.name], x.type_of(s.name), s, s.name) for s in inputs}
        return shaped[inputs[0].name] if len(inputs) == 1 else shaped
    if named:
        missing = [s.name for s in inputs if s.name not in x.names]
        raise ValidationError(f"the model's inputs {', '.join(missing)} are not named after columns (the others "
                              f"are); name every keras.Input after a column (columns: {x.describe()})", field="dataset")
    if len(inputs) > 1:
        raise ValidationError(f"the model has {len(inputs)} inputs ({', '.join(s.name for s in inputs)}) and none "
                              f"is named after a column; name each keras.Input after one (columns: {x.describe()})",
                              field="dataset")
    if inputs and inputs[0].dtype == "string":
        strings = x.string_columns
        if len(strings) != 1:
            raise ValidationError(f"the model's one string input {inputs[0].name!r} is not named after a column and "
                                  f"the dataset has {len(strings)} string columns ({', '.join(strings) or 'none'}): "
                                  f"name it after one (columns: {x.describe()})", field="dataset")
        return _shaped(x[strings[0]], x.type_of(strings[0]), inputs[0], strings[0])
    return x.matrix
