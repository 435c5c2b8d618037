"""What a model is fed: its ``keras.Input`` declarations matched to a partition's columns (worker side).

The matching rules live in ``hopper.engine.data.model_inputs`` (plain numpy, so they can be tested and
reused without TensorFlow); this module reads the declarations off a Keras model and hands string
columns to Keras as string tensors, which its numpy data adapter refuses.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hopper.engine.data import Columns, Features, ModelInput, model_inputs


def input_specs(model: Any) -> list[ModelInput]:
    """The model's Inputs (name, per-row shape, dtype); empty for a model whose inputs are not known yet."""
    try:
        tensors = list(model.inputs or [])
    except (AttributeError, ValueError):  # a Sequential without an Input, not built yet; a subclassed model
        return []
    specs = []
    for tensor in tensors:
        name = str(getattr(tensor, "name", "") or "")
        dtype = str(getattr(tensor, "dtype", "float32"))
        specs.append(ModelInput(name, tuple(tensor.shape[1:]), "string" if "string" in dtype else dtype))
    return specs


def _tensor(array: np.ndarray) -> Any:
    if array.dtype == object:
        import tensorflow as tf

        return tf.constant(array, dtype=tf.string)
    return array


def features_for(model: Any, x: Features) -> Any:
    """``x`` (an array, or a table's ``Columns``) as ``model`` takes it: an array, or a dict of named columns.

    Raises:
        ValidationError: the model's inputs do not fit the table; the message lists the columns.
    """
    if not isinstance(x, Columns):
        return x
    fed = model_inputs(x, input_specs(model))
    if isinstance(fed, dict):
        return {name: _tensor(a) for name, a in fed.items()}
    return _tensor(fed)
