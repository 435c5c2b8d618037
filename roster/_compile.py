"""Shared compile step: optimizer, loss and metrics chosen from the config and the task."""

from __future__ import annotations

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


def loss_and_metrics(task: str) -> tuple[str, list[str]]:
    if task == "classification":
        return "sparse_categorical_crossentropy", ["accuracy"]
    return "mse", ["mae"]


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


def compile_for_task(model, config: dict[str, Any], task: str) -> bool:  # noqa: ANN001
    """Compile with the config's optimizer and the task's loss; a classifier whose output is logits gets a
    ``from_logits=True`` loss. Returns whether it did."""
    import keras

    loss, metrics = loss_and_metrics(task)
    from_logits = task == "classification" and logits_output(model)
    if from_logits:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=make_optimizer(config), loss=loss, metrics=metrics)
    return from_logits


def output_layer(n_outputs: int, task: str):  # noqa: ANN201
    import keras

    if task == "classification":
        return keras.layers.Dense(n_outputs, activation="softmax", name="predictions")
    return keras.layers.Dense(n_outputs, name="predictions")


def maybe_load_weights(model, config: dict[str, Any]) -> None:  # noqa: ANN001
    """Fine-tune from a local weights file (no downloads); layers that do not match are skipped."""
    path = config.get("weights_path")
    if path:
        model.load_weights(path, skip_mismatch=True)
