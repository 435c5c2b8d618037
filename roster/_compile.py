"""Shared compile step: optimizer, loss and metrics chosen from the config and the task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hopper.engine.catalog import OPTIMIZERS, default_for
from hopper.engine.errors import ValidationError


def make_optimizer(config: dict[str, Any]):  # noqa: ANN201
    """The optimizer a config asks for; defaults come from the catalogue (``hopper.engine.catalog``)."""
    import keras

    name = str(config.get("optimizer", default_for("optimizer"))).lower()
    lr = float(config.get("lr", default_for("lr")))
    wd = float(config.get("weight_decay", default_for("weight_decay")) or 0.0)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, weight_decay=wd or None)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=wd or 0.004)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=float(config.get("momentum", default_for("momentum"))),
                                    weight_decay=wd or None)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr, weight_decay=wd or None)
    raise ValidationError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}", field="optimizer")


def apply_learning_rate(model, config: dict[str, Any]) -> str | None:  # noqa: ANN001
    """Give a model that a script compiled itself the config's ``lr``, so that the lr a user searches
    over or a clone overrides is the one it trains with.

    Models compiled by ``make_optimizer`` already have it; a checkpoint restored into the model is
    its own config's, so it carries the same value. Returns a note when the lr could not be set
    (the script's optimizer follows a LearningRateSchedule), else None.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or "lr" not in config:
        return None
    try:
        optimizer.learning_rate = float(config["lr"])
    except TypeError:  # Keras refuses to replace a schedule by a constant
        return "the script's optimizer follows a learning-rate schedule: the config's lr is not applied"
    return None


@dataclass(frozen=True)
class LossChoice:
    """The loss and metrics a default compile uses, and why (the validation note repeats the reason)."""

    loss: str
    metrics: tuple[str, ...]
    reason: str
    from_logits: bool = False


def logits_output(model) -> bool:  # noqa: ANN001
    """Whether the model's single output is a ``Dense`` layer with no (linear) activation: it emits logits."""
    import keras

    outputs = getattr(model, "outputs", None)
    if outputs is not None and len(outputs) != 1:
        return False
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    last = layers[-1] if layers else None
    if not isinstance(last, keras.layers.Dense | keras.layers.EinsumDense):
        return False
    activation = getattr(last, "activation", None)
    return activation is None or getattr(activation, "__name__", "") == "linear"


def _output_units(model: Any) -> int | None:
    try:
        shape = model.outputs[0].shape
    except (AttributeError, IndexError, TypeError, ValueError):  # subclassed or not yet built models
        return None
    return None if shape[-1] is None else int(shape[-1])


def loss_and_metrics(task: str, label_kind: str | None = None, output_units: int | None = None) -> LossChoice:
    """The loss for the labels' kind (``hopper.engine.data``: sparse / one_hot / multi_label / regression).

    Classification metrics keep the name ``accuracy`` whatever the labels (Keras picks sparse, categorical or
    binary accuracy from the shapes; multi-label gets ``BinaryAccuracy(name="accuracy")``), so ``val_accuracy``
    stays the objective's name.
    """
    kind = label_kind or ("sparse" if task == "classification" else "regression")
    if kind == "regression":
        return LossChoice("mse", ("mae",), "the labels are numbers" if task == "regression" or output_units in (None, 1)
                          else f"the labels are {output_units} numbers per row (multi-output regression)")
    if kind == "multi_label":
        return LossChoice("binary_crossentropy", ("binary_accuracy",),
                          "the labels are multi-label (several 0/1 values per row)")
    if kind == "one_hot":
        return LossChoice("categorical_crossentropy", ("accuracy",), "the labels are one-hot rows")
    if output_units == 1:
        return LossChoice("binary_crossentropy", ("binary_accuracy",),
                          "the labels are class indices and the model has one output unit (binary)")
    return LossChoice("sparse_categorical_crossentropy", ("accuracy",), "the labels are class indices")


_EXPECTED_LOSSES = {"sparse": ("sparse_categorical_crossentropy", "binary_crossentropy"),
                    "one_hot": ("categorical_crossentropy",), "multi_label": ("binary_crossentropy",)}


def loss_mismatch(loss: Any, label_kind: str | None) -> str | None:
    """A note when a script's own compile (``model.loss``: a name, a Loss or a function) uses a crossentropy
    that does not fit the dataset's labels."""
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or getattr(loss, "__name__", None)
    if not isinstance(name, str) or "crossentropy" not in name or label_kind not in _EXPECTED_LOSSES:
        return None
    expected = _EXPECTED_LOSSES[label_kind]
    if any(name.lower() == e for e in expected):
        return None
    return (f"the script compiles with {name} but the dataset's labels are {label_kind.replace('_', '-')}: "
            f"{expected[0]} fits them")


def _metric(name: str):  # noqa: ANN202
    import keras

    # Named "accuracy" so that an epoch reports val_accuracy, the objective workloads are launched with.
    return keras.metrics.BinaryAccuracy(name="accuracy") if name == "binary_accuracy" else name


_LOSS_CLASSES = {"sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
                 "categorical_crossentropy": "CategoricalCrossentropy", "binary_crossentropy": "BinaryCrossentropy"}


def compile_for_task(model, config: dict[str, Any], task: str, label_kind: str | None = None) -> LossChoice:  # noqa: ANN001
    """Compile with the config's optimizer and the loss the labels call for; returns what was chosen and why.

    A classifier whose output is logits (``logits_output``) gets the crossentropy with ``from_logits=True``
    (and a binary accuracy thresholded at 0), which ``LossChoice.from_logits`` reports.
    """
    import keras

    choice = loss_and_metrics(task, label_kind, _output_units(model))
    from_logits = task == "classification" and choice.loss in _LOSS_CLASSES and logits_output(model)
    loss: Any = choice.loss
    metrics = [_metric(m) for m in choice.metrics]
    if from_logits:
        loss = getattr(keras.losses, _LOSS_CLASSES[choice.loss])(from_logits=True)
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0) if m == "binary_accuracy" else _metric(m)
                   for m in choice.metrics]
        choice = LossChoice(choice.loss, choice.metrics, choice.reason, from_logits=True)
    model.compile(optimizer=make_optimizer(config), loss=loss, metrics=metrics)
    return choice


def output_layer(n_outputs: int, task: str, label_kind: str | None = None):  # noqa: ANN201
    import keras

    if label_kind == "multi_label":
        return keras.layers.Dense(n_outputs, activation="sigmoid", name="predictions")
    if task == "classification":
        return keras.layers.Dense(n_outputs, activation="softmax", name="predictions")
    return keras.layers.Dense(n_outputs, name="predictions")


def maybe_load_weights(model, config: dict[str, Any]) -> None:  # noqa: ANN001
    """Fine-tune from a local weights file (no downloads); layers that do not match are skipped."""
    path = config.get("weights_path")
    if path:
        model.load_weights(path, skip_mismatch=True)
