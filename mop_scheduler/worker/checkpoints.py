"""Model checkpoints: weights plus optimizer state in one flat file, written atomically.

The architecture is rebuilt from the config's hparams by the model factory, so a checkpoint only
carries arrays. A hop (save on one worker, load on the next) is then one sequential write and one
read, hashed on the fly, instead of Keras' zip format with its JSON config and per-variable
assignments (``bench/hop_overhead.py`` compares both). A partially written file is never read:
it gets its final name only once complete, and every load checks the sha256 the store recorded.

Layout: ``HOPCKPT1`` | header length (8 bytes, little endian) | JSON header (shape and dtype of
each weight and optimizer variable) | the arrays' bytes, C order, back to back.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from hopper.engine.errors import TrainingError
from hopper.mop_scheduler.worker.fit_optimizers import fit_optimizer, keep_checkpoint_state
from hopper.mop_scheduler.worker.sandbox import trusted_io

_MAGIC = b"HOPCKPT1"


def file_sha256(path: str | Path) -> str:
    if is_url(path):
        return hashlib.sha256(_read_bytes(path)).hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _optimizer_variables(model) -> list:  # noqa: ANN001
    # A script's fit that trains with an optimizer of its own: that optimizer's state, not the unused compiled one's.
    optimizer = fit_optimizer(model) or getattr(model, "optimizer", None)
    if optimizer is None:
        return []
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return list(optimizer.variables)


def _state_variables(model) -> list:  # noqa: ANN001
    return list(model.weights) + _optimizer_variables(model)


def is_url(path: str | Path) -> bool:
    """A checkpoint location with a scheme (``s3://``, ``hdfs://``, ``file://``): read and written through fsspec."""
    return "://" in str(path)


def join_location(base: str | Path, *parts: str) -> str:
    """``base/part/...`` for a local directory or a URL."""
    if is_url(base):
        return "/".join([str(base).rstrip("/"), *parts])
    return str(Path(base, *parts))


def save_checkpoint(model, path: str | Path) -> tuple[str, int]:  # noqa: ANN001
    """Write weights and optimizer state; returns (sha256, bytes) of the committed file.

    The file is written under ``<name>.partial`` and renamed when complete, so a reader never
    sees half a checkpoint (local paths are also fsync'ed; URLs go through fsspec).
    """
    n_weights = len(model.weights)
    arrays = [np.asarray(a, order="C") for a in _read_all(model)]  # ascontiguousarray would make scalars 1-d
    header = json.dumps({"n_weights": n_weights,
                         "arrays": [[list(a.shape), a.dtype.str] for a in arrays]}).encode()
    chunks = (_MAGIC, len(header).to_bytes(8, "little"), header, *(memoryview(a).cast("B") for a in arrays))
    if is_url(path):
        return _save_url(str(path), chunks)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        with open(tmp, "wb") as fh:
            digest, size = _write_chunks(fh, chunks)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not keep the half-written file around
        raise
    os.replace(tmp, path)
    return digest, size


def _write_chunks(fh, chunks) -> tuple[str, int]:  # noqa: ANN001
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        fh.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _save_url(url: str, chunks) -> tuple[str, int]:  # noqa: ANN001
    import fsspec

    with trusted_io():
        fs, target = fsspec.core.url_to_fs(url)
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        partial = target + ".partial"
        try:
            with fs.open(partial, "wb") as fh:
                result = _write_chunks(fh, chunks)
        except BaseException:
            _remove_quietly(fs, partial)
            raise
        fs.mv(partial, target)
        return result


def _remove_quietly(fs, path: str) -> None:  # noqa: ANN001
    try:
        fs.rm(path)
    except (FileNotFoundError, OSError):
        pass


def remove_checkpoint(path: str | Path | None) -> None:
    """Delete a checkpoint that is no longer referenced (missing is fine)."""
    if not path:
        return
    if is_url(path):
        import fsspec

        with trusted_io():
            fs, target = fsspec.core.url_to_fs(str(path))
            _remove_quietly(fs, target)
    else:
        Path(path).unlink(missing_ok=True)


def _read_bytes(path: str | Path) -> bytes:
    if is_url(path):
        import fsspec

        with trusted_io(), fsspec.open(str(path), "rb") as fh:
            return fh.read()
    return Path(path).read_bytes()


def _read(path: str | Path, expected_sha256: str | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        raise TrainingError(f"checkpoint {path} is missing") from None
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise TrainingError(f"checkpoint {path} does not match its recorded sha256 (corrupted)")
    if not data.startswith(_MAGIC):
        raise TrainingError(f"{path} is not a Hopper checkpoint")
    header_len = int.from_bytes(data[8:16], "little")
    header = json.loads(data[16:16 + header_len])
    offset = 16 + header_len
    arrays = []
    for shape, dtype in header["arrays"]:
        dt = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        arrays.append(np.frombuffer(data, dt, count, offset).reshape(shape))
        offset += count * dt.itemsize
    n = header["n_weights"]
    return arrays[:n], arrays[n:]


class _StateFunctions:
    """One compiled reader and one assigner per list of variable shapes and dtypes, shared by every model in the
    process and taking the variables as arguments.

    TensorFlow traces them once per architecture (not once per model), so a config that is new to a worker, of an
    architecture already seen there, reads and restores its checkpoint without a trace, and nothing retraces the
    same Python function over and over (TensorFlow's "triggered tf.function retracing" warning). The concrete
    function is called directly: a ``tf.function`` call would match its arguments against the traces first.
    The assigner takes the values as one flat tensor per dtype, not one per variable: converting and checking a
    dozen or two small arrays one by one was most of a hop's load (load 2.0-2.3 ms before, 1.2-1.3 ms after, for
    the roster mlp and cnn, one thread).
    """

    _concrete: dict[tuple, tuple[Any, list[tuple[Any, list[int]]]]] = {}
    #: concrete functions made so far, per kind (each is one trace)
    traces: dict[str, int] = {"read": 0, "assign": 0}

    @classmethod
    def _function(cls, kind: str, variables: list) -> tuple[Any, list[tuple[Any, list[int]]]]:
        signature = (kind, *((tuple(v.shape), v.dtype) for v in variables))
        found = cls._concrete.get(signature)
        if found is not None:
            return found
        import tensorflow as tf

        groups: dict[Any, list[int]] = {}
        for i, v in enumerate(variables):
            groups.setdefault(v.dtype, []).append(i)
        order = list(groups.items())
        shapes = [tuple(int(d) for d in v.shape) for v in variables]
        sizes = [int(np.prod(shape)) for shape in shapes]
        if kind == "read":  # one output per variable: reading back one flat tensor per dtype was not faster
            concrete = tf.function(lambda variables: [tf.identity(v) for v in variables]).get_concrete_function(
                variables)
        else:
            def assign(variables, flats):  # noqa: ANN001, ANN202
                for (_, idx), flat in zip(order, flats, strict=True):
                    for i, part in zip(idx, tf.split(flat, [sizes[i] for i in idx]), strict=True):
                        variables[i].assign(tf.reshape(part, shapes[i]))

            concrete = tf.function(assign).get_concrete_function(
                variables, [tf.TensorSpec([sum(sizes[i] for i in idx)], dtype) for dtype, idx in order])
        cls._concrete[signature] = found = (concrete, order)
        cls.traces[kind] += 1
        return found

    @classmethod
    def read(cls, variables: list) -> list[np.ndarray]:
        return [t.numpy() for t in cls._function("read", variables)[0](variables)]

    @classmethod
    def assign(cls, variables: list, values: list) -> None:
        concrete, order = cls._function("assign", variables)
        concrete(variables, [np.concatenate([np.ravel(values[i]) for i in idx]).astype(dtype.as_numpy_dtype,
                                                                                       copy=False)
                             for dtype, idx in order])


def _backing(model) -> list:  # noqa: ANN001
    """The TensorFlow variables behind the model's weights and optimizer state (what a tf.function may take)."""
    return [v.value for v in _state_variables(model)]


def _read_all(model) -> list[np.ndarray]:  # noqa: ANN001
    """Every weight and optimizer variable, read in one compiled call."""
    return _StateFunctions.read(_backing(model))


def _assign_all(model, values: list[np.ndarray]) -> None:  # noqa: ANN001
    """Assign every weight and optimizer variable in one compiled call (not one op per variable)."""
    _StateFunctions.assign(_backing(model), values)


def copy_state(source, target) -> None:  # noqa: ANN001
    """Give ``target`` (a model of the same graph, already compiled and traced) every weight and optimizer variable
    of ``source``, learning rate and step count included; ``source`` is read eagerly (it is thrown away after)."""
    _assign_all(target, [np.asarray(v.value) for v in _state_variables(source)])


def load_checkpoint(model, path: str | Path, expected_sha256: str | None = None) -> bool:  # noqa: ANN001
    """Restore weights and optimizer state into a model built from the same hparams.

    Returns:
        True when the optimizer state was restored too; False when it did not fit (the
        weights are restored and the optimizer starts fresh).
    """
    weights, opt_state = _read(path, expected_sha256)
    variables = _state_variables(model)
    if len(weights) != len(model.weights) or any(
            tuple(v.shape) != a.shape for v, a in zip(model.weights, weights, strict=True)):
        raise TrainingError(f"checkpoint {Path(path).name} does not fit this model (different architecture)")
    if len(opt_state) == len(variables) - len(weights) and all(
            tuple(v.shape) == a.shape for v, a in zip(variables[len(weights):], opt_state, strict=True)):
        _assign_all(model, weights + opt_state)
        return True
    model.set_weights(weights)
    keep_checkpoint_state(model, opt_state)  # for an optimizer the script's fit creates (fit_optimizers)
    return False


def transfer_weights(model, path: str | Path, expected_sha256: str | None = None) -> tuple[int, int]:  # noqa: ANN001
    """Warm start: copy every weight whose shape matches, in order; returns (copied, total).

    Clones and drill-down children may change architecture knobs; the layers that still fit
    are warm-started and the rest keep their fresh initialisation. Optimizer state starts fresh.
    """
    source, _ = _read(path, expected_sha256)
    target = model.get_weights()
    copied = 0
    if len(source) == len(target):
        merged = []
        for src, dst in zip(source, target, strict=True):
            if src.shape == dst.shape:
                merged.append(src)
                copied += 1
            else:
                merged.append(dst)
        model.set_weights(merged)
    return copied, len(target)
