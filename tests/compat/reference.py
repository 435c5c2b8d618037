"""The reference: each corpus script trained by KerasTuner itself, with the same hyperparameters, data and epochs.

A ``keras_tuner.GridSearch`` whose space is the config's values as ``hp.Fixed`` (``tune_new_entries=False``,
so a hyperparameter the config leaves out takes the script's default, as in Hopper) runs one trial: its
``run_trial`` and ``HyperModel.fit`` call are KerasTuner's own, and the trial's score is KerasTuner's
objective. Scripts that KerasTuner cannot take as they are get the adapter a KerasTuner user would write:

* a module-level model or a zero-argument builder: a builder that runs the script afresh (so every trial
  starts from new weights and freshly adapted preprocessing layers) and returns that model, with the
  config's ``lr`` set on the script's own optimizer;
* a model the script never compiles: Adam at the config's ``lr`` and the loss the labels and the output
  call for (``from_logits=True`` when the output layer has no activation), with accuracy;
* a builder taking ``(hp, data)``: called with the training rows as ``data`` (``.x``, ``.y``, ``.frame``);
* module-level names the script expects (``bind_globals``) are set in its namespace before it runs.
"""

from __future__ import annotations

import inspect
import itertools
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np

from tests.compat.data import Generated
from tests.compat.manifest import EPOCHS, Case

_modules = itertools.count()


def load_script(case: Case, data: types.SimpleNamespace) -> types.ModuleType:
    """Run the script in a fresh module whose namespace already holds the names it expects."""
    module = types.ModuleType(f"compat_reference_{case.name}_{next(_modules)}")
    module.__file__ = str(case.path)
    for name, attribute in case.bind_globals.items():
        setattr(module, name, getattr(data, attribute))
    # Registered like an imported module: autograph looks functions up through sys.modules (dataset.map).
    sys.modules[module.__name__] = module
    exec(compile(case.source, str(case.path), "exec"), module.__dict__)  # noqa: S102 - our own corpus
    return module


def _default_compile(model: Any, hp: Any, y_train: np.ndarray) -> None:
    import keras

    last = model.layers[-1]
    logits = getattr(getattr(last, "activation", None), "__name__", "linear") == "linear"
    units = int(model.outputs[0].shape[-1])
    if units == 1:
        loss = keras.losses.BinaryCrossentropy(from_logits=logits)
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0 if logits else 0.5)]
    elif y_train.ndim == 2:
        loss = keras.losses.CategoricalCrossentropy(from_logits=logits)
        metrics = ["accuracy"]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
        metrics = ["accuracy"]
    model.compile(optimizer=keras.optimizers.Adam(hp.get("lr") if "lr" in hp.values else 1e-3), loss=loss,
                  metrics=metrics)


def hypermodel_for(case: Case, data: types.SimpleNamespace) -> Any:
    """What KerasTuner gets as its ``hypermodel`` for ``case`` (see the module docstring)."""
    import keras
    import keras_tuner as kt

    entry_name = case.entry or case.reference_entry
    probe = load_script(case, data)
    entry = getattr(probe, entry_name)
    if inspect.isclass(entry) and issubclass(entry, kt.HyperModel):
        return entry(**case.entry_args)
    if isinstance(entry, kt.HyperModel):
        return entry
    if callable(entry) and not isinstance(entry, keras.Model):
        params = list(inspect.signature(entry).parameters)
        if params == ["hp"]:
            return entry
        if params == ["hp", "data"]:
            return lambda hp: entry(hp, data)
        if params:
            raise AssertionError(f"{case.name}: no reference adapter for an entry taking {params}")

    def build(hp: Any) -> Any:
        module = load_script(case, data)
        model = getattr(module, entry_name)
        model = model if isinstance(model, keras.Model) else model()
        if getattr(model, "optimizer", None) is None:
            _default_compile(model, hp, data.y)
        elif "lr" in hp.values:
            model.optimizer.learning_rate = float(hp.get("lr"))
        return model

    return build


def train_reference(case: Case, config: dict[str, Any], dataset: Generated, *, seed: int = 0,
                    directory: str | Path | None = None) -> float:
    """KerasTuner's objective for ``config`` of ``case``: one GridSearch trial, EPOCHS epochs."""
    import keras
    import keras_tuner as kt

    (x_train, y_train), (x_val, y_val) = dataset.split()
    frame = dataset.train_frame() if dataset.frame is not None else None
    data = types.SimpleNamespace(x=x_train, y=y_train, frame=frame)
    keras.utils.set_random_seed(seed)
    fixed = kt.HyperParameters()
    for name, value in config.items():
        fixed.Fixed(name, value)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        tuner = kt.GridSearch(hypermodel=hypermodel_for(case, data),
                              objective=kt.Objective(case.metric, case.direction), max_trials=1,
                              hyperparameters=fixed, tune_new_entries=False, seed=seed, directory=tmp,
                              project_name=case.name, overwrite=True)
        tuner.search(x_train, y_train, epochs=EPOCHS, validation_data=(x_val, y_val), verbose=0)
        trials = tuner.oracle.get_best_trials(1)
        if not trials or trials[0].score is None:
            raise AssertionError(f"{case.name}: KerasTuner finished no trial for {config}")
        score = float(trials[0].score)
    keras.backend.clear_session()
    return score
