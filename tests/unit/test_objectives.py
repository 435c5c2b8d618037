"""Hopper's own objectives: the class-weighted metrics against scikit-learn, FLOPs against a hand count, and the
launch-time checks of what a workload may ask for."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, recall_score

from hopper.engine import objectives as om
from hopper.engine.errors import ValidationError

CLASSES = ["cat", "dog", "eel"]


def _imbalanced(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.choice(3, size=300, p=[0.8, 0.15, 0.05])
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 3, 300))
    return y_true, y_pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_metrics_match_scikit_learn(seed: int) -> None:
    y_true, y_pred = _imbalanced(seed)
    costs = [[0, 1, 2], [10, 0, 1], [50, 5, 0]]
    objectives = om.resolve([{"metric": "val_balanced_accuracy", "direction": "max"},
                             {"metric": "val_recall@eel", "direction": "max"},
                             {"metric": "val_recall@1", "direction": "max"},
                             {"metric": "val_cost", "direction": "min", "cost_matrix": costs}],
                            task="classification", classes=CLASSES)
    got = om.class_metrics(y_true, y_pred, 3, objectives)
    per_class = recall_score(y_true, y_pred, average=None, labels=[0, 1, 2], zero_division=0)
    matrix = confusion_matrix(y_true, y_pred, labels=[0, 1, 2])
    assert got["val_balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
    assert got["val_recall@eel"] == pytest.approx(per_class[2], abs=1e-12)
    assert got["val_recall@1"] == pytest.approx(per_class[1], abs=1e-12)
    assert got["val_cost"] == pytest.approx((matrix * np.array(costs)).sum() / len(y_true), abs=1e-12)
    # The majority-class answer looks good on plain accuracy and is exposed by the balanced one.
    majority = om.class_metrics(y_true, np.zeros_like(y_true), 3, objectives)
    assert majority["val_balanced_accuracy"] == pytest.approx(1 / 3)
    assert majority["val_recall@eel"] == 0.0


def test_absent_class_follows_scikit_learn() -> None:
    y_true, y_pred = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2])
    got = om.class_metrics(y_true, y_pred, 3, [{"metric": "val_balanced_accuracy"},
                                               {"metric": "val_recall@2", "class_index": 2}])
    assert got["val_balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert got["val_recall@2"] == 0.0


def test_predicted_classes_reads_softmax_sigmoid_and_logits() -> None:
    assert om.predicted_classes(np.array([[0.1, 0.7, 0.2], [3.0, -1.0, 0.0]])).tolist() == [1, 0]
    assert om.predicted_classes(np.array([[0.2], [0.9]])).tolist() == [0, 1]
    assert om.predicted_classes(np.array([[-2.0], [0.3]])).tolist() == [0, 1]


@pytest.mark.parametrize(("objective", "task", "message"), [
    ({"metric": "val_recall@fox", "direction": "max"}, "classification", "no class 'fox'"),
    ({"metric": "val_cost", "direction": "min"}, "classification", "needs a cost_matrix"),
    ({"metric": "val_cost", "direction": "min", "cost_matrix": [[0, 1], [1, 0]]}, "classification", "3 x 3"),
    ({"metric": "val_cost", "direction": "min", "cost_matrix": [[0, 1, 1]] * 2 + [[0, -1, 0]]}, "classification",
     ">= 0"),
    ({"metric": "val_accuracy", "direction": "max", "cost_matrix": [[0]]}, "classification", "belongs to"),
    ({"metric": "val_balanced_accuracy", "direction": "max"}, "regression", "classification dataset"),
])
def test_bad_objectives_are_refused_precisely(objective: dict, task: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        om.resolve([{"metric": "val_accuracy", "direction": "max"}, objective], task=task,
                   classes=CLASSES if task == "classification" else None)
    assert caught.value.field.startswith("objectives.1")


def test_flops_count_dense_and_conv_layers_by_hand() -> None:
    import keras

    from hopper.mop_scheduler.worker.objectives import count_flops

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="valid")(inputs)  # 6x6 positions x 4 filters, 3x3x3 kernel
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, use_bias=False)(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    conv = 6 * 6 * (2 * 3 * 3 * 3 * 4 + 4)
    dense = 2 * 144 * 5
    head = 2 * 5 * 2 + 2
    assert count_flops(model) == conv + dense + head
    nested = keras.Sequential([keras.Input((8, 8, 3)), model])
    assert count_flops(nested) == conv + dense + head
