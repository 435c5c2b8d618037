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


def shuffled_batches(x: Any, y: Any, batch_size: int, *, seed: int | None) -> Any:
    """One pass over ``(x, y)`` as a ``tf.data.Dataset`` of batches, in a permutation drawn from ``seed`` (in order
    when ``seed`` is None), for ``model.fit`` / ``model.evaluate``.

    Why not ``model.fit(x, y, shuffle=True)``: Keras' array adapter sets up its own input pipeline on every call,
    which on a 900-row digits partition cost three to four times the training itself (measured 350-470 ms per
    call against 90-110 ms for this, one TensorFlow thread); a sub-epoch is one such call, so MOP paid it on every
    hop. Batches are gathered by index, so no shuffle buffer holds a second copy of the rows.
    """
    import tensorflow as tf

    n = len(y)
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    features = tf.nest.map_structure(tf.convert_to_tensor, x)
    labels = tf.convert_to_tensor(y)

    def gather(indices: Any) -> tuple[Any, Any]:
        return tf.nest.map_structure(lambda t: tf.gather(t, indices), features), tf.gather(labels, indices)

    return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).map(gather).prefetch(1)


def plain_keras_fit(model: Any) -> bool:
    """Whether ``model.fit`` is Keras' own (not a subclass's override, nor the DP-SGD model's, which draws its
    Poisson-sampled batches itself from arrays), so that it may be fed :func:`shuffled_batches`."""
    import keras

    return type(model).fit is keras.Model.fit
