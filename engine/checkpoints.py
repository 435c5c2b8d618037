"""Model checkpoints as plain ``.npz`` files: weights plus optimizer state, written atomically.

The architecture is rebuilt from the config's hparams by the model factory, so a checkpoint only
carries arrays. That keeps a hop (save on one worker, load on the next) to a file write and read
instead of Keras' zip format with its JSON config, and a partially written file can never be read
because it only gets its final name after ``fsync``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from hopper.engine.errors import TrainingError


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _optimizer_variables(model) -> list:  # noqa: ANN001
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return []
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return list(optimizer.variables)


def save_checkpoint(model, path: str | Path) -> tuple[str, int]:  # noqa: ANN001
    """Write weights and optimizer state; returns (sha256, bytes) of the committed file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"w{i:05d}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"o{i:05d}": np.asarray(v.numpy()) for i, v in enumerate(_optimizer_variables(model))})
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return file_sha256(path), path.stat().st_size


def _read(path: str | Path, expected_sha256: str | None) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint {path} is missing", retryable=False)
    if expected_sha256 is not None and file_sha256(path) != expected_sha256:
        raise TrainingError(f"checkpoint {path} does not match its recorded sha256 (corrupted)", retryable=False)
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def load_checkpoint(model, path: str | Path, expected_sha256: str | None = None) -> None:  # noqa: ANN001
    """Restore weights and optimizer state into a model built from the same hparams."""
    arrays = _read(path, expected_sha256)
    weights = [arrays[k] for k in sorted(k for k in arrays if k.startswith("w"))]
    try:
        model.set_weights(weights)
    except ValueError as exc:
        raise TrainingError(f"checkpoint {Path(path).name} does not fit this model: {exc}") from exc
    opt_state = [arrays[k] for k in sorted(k for k in arrays if k.startswith("o"))]
    variables = _optimizer_variables(model)
    if opt_state and len(opt_state) == len(variables):
        for var, value in zip(variables, opt_state, strict=True):
            if tuple(var.shape) == value.shape:
                var.assign(value)


def transfer_weights(model, path: str | Path, expected_sha256: str | None = None) -> tuple[int, int]:  # noqa: ANN001
    """Warm start: copy every weight whose shape matches, in order; returns (copied, total).

    Clones and drill-down children may change architecture knobs; the layers that still fit
    are warm-started and the rest keep their fresh initialisation. Optimizer state starts fresh.
    """
    arrays = _read(path, expected_sha256)
    source = [arrays[k] for k in sorted(k for k in arrays if k.startswith("w"))]
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
