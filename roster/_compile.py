"""Shared compile step: optimizer, loss and metrics chosen from the config and the task."""

from __future__ import annotations

from typing import Any

from hopper.engine.errors import ValidationError
from hopper.roster._catalog import OPTIMIZERS


def make_optimizer(config: dict[str, Any]):  # noqa: ANN201
    import keras

    name = str(config.get("optimizer", "adam")).lower()
    lr = float(config.get("lr", 1e-3))
    wd = float(config.get("weight_decay", 0.0) or 0.0)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, weight_decay=wd or None)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=wd or 0.004)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=float(config.get("momentum", 0.9)),
                                    weight_decay=wd or None)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr, weight_decay=wd or None)
    raise ValidationError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}", field="optimizer")


def loss_and_metrics(task: str) -> tuple[str, list[str]]:
    if task == "classification":
        return "sparse_categorical_crossentropy", ["accuracy"]
    return "mse", ["mae"]


def compile_for_task(model, config: dict[str, Any], task: str) -> None:  # noqa: ANN001
    loss, metrics = loss_and_metrics(task)
    model.compile(optimizer=make_optimizer(config), loss=loss, metrics=metrics)


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
