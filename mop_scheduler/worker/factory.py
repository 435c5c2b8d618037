"""Turn a model reference (roster name or uploaded script) plus hparams into a compiled Keras model.

This is where users' scripts are loaded, so it belongs to the worker: used inside worker and
validation processes (and by edge export, which rebuilds a trained model) only. It imports
TensorFlow lazily.

A script's entry may be any of the shapes Keras and KerasTuner code comes in (see the README's script
contract): ``fn(config)``, ``fn(hp)``, ``fn()`` reading module globals, a ``HyperModel`` class or instance,
or a module-level ``keras.Model``. Any function entry (and a HyperModel's constructor) may also declare a
``data`` parameter to receive a ``BuildData`` sample of the training rows.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import itertools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hopper.engine.catalog import default_for, get_entry
from hopper.engine.errors import ValidationError
from hopper.mop_scheduler.worker.build_data import BuildData
from hopper.mop_scheduler.worker.fit_optimizers import carry_fit_optimizer
from hopper.roster._compile import apply_learning_rate, compile_for_task, logits_output, loss_mismatch

SCRIPT_PREFIX = "script:"
DEFAULT_ENTRY = "build_model"
#: The parameter through which an entry asks for a sample of the training data.
DATA_PARAM = "data"
# Numbers the modules of scripts run again (``fresh``), so each run is a module of its own.
_FRESH_RUNS = itertools.count(1)
_HP_NAMES = ("hp", "hps", "hyperparameters")
# A one-argument function is only *guessed* to be an entry (when none is named) when its parameter says it
# takes hparams; named with --entry, any one-argument function is called with the config dict.
_CONFIG_NAMES = ("config", "cfg", "conf", "hparams", "params", "hyperparams", "configuration")
_FIT_KWARG_CLASH = re.compile(r"got multiple values for (?:keyword )?argument '(\w+)'")
# Builds per script at validation to find conditional hyperparameters (KerasTuner finds them over trials).
_DISCOVERY_BUILDS = 12

KIND_LABELS = {"config_fn": "function of config", "hp_fn": "function of hp", "noarg_fn": "function with no parameters",
               "hypermodel": "HyperModel", "model": "module-level keras.Model"}


def load_script_module(path: str | Path, bindings: dict[str, Any] | None = None, *,  # noqa: ANN201
                       fresh: bool = False):
    """Import a user's script file as a fresh module (unique name per content path).

    ``bindings`` are set as module globals before the script's code runs (``bind_globals``: a script that
    expects ``x_train`` at module level gets the training sample under that name). ``fresh`` runs the script
    again even when it was imported before (a new module object, with new module-level models).
    """
    path = Path(path)
    key = str(path.resolve()) + ("|" + ",".join(sorted(bindings)) if bindings else "")
    name = f"hopper_user_script_{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if fresh:
        name = f"{name}_{next(_FRESH_RUNS)}"
    elif name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValidationError(f"cannot load {path} as a Python module", field="script")
    module = importlib.util.module_from_spec(spec)
    module.__dict__.update(bindings or {})
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _parameters(fn: Callable) -> list[inspect.Parameter]:
    """Positional parameters of ``fn`` other than ``data`` (and ``self`` of a bound method)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != DATA_PARAM]


def takes_data(fn: Callable) -> bool:
    """Whether ``fn`` declares a ``data`` parameter (it then receives a BuildData)."""
    try:
        return DATA_PARAM in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def required_init_args(cls: type) -> list[str]:
    """Constructor parameters of a class that have no default (``data`` excluded: Hopper gives it)."""
    try:
        params = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in list(params)[1:] if p.default is p.empty and p.name != DATA_PARAM
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _function_kind(fn: Callable) -> str | None:
    params = _parameters(fn)
    required = [p for p in params if p.default is p.empty]
    if params and (params[0].name in _HP_NAMES or "HyperParameters" in str(params[0].annotation)):
        # A helper such as add_block(hp, model) is not an entry: Hopper passes hp alone.
        return "hp_fn" if len(required) <= 1 else None
    if not required:
        return "noarg_fn"
    if len(required) == 1:
        return "config_fn"
    return None


def classify_entry(obj: Any, name: str = "entry point") -> str:
    """The entry's kind: ``config_fn``, ``hp_fn``, ``noarg_fn``, ``hypermodel`` (class or instance) or ``model``.

    Raises:
        ValidationError: ``obj`` cannot be an entry; the message says what it is and what would work.
    """
    import keras
    import keras_tuner as kt

    if inspect.isclass(obj):
        if issubclass(obj, kt.HyperModel):
            return "hypermodel"
        what = "a keras.Model subclass" if issubclass(obj, keras.Model) else "a class"
        raise ValidationError(
            f"{name} is {what}, not a HyperModel: make the entry a function that returns it (def build_model(hp): "
            f"return {obj.__name__}(...)) or a module-level instance (model = {obj.__name__}(...))", field="entry_point")
    if isinstance(obj, kt.HyperModel):
        return "hypermodel"
    if isinstance(obj, keras.Model):
        return "model"
    if not callable(obj):
        raise ValidationError(f"{name} is a {type(obj).__name__}, not a function, HyperModel or keras.Model",
                              field="entry_point")
    kind = _function_kind(obj)
    if kind is None:
        required = [p.name for p in _parameters(obj) if p.default is p.empty]
        raise ValidationError(
            f"{name}({', '.join(required)}) needs {len(required)} arguments: Hopper calls an entry with one (hp or "
            f"a config dict), or none, plus an optional 'data'; give it defaults or wrap it", field="entry_point")
    return kind


def entry_candidates(module: Any) -> dict[str, str]:
    """Name -> kind of everything in a script module that could be its entry (for picking one by default).

    A HyperModel class whose instance the script also defines is left out: the instance is what it meant.
    """
    import keras
    import keras_tuner as kt

    found: dict[str, str] = {}
    instance_types = set()
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        if inspect.isclass(obj):
            if issubclass(obj, kt.HyperModel) and obj.__module__ == module.__name__:
                found[name] = "hypermodel"
        elif isinstance(obj, kt.HyperModel):
            found[name] = "hypermodel"
            instance_types.add(type(obj))
        elif isinstance(obj, keras.Model):
            found[name] = "model"
        elif inspect.isfunction(obj) and obj.__module__ == module.__name__:
            kind = _function_kind(obj)
            params = _parameters(obj)
            if kind in ("hp_fn", "noarg_fn") or (kind == "config_fn" and params[0].name in _CONFIG_NAMES):
                found[name] = kind
    return {n: k for n, k in found.items() if not (inspect.isclass(getattr(module, n)) and getattr(module, n)
                                                   in instance_types)}


def _describe(candidates: dict[str, str]) -> str:
    return ", ".join(f"{n} ({KIND_LABELS[k]})" for n, k in candidates.items())


def resolve_entry(module: Any, entry_point: str) -> tuple[str, Any, str]:
    """(name, object, kind) of the script's entry: the one named, else the only candidate when the name is
    the default ``build_model``.

    Raises:
        ValidationError: the named entry is missing or unusable, or there is no single candidate; the one-line
            message lists the candidates and shows ``--entry NAME``.
    """
    if entry_point and hasattr(module, entry_point):
        obj = getattr(module, entry_point)
        return entry_point, obj, classify_entry(obj, entry_point)
    candidates = entry_candidates(module)
    models = [n for n, k in candidates.items() if k == "model"]
    if len(models) == 1 and all(k in ("model", "noarg_fn") for k in candidates.values()):
        # `model = get_model(); model.compile(...)`, as Keras examples go: the compiled model is what runs.
        candidates = {models[0]: "model"}
    if entry_point in ("", DEFAULT_ENTRY) and len(candidates) == 1:
        name, kind = next(iter(candidates.items()))
        return name, getattr(module, name), kind
    if not candidates:
        names = ", ".join(n for n in vars(module) if not n.startswith("_") and not inspect.ismodule(getattr(module, n)))
        raise ValidationError(
            f"the script defines no {entry_point!r} and nothing else that can be an entry (a function of hp or "
            f"config, a function with no parameters, a HyperModel class or instance, a module-level keras.Model); "
            f"it has: {names or 'nothing'}", field="entry_point")
    if entry_point in ("", DEFAULT_ENTRY):
        raise ValidationError(f"the script has {len(candidates)} possible entries: {_describe(candidates)}; choose "
                              f"one with --entry NAME (entry_point in the REST body)", field="entry_point")
    raise ValidationError(f"the script defines no {entry_point!r}; its possible entries are: {_describe(candidates)}; "
                          f"choose one with --entry NAME (entry_point in the REST body)", field="entry_point")


def guess_binding(name: str) -> str:
    """What a free module global most likely names: the labels, the typed table, else the features."""
    lowered = name.lower()
    if lowered.startswith("y") or any(w in lowered for w in ("label", "target")):
        return "y"
    if "frame" in lowered or lowered.startswith("df") or lowered.endswith("df"):
        return "frame"
    return "x"


def import_with_free_globals(path: str | Path, sample: BuildData, limit: int = 8) -> tuple[Any, dict[str, str]]:
    """Import a script that may read module globals it never defines (``x_train``, ``train_dataframe``), binding
    each such name to the sample as it is met. Returns the module and the bindings it needed (name -> x/y/frame):
    what a workload must give as ``bind_globals``."""
    guesses: dict[str, str] = {}
    while True:
        try:
            bindings = {n: sample.value(w) for n, w in guesses.items()} or None
            return load_script_module(path, bindings), guesses
        except NameError as exc:
            if not exc.name or exc.name in guesses or len(guesses) >= limit:
                raise
            guesses[exc.name] = guess_binding(exc.name)


def synthetic_data(input_shape: tuple, n_outputs: int, task: str, rows: int = 64) -> BuildData:
    """A stand-in sample of the dataset's shape, for building where no training data is at hand."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, *input_shape)).astype("float32")
    if task == "classification":
        y = rng.integers(0, max(n_outputs, 2), size=rows).astype("int32")
    else:
        y = rng.normal(size=(rows, n_outputs) if n_outputs > 1 else rows).astype("float32")
    import pandas as pd

    frame = pd.DataFrame(x.reshape(rows, -1), columns=[f"f{i}" for i in range(int(np.prod(input_shape)))])
    frame["label"] = y if y.ndim == 1 else list(y)
    return BuildData(x, y, frame)


@dataclass
class ModelFactory:
    """Builds models for one workload's model reference.

    Args:
        model_ref: a roster name, or ``script:<path>``.
        entry_point: the entry's name inside a script; the default ``build_model`` also means "the only
            candidate" when the script has no ``build_model``.
        input_shape / n_outputs / task: the dataset's shape and task.
        entry_args: constructor arguments of a HyperModel class entry (the workload spec's ``entry_args``).
        bind_globals: script global name -> ``x``/``y``/``frame`` of the training sample, bound before the
            script runs (the workload spec's ``bind_globals``).
        data_source: gives the training sample (called at most once, only when an entry or a binding wants
            it); without one a synthetic sample of the dataset's shape stands in.
        label_kind: how the dataset's labels are given (sparse / one_hot / multi_label / regression): the
            default compile's loss follows it.
    """

    model_ref: str
    input_shape: tuple
    n_outputs: int
    task: str
    entry_point: str = DEFAULT_ENTRY
    entry_args: dict | None = None
    bind_globals: dict | None = None
    data_source: Callable[[], BuildData] | None = None
    notes: list[str] = field(default_factory=list)
    label_kind: str | None = None

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(d) for d in self.input_shape)
        self._kind = "roster"
        self._entry: Any = None
        self._hypermodel_obj: Any = None
        self._prototype: Any = None
        self._data: BuildData | None = None
        self._compiled_by_factory = False
        self._dropped_fit_kwargs: set[str] = set()
        self._reported_hparams: set[str] = set()
        self._bindings: dict[str, Any] | None = None
        if self.model_ref.startswith(SCRIPT_PREFIX):
            bindings = None
            if self.bind_globals:
                sample = self.sample()
                bindings = {name: sample.value(what) for name, what in self.bind_globals.items()}
                missing = [n for n, what in self.bind_globals.items() if bindings[n] is None]
                if missing:
                    raise ValidationError(f"bind_globals: {', '.join(missing)} asks for the typed table (frame) but "
                                          "this dataset has none; bind x or y instead", field="bind_globals")
            self._bindings = bindings
            module = load_script_module(self.model_ref[len(SCRIPT_PREFIX):], _copies(bindings))
            self.entry_point, self._entry, self._kind = resolve_entry(module, self.entry_point)
            if self._kind == "model":
                self._prototype = self._entry
            elif self._kind == "hypermodel":
                self._hypermodel_obj = self._instantiate() if inspect.isclass(self._entry) else self._entry
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

    @property
    def fits_itself(self) -> bool:
        """Whether the entry is a HyperModel that overrides ``fit`` (it then trains and reports itself)."""
        import keras_tuner as kt

        return self._hypermodel_obj is not None and type(self._hypermodel_obj).fit is not kt.HyperModel.fit

    @property
    def hypermodel_name(self) -> str:
        """The HyperModel entry's class name (for messages)."""
        return type(self._hypermodel_obj).__name__

    @property
    def uses_hp(self) -> bool:
        """Whether the entry declares KerasTuner hyperparameters (its space can grow as it runs)."""
        return self._kind in ("hp_fn", "hypermodel")

    def sample(self) -> BuildData:
        """The training sample builders receive (fetched once)."""
        if self._data is None:
            if self.data_source is not None:
                self._data = self.data_source()
            else:
                self._data = synthetic_data(self.input_shape, self.n_outputs, self.task)
                self._note("no training data at hand: a synthetic sample of the dataset's shape stood in for it")
        return self._data

    def _note(self, note: str | None) -> None:
        if note is not None and note not in self.notes:
            self.notes.append(note)

    def _instantiate(self):  # noqa: ANN202
        cls = self._entry
        args = dict(self.entry_args or {})
        if takes_data(cls.__init__):
            args[DATA_PARAM] = self.sample()
        missing = [a for a in required_init_args(cls) if a not in args]
        if missing:
            raise ValidationError(
                f"{cls.__name__}.__init__ needs {', '.join(missing)}: give them in the workload spec as entry_args: "
                f"{{{', '.join(f'{a}: ...' for a in missing)}}}, or make the entry an instance (hypermodel = "
                f"{cls.__name__}({', '.join(f'{a}=...' for a in missing)}) and --entry hypermodel)", field="entry_args")
        try:
            return cls(**args)
        except TypeError as exc:
            raise ValidationError(f"{cls.__name__}(**entry_args) failed: {exc}", field="entry_args") from exc

    def hyperparameters(self, hparams: dict):  # noqa: ANN201
        """A ``keras_tuner.HyperParameters`` whose values are the config's (what a trial's ``hp`` is)."""
        import keras_tuner as kt

        hp = kt.HyperParameters()
        hp.values.update(hparams)
        return hp

    def _call(self, fn: Callable, *args: Any):  # noqa: ANN202
        return fn(*args, data=self.sample()) if takes_data(fn) else fn(*args)

    def _script_model(self, hparams: dict, hp: Any):  # noqa: ANN202
        import keras

        if self._kind == "config_fn":
            config = {"input_shape": self.input_shape, "num_classes": self.n_outputs, "task": self.task, **hparams}
            return self._call(self._entry, config)
        if self._kind == "hp_fn":
            return self._call(self._entry, hp)
        if self._kind == "noarg_fn":
            return self._call(self._entry)
        if self._kind == "hypermodel":
            return self._call(self._hypermodel_obj.build, hp)
        # A module-level model: a fresh copy per config, so configs never share weights.
        adapted = _adapted_layers(self._prototype)
        if not adapted:
            try:
                return keras.models.clone_model(self._prototype)
            except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for layers it cannot re-create
                # A layer Keras cannot rebuild from its config (a custom ``standardize`` function, say).
                reason = f"it cannot be copied with keras.models.clone_model ({type(exc).__name__}: {exc})"
        else:
            # clone_model re-creates layers from their config: an adapted lookup table, vocabulary or
            # normalisation statistics would come back empty ("Table not initialized") or unadapted.
            reason = f"its {', '.join(adapted[:3])} hold adapted state that keras.models.clone_model does not copy"
        model = getattr(load_script_module(self.model_ref[len(SCRIPT_PREFIX):], _copies(self._bindings), fresh=True),
                        self.entry_point, None)
        if not isinstance(model, keras.Model):
            raise ValidationError(f"{self.entry_point}: {reason}, and running the script again did not define it",
                                  field="entry_point")
        self._note(f"{self.entry_point}: {reason}; each config runs the script again for its own model, "
                   "as a person would for a second model")
        return model

    def ensure_built(self, model: Any) -> None:
        """Create a deferred-shape model's weights (``Flatten()`` first, a Sequential without ``Input``) with the
        dataset's input shape, as its first call on the data would."""
        if model.built and model.weights:
            return
        try:
            model.build((None, *self.input_shape))
        except Exception:  # noqa: BLE001 - some subclassed models only build by being called
            import numpy as np

            model(np.zeros((1, *self.input_shape), dtype="float32"))

    def _compile_like_prototype(self, model: Any, hparams: dict) -> str | None:
        """Compile a clone with the module-level model's own compile (loss, metrics, optimizer class and its
        settings); the config's ``optimizer`` / ``lr`` override those when present."""
        import keras

        from hopper.roster._compile import make_optimizer

        config = self._prototype.get_compile_config()
        note = None
        if "optimizer" in hparams:
            config["optimizer"] = keras.optimizers.serialize(make_optimizer(hparams))
        elif "lr" in hparams:
            optimizer_config = config["optimizer"].get("config", {}) if isinstance(config["optimizer"], dict) else {}
            if isinstance(optimizer_config.get("learning_rate"), float | int):
                optimizer_config["learning_rate"] = float(hparams["lr"])
            else:
                note = "the script's optimizer follows a learning-rate schedule: the config's lr is not applied"
        model.compile_from_config(config)
        return note

    @property
    def is_roster(self) -> bool:
        """A roster model: Hopper's own builders, whose graph depends on the hparams but on ``lr`` and
        ``batch_size`` only through the optimizer's learning-rate variable and the batch dimension."""
        return self._kind == "roster"

    def build(self, hparams: dict, hp: Any = None):  # noqa: ANN201
        """A compiled, built Keras model for ``hparams``; an uncompiled script model gets a default compile.

        The one place where the config's optimizer hparams reach the model: roster models and
        uncompiled scripts are compiled with them, and a script that compiled itself gets the
        config's ``lr`` (``apply_learning_rate``). Restored and warm-started models are built here too.
        ``hp`` is the trial's HyperParameters when the caller wants to see what the build declared.
        """
        import keras

        if self._kind == "roster":
            return self._entry(dict(hparams), self.input_shape, self.n_outputs, self.task, label_kind=self.label_kind)
        hp = hp if hp is not None else self.hyperparameters(hparams)
        model = self._script_model(hparams, hp)
        if not isinstance(model, keras.Model):
            raise ValidationError(
                f"{self.entry_point} returned {type(model).__module__}.{type(model).__name__}, not a keras.Model",
                field="entry_point",
            )
        self.ensure_built(model)
        if self._kind == "model" and self._prototype.compiled:
            self._note(self._compile_like_prototype(model, hparams))
        elif getattr(model, "optimizer", None) is None or not getattr(model, "compiled", True):
            choice = compile_for_task(model, hparams, self.task, self.label_kind)
            self._compiled_by_factory = True
            self._note(f"{self.entry_point} returned an uncompiled model: compiled with "
                       f"optimizer={hparams.get('optimizer', default_for('optimizer'))} "
                       f"lr={hparams.get('lr', default_for('lr'))} for {self.task}, loss {choice.loss} "
                       f"because {choice.reason}"
                       + ("; its output has no activation (logits): loss from_logits=True" if choice.from_logits
                          else ""))
        else:
            self._note(apply_learning_rate(model, hparams))
        if not self._compiled_by_factory:
            self._note(loss_mismatch(getattr(model, "loss", None), self.label_kind))
        if self.task == "classification" and not self._compiled_by_factory and logits_output(model):
            self._note_compiled_logits(model)
        return model

    def _note_compiled_logits(self, model: Any) -> None:
        """Warn when the script compiled a logits output with a crossentropy that expects probabilities (a
        custom loss function is the script's business)."""
        loss = getattr(model, "loss", None)
        if isinstance(loss, str):
            expects_probabilities = "crossentropy" in loss
        else:
            config = loss.get_config() if hasattr(loss, "get_config") else {}
            expects_probabilities = config.get("from_logits") is False
        if expects_probabilities:
            self._note("the model outputs logits (no final activation) but its loss expects probabilities: "
                       "compile it with from_logits=True")

    # -- KerasTuner's fit contract ------------------------------------------------------------------------------
    @property
    def fit_names_validation_data(self) -> bool:
        """Whether the HyperModel's own ``fit`` declares a ``validation_data`` parameter."""
        return "validation_data" in inspect.signature(self._hypermodel_obj.fit).parameters

    def fit_like_keras_tuner(self, model: Any, hp: Any, x: Any, y: Any, *, validation_data: Any = None) -> Any:
        """Call the HyperModel's own ``fit`` as ``keras_tuner.Tuner.run_trial`` does:
        ``fit(hp, model, x, y, callbacks=[...], epochs=1[, validation_data=...])``, nothing else.

        ``validation_data`` is passed when given (the sub-epoch ends an epoch) or when ``fit`` requires it.
        A ``fit`` that sets one of these itself (``model.fit(*args, epochs=hp.Int(...), **kwargs)``) collides
        with ours; that keyword is then left out, for this call and the next ones, and said in a note.
        """
        signature = inspect.signature(self._hypermodel_obj.fit).parameters
        needs_validation = "validation_data" in signature and signature["validation_data"].default is inspect._empty
        kwargs: dict[str, Any] = {"callbacks": [], "epochs": 1}
        if validation_data is not None or needs_validation:
            kwargs["validation_data"] = validation_data
        while True:
            call = {k: v for k, v in kwargs.items() if k not in self._dropped_fit_kwargs}
            try:
                with carry_fit_optimizer(model):
                    return self._hypermodel_obj.fit(hp, model, x, y, **call)
            except TypeError as exc:
                clash = _FIT_KWARG_CLASH.search(str(exc))
                if clash is None or clash.group(1) not in call:
                    raise
                self._dropped_fit_kwargs.add(clash.group(1))
                self._note(f"{type(self._hypermodel_obj).__name__}.fit sets {clash.group(1)} itself: Hopper no "
                           f"longer passes it")

    def fit(self, model, hparams: dict, x, y, **kwargs: Any):  # noqa: ANN001, ANN201
        """The plain path: ``model.fit(x, y, **kwargs)`` with Hopper's batch size and options."""
        return model.fit(x, y, **kwargs)

    def new_hparams(self, hp: Any, hparams: dict) -> dict:
        """The space (as a SearchSpace dict) of what ``hp`` saw that the config does not set and that this factory
        has not reported yet: hyperparameters first declared in a later build or in ``fit``."""
        from hopper.engine.space import SearchSpace

        fresh = [h for h in hp.space if h.name not in hparams and h.name not in self._reported_hparams]
        if not fresh:
            return {}
        import keras_tuner as kt

        subset = kt.HyperParameters()
        subset.merge(fresh)
        self._reported_hparams.update(h.name for h in fresh)
        return SearchSpace.from_keras_tuner(subset).to_dict()

    # -- the space, as KerasTuner's oracle would see it over trials ---------------------------------------------
    def search_space_from_script(self, *, run_fit: bool = True) -> dict | None:
        """The space a KerasTuner-style script declares through ``hp.*`` calls, if any.

        One build with defaults sees only the hyperparameters that build reaches; as KerasTuner's oracle learns
        the rest over trials, this builds again with other values of what it found (each Int's maximum, each
        Choice's and Boolean's values: the parents of conditional layers), up to a bound, and runs an overriding
        ``fit`` once on a few sample rows to see what ``fit`` declares (``hp.Choice("batch_size")``).
        """
        if not self.uses_hp:
            return None
        import keras_tuner as kt

        from hopper.engine.space import SearchSpace

        seen = kt.HyperParameters()
        self._script_model({}, seen)
        tried: set[tuple[str, Any]] = set()
        for _ in range(_DISCOVERY_BUILDS):
            trial = next(((h.name, v) for h in seen.space for v in _probe_values(h) if (h.name, v) not in tried), None)
            if trial is None:
                break
            tried.add(trial)
            hp = kt.HyperParameters()
            hp.values[trial[0]] = trial[1]
            self._script_model({}, hp)
            seen.merge(hp, overwrite=False)
        if run_fit and self.fits_itself:
            hp = kt.HyperParameters()
            model = self.build({}, hp)
            sample = self.sample()
            x, y = sample.x[:16], sample.y[:16]
            self.fit_like_keras_tuner(model, hp, x, y, validation_data=(x, y))
            seen.merge(hp, overwrite=False)
        return SearchSpace.from_keras_tuner(seen).to_dict()


def _probe_values(h: Any) -> list:
    """Values of a found hyperparameter worth building with to reach the ones it conditions."""
    kind = type(h).__name__
    if kind == "Int":
        return [h.max_value]
    if kind == "Choice":
        return list(h.values)[1:]
    if kind == "Boolean":
        return [True, False]
    return []


def _copies(bindings: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each run of a script gets its own copy of the bound sample: keras.io's examples ``pop`` the label
    column from ``train_dataframe``, which must not take it from the next run or the training sample."""
    if bindings is None:
        return None
    return {name: value.copy() if hasattr(value, "copy") else value for name, value in bindings.items()}


def _adapted_layers(model: Any) -> list[str]:
    """Names of the model's preprocessing layers (``adapt``-able: lookups, TextVectorization, Normalization,
    Discretization) that hold state learned from data."""
    layers = model._flatten_layers(include_self=False) if hasattr(model, "_flatten_layers") else model.layers
    return [f"{type(layer).__name__} '{layer.name}'" for layer in layers if callable(getattr(layer, "adapt", None))]


def metrics_from_fit(results: Any, objective: str, direction: str) -> dict[str, float]:
    """What a HyperModel's ``fit`` reported, as KerasTuner hands it to the oracle: a float is the objective's
    value, a dict is taken as is, a History gives its (one) epoch's metrics.

    Raises:
        keras_tuner errors (FatalTypeError/FatalValueError), with KerasTuner's own message, when ``fit``
            returned nothing usable (None, or a dict without the objective).
    """
    import keras
    import keras_tuner as kt
    from keras_tuner.src.engine import tuner_utils

    kt_objective = kt.Objective(objective, direction)
    history = results.history if isinstance(results, keras.callbacks.History) else None
    if history is not None and objective not in history:
        # KerasTuner would fail this trial; under MOP the epoch keeps what fit did report (a note says why).
        metrics = {k: v[-1] for k, v in history.items() if v}
    else:
        tuner_utils.validate_trial_results(results, kt_objective, "HyperModel.fit()")
        metrics = tuner_utils.convert_to_metrics_dict(results, kt_objective)
    out = {}
    for name, value in (metrics or {}).items():
        try:
            out[str(name)] = float(value)
        except (TypeError, ValueError):
            continue
    return out
