"""Turn a model reference (roster name or uploaded script) plus hparams into a compiled Keras model.

This is where users' scripts are loaded, so it belongs to the worker: used inside worker and
validation processes (and by edge export, which rebuilds a trained model) only. It imports
TensorFlow lazily.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hopper.engine.catalog import default_for, get_entry
from hopper.engine.errors import ValidationError
from hopper.roster._compile import apply_learning_rate, compile_for_task, loss_mismatch

SCRIPT_PREFIX = "script:"


def load_script_module(path: str | Path):  # noqa: ANN201
    """Import a user's script file as a fresh module (unique name per content path)."""
    path = Path(path)
    name = f"hopper_user_script_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValidationError(f"cannot load {path} as a Python module", field="script")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def classify_entry(obj: Any) -> str:
    """``hypermodel`` (a keras_tuner.HyperModel class/instance), ``hp_fn`` or ``config_fn``."""
    import keras_tuner as kt

    if inspect.isclass(obj) and issubclass(obj, kt.HyperModel):
        return "hypermodel"
    if isinstance(obj, kt.HyperModel):
        return "hypermodel"
    if not callable(obj):
        raise ValidationError(f"entry point is a {type(obj).__name__}, not a function or HyperModel", field="entry_point")
    params = list(inspect.signature(obj).parameters)
    if params and params[0] in ("hp", "hps", "hyperparameters"):
        return "hp_fn"
    return "config_fn"


@dataclass
class ModelFactory:
    """Builds models for one workload's model reference.

    Args:
        model_ref: a roster name, or ``script:<path>``.
        entry_point: the function or class name inside a script.
        input_shape / n_outputs / task: the dataset's shape and task.
        label_kind: how the dataset's labels are given (sparse / one_hot / multi_label / regression): the
            default compile's loss follows it.
    """

    model_ref: str
    input_shape: tuple
    n_outputs: int
    task: str
    entry_point: str = "build_model"
    notes: list[str] = field(default_factory=list)
    label_kind: str | None = None

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(d) for d in self.input_shape)
        self._kind = "roster"
        self._entry: Any = None
        self._module = None
        self._compiled_by_factory = False
        if self.model_ref.startswith(SCRIPT_PREFIX):
            self._module = load_script_module(self.model_ref[len(SCRIPT_PREFIX):])
            if not hasattr(self._module, self.entry_point):
                raise ValidationError(
                    f"the script defines no {self.entry_point!r} (it has: "
                    f"{', '.join(n for n in dir(self._module) if not n.startswith('_')) or 'nothing'})",
                    field="entry_point",
                )
            self._entry = getattr(self._module, self.entry_point)
            self._kind = classify_entry(self._entry)
        else:
            entry = get_entry(self.model_ref)
            module_name, fn = entry.builder.split(":")
            self._entry = getattr(importlib.import_module(module_name), fn)

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def compiled_by_factory(self) -> bool:
        """True once a script returned an uncompiled model that ``build`` compiled with defaults."""
        return self._compiled_by_factory

    def _hyperparameters(self, hparams: dict):  # noqa: ANN202
        import keras_tuner as kt

        hp = kt.HyperParameters()
        hp.values.update(hparams)
        return hp

    def _hypermodel(self):  # noqa: ANN202
        return self._entry() if inspect.isclass(self._entry) else self._entry

    def build(self, hparams: dict):  # noqa: ANN201
        """A compiled Keras model for ``hparams``; an uncompiled script model gets a default compile.

        The one place where the config's optimizer hparams reach the model: roster models and
        uncompiled scripts are compiled with them, and a script that compiled itself gets the
        config's ``lr`` (``apply_learning_rate``). Restored and warm-started models are built here too.
        """
        import keras

        if self._kind == "roster":
            return self._entry(dict(hparams), self.input_shape, self.n_outputs, self.task, label_kind=self.label_kind)
        if self._kind == "config_fn":
            config = {"input_shape": self.input_shape, "num_classes": self.n_outputs, "task": self.task, **hparams}
            model = self._entry(config)
        elif self._kind == "hp_fn":
            model = self._entry(self._hyperparameters(hparams))
        else:
            model = self._hypermodel().build(self._hyperparameters(hparams))
        if not isinstance(model, keras.Model):
            raise ValidationError(
                f"{self.entry_point} returned {type(model).__module__}.{type(model).__name__}, not a keras.Model",
                field="entry_point",
            )
        if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
            choice = compile_for_task(model, hparams, self.task, self.label_kind)
            self._compiled_by_factory = True
            note = (f"{self.entry_point} returned an uncompiled model: compiled with "
                    f"optimizer={hparams.get('optimizer', default_for('optimizer'))} "
                    f"lr={hparams.get('lr', default_for('lr'))} for {self.task}, loss {choice.loss} "
                    f"because {choice.reason}")
        else:
            note = apply_learning_rate(model, hparams)
            mismatch = loss_mismatch(getattr(model, "loss", None), self.label_kind)
            if mismatch is not None and mismatch not in self.notes:
                self.notes.append(mismatch)
        if note is not None and note not in self.notes:
            self.notes.append(note)
        return model

    def fit(self, model, hparams: dict, x, y, **kwargs: Any):  # noqa: ANN001, ANN201
        """One call to fit; a HyperModel that overrides ``fit`` gets to run its own loop."""
        import keras_tuner as kt

        if self._kind == "hypermodel":
            hm = self._hypermodel()
            if type(hm).fit is not kt.HyperModel.fit:
                return hm.fit(self._hyperparameters(hparams), model, x, y, **kwargs)
        return model.fit(x, y, **kwargs)

    def search_space_from_script(self) -> dict | None:
        """The space a KerasTuner-style script declares through ``hp.*`` calls, if any."""
        if self._kind not in ("hp_fn", "hypermodel"):
            return None
        import keras_tuner as kt

        from hopper.engine.space import SearchSpace

        hp = kt.HyperParameters()
        if self._kind == "hp_fn":
            self._entry(hp)
        else:
            self._hypermodel().build(hp)
        return SearchSpace.from_keras_tuner(hp).to_dict()
