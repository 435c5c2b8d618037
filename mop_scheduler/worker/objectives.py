"""Objectives the worker computes itself at an epoch-end evaluation (see ``hopper.engine.objectives``).

FLOPs are counted from the built model's layer shapes, not by TensorFlow's profiler: the profiler needs a
traced graph per model (seconds each, on every epoch end) and counts training-only ops differently across
versions, while the shapes give the same number on every backend. What is counted, per example, forward pass:

- ``Dense``/``EinsumDense``: 2 x inputs x units (a multiply and an add per weight), + units for the bias.
- ``Conv1D/2D/3D``: 2 x kernel volume x input channels / groups x filters per output position, + bias.
- ``DepthwiseConv``/``SeparableConv``: the depthwise and pointwise products alike.
- Everything else (activations, pooling, normalisation, embeddings' lookups) costs O(activations) and is
  left out, as the usual FLOPs tables (e.g. for MobileNet and ResNet) leave it out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from hopper.engine import objectives as objective_math


def _size(shape: Sequence[Any] | None) -> int:
    return math.prod(int(d) for d in (shape or ())[1:] if d is not None)


def _layer_flops(layer: Any) -> int:
    kind = type(layer).__name__
    kernel = getattr(layer, "kernel", None)
    bias = 1 if getattr(layer, "use_bias", False) else 0
    try:
        out = layer.output.shape
        inp = layer.input.shape
    except (AttributeError, ValueError):
        return 0
    if kind in ("Dense", "EinsumDense") and kernel is not None:
        positions = _size(out) // max(1, int(kernel.shape[-1]))  # a Dense on a sequence applies per step
        return positions * (2 * int(math.prod(kernel.shape)) + bias * int(kernel.shape[-1]))
    if kind.startswith("Conv") and "Transpose" not in kind and kernel is not None:
        positions = _size(out) // int(kernel.shape[-1])
        return positions * (2 * int(math.prod(kernel.shape)) + bias * int(kernel.shape[-1]))
    if kind.startswith("DepthwiseConv"):
        return _size(out) * (2 * int(math.prod(layer.kernel_size)) + bias)
    if kind.startswith("SeparableConv"):
        depth = int(inp[-1]) * int(getattr(layer, "depth_multiplier", 1))
        positions = _size(out) // int(out[-1])
        return positions * (2 * int(math.prod(layer.kernel_size)) * depth + 2 * depth * int(out[-1]) + bias * int(out[-1]))
    return 0


def count_flops(model: Any) -> float:
    """Forward FLOPs per example of a built Keras model (nested models included)."""
    total = 0
    for layer in getattr(model, "layers", []):
        total += count_flops(layer) if getattr(layer, "layers", None) else _layer_flops(layer)
    return float(total)


def extra_objectives(model: Any, x_val: Any, y_val: Any, objectives: Sequence[dict], n_classes: int) -> dict[str, float]:
    """The computed objectives a workload names, for one trained model on the validation split."""
    out: dict[str, float] = {}
    if any(o["metric"] == objective_math.FLOPS for o in objectives):
        out[objective_math.FLOPS] = count_flops(model)
    if objective_math.needs_predictions(objectives):
        import numpy as np

        predicted = objective_math.predicted_classes(model.predict(x_val, batch_size=512, verbose=0))
        out.update(objective_math.class_metrics(np.asarray(y_val).reshape(-1), predicted, n_classes, objectives))
    return out
