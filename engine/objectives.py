"""Objectives computed by Hopper itself, beside what the model's ``compile`` reports.

Keras reports what a model was compiled with (``val_loss``, ``val_accuracy``, ...). People who select models
for imbalanced data or for small devices need more, so the worker adds these at each epoch-end evaluation when
a workload names them (and re-evaluates kept checkpoints for one added later):

- ``flops``: forward floating-point operations per example, counted from the built model's layer shapes
  (see ``hopper.mop_scheduler.worker.objectives.count_flops`` for what is counted).
- ``val_balanced_accuracy``: the mean of the per-class recalls on the validation split (scikit-learn's
  ``balanced_accuracy_score``), so a model that always answers the majority class scores 1/K, not its share.
- ``val_recall@<class>``: the recall of one class, named by its label or by its index in the dataset's classes.
- ``val_cost``: the mean cost per validation example under a cost matrix the workload gives
  (``cost_matrix[true][predicted]``, rows and columns in the order of the dataset's classes).

The math is plain numpy here (no TensorFlow), shared by the worker and the tests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from hopper.engine.errors import ValidationError

FLOPS = "flops"
BALANCED_ACCURACY = "val_balanced_accuracy"
COST = "val_cost"
_RECALL = re.compile(r"^val_recall@(.+)$")


def is_computed(metric: str) -> bool:
    """Whether Hopper computes ``metric`` itself (rather than reading it from Keras' evaluation)."""
    return metric in (FLOPS, BALANCED_ACCURACY, COST) or bool(_RECALL.match(metric))


def computed_objectives(objectives: Sequence[dict]) -> tuple[dict, ...]:
    """Those of a workload's stored objectives that the worker computes, as the task carries them."""
    return tuple(dict(o) for o in objectives if is_computed(o["metric"]))


def needs_predictions(objectives: Sequence[dict]) -> bool:
    """Whether any of the objectives needs the model's predicted classes on the validation split."""
    return any(is_computed(o["metric"]) and o["metric"] != FLOPS for o in objectives)


def resolve(objectives: Sequence[dict], *, task: str, classes: Sequence[Any] | None) -> list[dict]:
    """Check the computed objectives against the dataset and return them ready for the worker.

    A ``val_recall@<class>`` gains ``class_index`` (its label's position in ``classes``), and ``val_cost`` keeps its
    ``cost_matrix`` (K x K, non-negative); other objectives pass unchanged.

    Raises:
        ValidationError: a class-based metric on a regression dataset, an unknown class, a cost matrix missing or
            of the wrong shape, or a cost matrix on another metric; ``field`` names the objective.
    """
    out = []
    for i, objective in enumerate(objectives):
        objective = {k: v for k, v in objective.items() if v is not None}
        metric, field = objective["metric"], f"objectives.{i}"
        if objective.get("cost_matrix") is not None and metric != COST:
            raise ValidationError(f"{field}: cost_matrix belongs to the {COST} objective, not {metric}",
                                  field=f"{field}.cost_matrix")
        if is_computed(metric) and metric != FLOPS and (task != "classification" or not classes):
            raise ValidationError(f"{field}: {metric} needs a classification dataset", field=f"{field}.metric")
        recall = _RECALL.match(metric)
        if recall:
            objective["class_index"] = class_index(recall.group(1), classes or [], field=f"{field}.metric")
        if metric == COST:
            objective["cost_matrix"] = check_cost_matrix(objective.get("cost_matrix"), len(classes or []),
                                                         field=f"{field}.cost_matrix")
        out.append(objective)
    return out


def class_index(name: str, classes: Sequence[Any], *, field: str) -> int:
    """The index of a class named by its label (as text) or by its index."""
    labels = [str(c) for c in classes]
    if name in labels:
        return labels.index(name)
    if name.isdigit() and int(name) < len(classes):
        return int(name)
    raise ValidationError(f"val_recall@{name}: the dataset has no class {name!r}; its classes are "
                          f"{', '.join(labels[:20])}{' ...' if len(labels) > 20 else ''} (or their index "
                          f"0..{len(labels) - 1})", field=field)


def check_cost_matrix(matrix: Any, n_classes: int, *, field: str) -> list[list[float]]:
    """A K x K matrix of finite, non-negative costs, rows the true class and columns the predicted one."""
    if matrix is None:
        raise ValidationError(f"{COST} needs a cost_matrix: {n_classes} rows of {n_classes} costs "
                              "(row = true class, column = predicted class)", field=field)
    try:
        array = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} must be a list of lists of numbers", field=field) from None
    if array.shape != (n_classes, n_classes):
        raise ValidationError(f"{field} must be {n_classes} x {n_classes} (the dataset's classes), got "
                              f"{' x '.join(map(str, array.shape)) or 'a scalar'}", field=field)
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValidationError(f"{field} must hold finite costs >= 0", field=field)
    return array.tolist()


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` (scikit-learn's ``confusion_matrix`` convention)."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def balanced_accuracy(matrix: np.ndarray) -> float:
    """Mean recall over the classes present in the true labels (as scikit-learn, which ignores absent ones)."""
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(matrix)[present] / support[present]))


def recall(matrix: np.ndarray, index: int) -> float:
    """Recall of one class; 0 when the validation split holds none of it (scikit-learn's zero_division=0)."""
    support = matrix[index].sum()
    return float(matrix[index, index] / support) if support else 0.0


def mean_cost(matrix: np.ndarray, costs: Sequence[Sequence[float]]) -> float:
    """The average cost of one prediction: sum(confusion * costs) / examples."""
    total = matrix.sum()
    return float((matrix * np.asarray(costs, dtype=float)).sum() / total) if total else 0.0


def class_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                  objectives: Sequence[dict]) -> dict[str, float]:
    """The prediction-based objectives among ``objectives``, from true and predicted class indices."""
    matrix = confusion(y_true, y_pred, n_classes)
    out: dict[str, float] = {}
    for objective in objectives:
        metric = objective["metric"]
        if metric == BALANCED_ACCURACY:
            out[metric] = balanced_accuracy(matrix)
        elif metric == COST:
            out[metric] = mean_cost(matrix, objective["cost_matrix"])
        elif _RECALL.match(metric):
            out[metric] = recall(matrix, int(objective["class_index"]))
    return out


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """Class indices from a classifier's outputs: argmax over K outputs, or a threshold on one (sigmoid or logit
    alike: a probability of 0.5 is a logit of 0, and both are read by their sign around their midpoint)."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        flat = outputs.reshape(len(outputs))
        midpoint = 0.5 if flat.min(initial=0.0) >= 0.0 and flat.max(initial=1.0) <= 1.0 else 0.0
        return (flat > midpoint).astype(np.int64)
    return np.argmax(outputs, axis=-1).astype(np.int64)


def roster_metrics(task: str, label_kind: str, *, private: bool = False) -> list[str]:
    """The per-epoch metrics a roster model reports on a dataset: what ``roster._compile`` compiles it with (loss
    plus accuracy or mae), prefixed ``val_`` and ``train_``, and what the scheduler adds (epoch time, parameter count,
    epsilon under DP-SGD). Hopper's computed objectives and edge metrics come on top (:func:`is_known_metric`)."""
    named = ["loss", "mae"] if label_kind == "regression" or task == "regression" else ["loss", "accuracy"]
    return [*(f"val_{m}" for m in named), *(f"train_{m}" for m in named), "params", "epoch_seconds",
            *(["epsilon"] if private else [])]


def is_known_metric(metric: str, reported: Sequence[str]) -> bool:
    """Whether a workload can ever record ``metric``: reported by the model, computed by Hopper, or measured at the
    edge (``edge_latency_ms@DEVICE``, ``model_bytes``; they arrive once a config is exported and profiled)."""
    return (metric in reported or is_computed(metric) or metric.startswith("model_bytes")
            or (metric.startswith("edge_") and "@" in metric))


def check_known_metrics(objectives: Sequence[dict], reported: Sequence[str]) -> None:
    """Refuse an objective no config would ever report (``val_acc``): it would train and never rank a config.

    Raises:
        ValidationError: ``field`` is ``objectives.<i>.metric``; the message lists the metrics there are.
    """
    for i, objective in enumerate(objectives):
        metric = objective["metric"]
        if not is_known_metric(metric, reported):
            raise ValidationError(
                f"objectives.{i}.metric: the model never reports {metric!r}; it reports {', '.join(reported)} "
                f"(or Hopper computes {FLOPS}, {BALANCED_ACCURACY}, val_recall@CLASS, {COST})",
                field=f"objectives.{i}.metric")
