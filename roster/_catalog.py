"""The roster's catalogue: names, defaults and accepted hyperparameters (no TensorFlow import)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hopper.engine.errors import ValidationError

#: Hyperparameters every roster model understands (optimizer and training knobs).
COMMON_HPARAMS: dict[str, object] = {
    "lr": 1e-3,
    "batch_size": 32,
    "optimizer": "adam",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "dropout": 0.0,
    "weights_path": None,
}
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


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
