"""Optimizer state that a script's own ``fit`` creates, carried from one sub-epoch to the next.

KerasTuner calls a HyperModel's ``fit`` once per trial with ``epochs=N``, so an optimizer that ``fit`` creates
(``keras.optimizers.Adam(...)`` before a ``GradientTape`` loop, or ``model.compile(...)`` inside ``fit``) lives
for the whole trial. Under MOP every sub-epoch is one ``fit`` call on one partition, so that optimizer would
start afresh each time: Adam's moments and step count reset four times in two epochs on two workers, which
raised a custom training loop's validation loss from 0.36-0.48 to 0.50-0.62 in a measurement on digits
(tests/compat's ``kt_custom_training_loop``).

``carry_fit_optimizer(model)`` wraps one ``fit`` call. Before the first update of an optimizer created during the
call and applied to exactly the model's trainable variables, it gives that optimizer the state the previous
sub-epoch's optimizer ended with (its step count and slots: everything but the learning rate, which is the
config's). The state travels with the model: in memory between sub-epochs on one worker, and in the
checkpoint (``fit_optimizer_variables`` is what ``save_checkpoint`` writes for an uncompiled model) when the
model hops to another worker.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

# The optimizer each model's last fit trained it with, and optimizer state read from a checkpoint that the
# model itself had no optimizer for (an uncompiled model whose fit creates its own).
_fit_optimizers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_checkpoint_state: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_patch_lock = threading.Lock()


def fit_optimizer(model: Any) -> Any:
    """The optimizer the model's last ``fit`` trained it with (None when no fit made one of its own)."""
    return _fit_optimizers.get(model)


def keep_checkpoint_state(model: Any, arrays: list[np.ndarray]) -> None:
    """Optimizer arrays a checkpoint held that do not fit the model's own optimizer: the next fit's optimizer
    gets them if they fit it."""
    if arrays:
        _checkpoint_state[model] = [np.array(a) for a in arrays]


def _carried_states(model: Any) -> list[list[np.ndarray]]:
    """What the next fit's optimizer may continue from, best first: the last fit's optimizer, the model's
    compiled one (restored from the checkpoint), optimizer arrays the checkpoint held for neither."""
    states = []
    for source in (_fit_optimizers.get(model), getattr(model, "optimizer", None)):
        if source is not None and getattr(source, "built", False):
            states.append([np.asarray(v.numpy()) for v in source.variables])
    if model in _checkpoint_state:
        states.append(_checkpoint_state[model])
    return states


def _restore(optimizer: Any, state: list[np.ndarray]) -> bool:
    """Assign ``state`` to the optimizer's variables, all but its learning rate; False when the layouts differ."""
    variables = optimizer.variables
    if len(variables) != len(state) or any(tuple(v.shape) != a.shape for v, a in zip(variables, state, strict=True)):
        return False
    learning_rate = getattr(optimizer, "_learning_rate", None)
    for variable, value in zip(variables, state, strict=True):
        if variable is not learning_rate:
            variable.assign(value.astype(variable.dtype))
    return True


@contextlib.contextmanager
def carry_fit_optimizer(model: Any) -> Iterator[None]:
    """Run one ``fit`` call with optimizer state carried over from the model's previous one (module docstring)."""
    import tensorflow as tf
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    states = _carried_states(model)
    weights = {id(v) for v in model.trainable_variables}
    created: list[Any] = []
    applied: list[Any] = []
    original_init, original_apply = BaseOptimizer.__init__, BaseOptimizer.apply

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        created.append(self)

    def apply(self: Any, grads: Any, trainable_variables: Any = None) -> Any:
        if any(self is o for o in created) and not any(self is o for o in applied):
            variables = list(trainable_variables) if trainable_variables is not None else None
            if variables is not None and len(variables) == len(weights) and {id(v) for v in variables} == weights:
                applied.append(self)
                # Inside a traced train step this runs once, eagerly, before the first update.
                with tf.init_scope():
                    if not self.built:
                        self.build(variables)
                        self.built = True
                    any(_restore(self, state) for state in states)
        return original_apply(self, grads, trainable_variables)

    with _patch_lock:
        BaseOptimizer.__init__, BaseOptimizer.apply = init, apply
        try:
            yield
        finally:
            BaseOptimizer.__init__, BaseOptimizer.apply = original_init, original_apply
    if applied:
        _fit_optimizers[model] = applied[-1]
        _checkpoint_state.pop(model, None)
