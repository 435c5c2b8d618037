"""The model catalogue: roster names, defaults and accepted hyperparameters (no TensorFlow import).

The one source of truth for hyperparameter defaults: the services validate configs against it,
the roster's builders and compile step and the worker's runner read their defaults from it. The
builders themselves live in ``hopper.roster`` (they import Keras); an entry names its builder by
a string so that this module does not import them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hopper.engine.errors import ValidationError

#: Hyperparameters every roster model understands (optimizer and training knobs).
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
COMMON_HPARAMS: dict[str, object] = {
    "lr": 1e-3,
    "batch_size": 32,
    "optimizer": "adam",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "dropout": 0.0,
    "weights_path": None,
    # DP-SGD knobs (used only by a workload with a privacy section; None: the workload's value applies).
    "noise_multiplier": None,
    "l2_norm_clip": None,
    "microbatches": None,
}


@dataclass(frozen=True)
class RosterEntry:
    name: str
    builder: str  # "module:function" inside hopper.roster, imported lazily
    input_kind: str  # "tabular" | "image" | "tokens" | "any"
    defaults: dict = field(default_factory=dict)
    description: str = ""

    @property
    def accepted(self) -> set[str]:
        return set(COMMON_HPARAMS) | set(self.defaults)


def default_for(name: str) -> object:
    """The default of a hyperparameter every model understands (``lr``, ``batch_size``, ...)."""
    try:
        return COMMON_HPARAMS[name]
    except KeyError:
        raise KeyError(f"{name!r} is not a common hyperparameter; it is one of {', '.join(COMMON_HPARAMS)}") from None


ROSTER: dict[str, RosterEntry] = {
    e.name: e
    for e in [
        RosterEntry("mlp", "hopper.roster.vision:build_mlp", "any",
                    {"units": 128, "layers": 2, "activation": "relu"},
                    "Multi-layer perceptron over flattened features."),
        RosterEntry("cnn", "hopper.roster.vision:build_cnn", "image",
                    {"filters": 32, "conv_layers": 2, "dense_units": 64, "kernel_size": 3},
                    "Small convolutional network for images (H, W, C) or square tabular features."),
        RosterEntry("mobilenet_v2", "hopper.roster.vision:build_mobilenet_v2", "image",
                    {"alpha": 0.35, "min_size": 32},
                    "keras.applications.MobileNetV2 (random init unless weights_path)."),
        RosterEntry("resnet50", "hopper.roster.vision:build_resnet50", "image",
                    {"min_size": 32},
                    "keras.applications.ResNet50 (random init unless weights_path)."),
        RosterEntry("bert_base", "hopper.roster.text:build_bert_base", "tokens",
                    {"preset": "base", "layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072,
                     "vocab_size": 30522},
                    "Transformer encoder with BERT-base sizes; preset 'tiny' for quick runs."),
        RosterEntry("distilbert", "hopper.roster.text:build_distilbert", "tokens",
                    {"preset": "base", "layers": 6, "hidden": 768, "heads": 12, "intermediate": 3072,
                     "vocab_size": 30522},
                    "Transformer encoder with DistilBERT sizes; preset 'tiny' for quick runs."),
    ]
}


def get_entry(name: str) -> RosterEntry:
    try:
        return ROSTER[name]
    except KeyError:
        raise ValidationError(
            f"unknown roster model {name!r}; choose one of {', '.join(ROSTER)} or upload a script",
            field="model",
        ) from None


_NUMBER_RULES: dict[str, tuple[type, float, float]] = {
    "lr": (float, 1e-12, 10.0),  # > 0: a zero learning rate trains nothing and looks like a bad config
    "batch_size": (int, 1, 1 << 20),
    "momentum": (float, 0.0, 1.0),
    "weight_decay": (float, 0.0, 1.0),
    "dropout": (float, 0.0, 0.99),
    "noise_multiplier": (float, 0.0, 1e4),
    "l2_norm_clip": (float, 1e-12, 1e6),  # > 0: a zero clip would zero every gradient
    "microbatches": (int, 1, 1_000_000),
}


def _expected_type(entry: RosterEntry, key: str) -> type | None:
    if key in _NUMBER_RULES:
        return _NUMBER_RULES[key][0]
    default = entry.defaults.get(key, COMMON_HPARAMS.get(key))
    return None if default is None else type(default)


def check_hparam_value(name: str, key: str, value: object, *, field: str) -> None:
    """Reject a value of the wrong type or range for a roster hyperparameter (``units: "many"``)."""
    entry = get_entry(name)
    expected = _expected_type(entry, key)
    if value is None and expected is not None and entry.defaults.get(key, COMMON_HPARAMS.get(key)) is not None:
        # None for a knob with a real default is a typing slip ({units: }), not "use the default"
        raise ValidationError(f"{field} needs a value ({key} has no 'none'; leave it out for the default "
                              f"{entry.defaults.get(key, COMMON_HPARAMS.get(key))!r})", field=field)
    if value is None or expected is None:
        return
    if expected in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or (expected is int and int(value) != value):
            raise ValidationError(f"{field} must be {'an integer' if expected is int else 'a number'}, got {value!r}",
                                  field=field)
        low, high = _NUMBER_RULES.get(key, (expected, 0, float("inf")))[1:]
        if not low <= value <= high:
            raise ValidationError(f"{field}={value!r} is outside [{low}, {high}]", field=field)
    elif expected is str and not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, got {value!r}", field=field)
    if key == "optimizer" and str(value).lower() not in OPTIMIZERS:
        raise ValidationError(f"{field}: unknown optimizer {value!r}; choose one of {', '.join(OPTIMIZERS)}",
                              field=field)


def check_hparams(name: str, names: list[str] | set[str], *, field_prefix: str = "space") -> None:
    """Reject hyperparameters the roster model would silently ignore."""
    entry = get_entry(name)
    for key in names:
        if key not in entry.accepted:
            raise ValidationError(
                f"{field_prefix}.{key}: roster model {name!r} has no hyperparameter {key!r} "
                f"(it accepts {', '.join(sorted(entry.accepted))})",
                field=f"{field_prefix}.{key}",
            )
