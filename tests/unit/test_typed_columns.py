"""Typed tables, label kinds and what a model is fed: pure numpy/pyarrow, no TensorFlow."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from hopper.engine.data import Columns, ModelInput, model_inputs, read_partition
from hopper.engine.errors import ValidationError
from hopper.roster._compile import loss_and_metrics

ROWS = 120


def _structured_csv(path, rows=ROWS):
    """keras.io's heart-disease style table: int, float, string category, free text, ragged token ids."""
    rng = np.random.default_rng(3)
    thal = rng.choice(["fixed", "normal", "reversible"], rows)
    frame = pd.DataFrame({
        "age": rng.integers(29, 77, rows),
        "chol-level": rng.normal(240, 40, rows).round(1),  # not an identifier: Petastorm must still read it
        "thal": thal,
        "review": [f"the patient feels {w} today and rests" for w in rng.choice(["fine", "bad", "tired"], rows)],
        "tokens": [str(list(rng.integers(1, 50, rng.integers(2, 7)))) for _ in range(rows)],
        "target": (thal == "reversible").astype(int),
    })
    frame.to_csv(path, index=False)
    return path


def test_a_csv_keeps_each_columns_type_in_the_partitions_and_the_schema(services, settings):
    path = _structured_csv(settings.data_roots[0] / "heart.csv")
    info = services.register_dataset({"name": "heart", "path": str(path), "label_column": "target"})
    columns = {c["name"]: c for c in info.schema["columns"]}
    assert [(n, c["type"]) for n, c in columns.items()] == [
        ("age", "int"), ("chol-level", "float"), ("thal", "string"), ("review", "text"), ("tokens", "token_ids")]
    assert columns["thal"]["distinct"] == 3 and columns["tokens"]["length"] == 6
    assert info.schema["label"] == {"kind": "sparse", "k": 2, "name": "target"}  # the name a bound frame uses
    from hopper.rest import create_app

    client = create_app(services, token="t" * 32, secret_key="s" * 32).test_client()
    shown = client.get(f"/api/v1/datasets/{info.id}", headers={"Authorization": "Bearer " + "t" * 32})
    assert shown.status_code == 200 and shown.json["schema"]["columns"] == info.schema["columns"]
    layout = services.store.datasets.layout(info.id)
    arrow = pq.read_schema(layout.partition_paths[0])
    assert [str(arrow.field(f"col{i}").type) for i in range(5)] == ["int64", "float", "string", "string", "list<element: int32>"]
    x, y = read_partition(layout.partition_paths[0], layout.feature_shape)
    assert isinstance(x, Columns) and len(x) == len(y) == info.n_train // 2
    assert x["age"].dtype == np.int64 and x["thal"].dtype == object and set(x["thal"]) <= {"fixed", "normal", "reversible"}
    tokens = x["tokens"]
    assert tokens.shape == (len(y), 6) and tokens.dtype == np.int32
    assert np.all(tokens[:, :2] > 0)  # ragged rows are padded with 0 at the end, never at the start
    with pytest.raises(ValidationError, match=r"string columns \(thal, review\).*name each keras.Input after a column"):
        x.matrix  # noqa: B018 - the property raises
    with pytest.raises(ValidationError, match=r"mlp takes one numeric matrix .* string columns \(thal, review\)") as refused:
        services.launch_workload({"name": "w", "model": "mlp", "dataset": "heart", "procedure": "manual"})
    assert refused.value.field == "model"


def test_petastorm_reads_the_typed_partitions_as_the_local_reader_does(services, settings):
    from hopper.engine.data import read_partition_petastorm

    path = _structured_csv(settings.data_roots[0] / "heart.csv")
    info = services.register_dataset({"name": "heart", "path": str(path),
                                      "label_column": "target", "task": "regression"})
    layout = services.store.datasets.layout(info.id)
    x_spark, y_spark = read_partition_petastorm(layout.validation_path, layout.feature_shape)
    x_local, y_local = read_partition(layout.validation_path, layout.feature_shape)
    assert x_spark.names == x_local.names and x_spark.types == x_local.types
    for name in x_local.names:
        assert x_spark[name].dtype == x_local[name].dtype
        np.testing.assert_array_equal(x_spark[name], x_local[name])
    np.testing.assert_array_equal(y_spark, y_local)


def test_one_hot_multi_label_and_multi_output_labels_are_accepted_with_their_kind(services, settings):
    rng = np.random.default_rng(0)
    # The shape of sklearn's digits with one-hot labels, the case that was refused: (N, 8, 8, 1) and (N, 10).
    one_hot = np.eye(10, dtype=np.int64)[rng.integers(0, 10, 300)]
    np.savez(settings.data_roots[0] / "onehot.npz", x=rng.random((300, 8, 8, 1)), y=one_hot)
    info = services.register_dataset({"name": "onehot", "path": str(settings.data_roots[0] / "onehot.npz")})
    assert info.schema["label"] == {"kind": "one_hot", "k": 10} and info.n_outputs == 10
    x, y = read_partition(services.store.datasets.layout(info.id).validation_path, info.feature_shape)
    assert y.shape == (len(x), 10) and np.all(y.sum(axis=1) == 1)

    frame = pd.DataFrame({"a": rng.random(80), "b": rng.random(80)})
    frame["cat"], frame["dog"] = (frame.a > 0.5).astype(int), (frame.b > 0.3).astype(int)
    frame["tags"] = [str([int(c), int(d)]) for c, d in zip(frame.cat, frame.dog, strict=True)]
    frame["h"], frame["w"] = frame.a * 2.5, frame.b - 0.1
    frame.to_csv(settings.data_roots[0] / "multi.csv", index=False)
    csv = str(settings.data_roots[0] / "multi.csv")
    by_columns = services.register_dataset({"name": "tags", "path": csv, "feature_columns": ["a", "b"],
                                            "label_column": ["cat", "dog"]})
    assert by_columns.schema["label"] == {"kind": "multi_label", "k": 2, "columns": ["cat", "dog"]}
    assert by_columns.classes == ["cat", "dog"] and by_columns.label_column == "cat,dog"
    by_lists = services.register_dataset({"name": "tags2", "path": csv, "feature_columns": ["a", "b"],
                                          "label_column": "tags"})
    assert by_lists.schema["label"] == {"kind": "multi_label", "k": 2, "name": "tags"} and by_lists.n_outputs == 2
    regression = services.register_dataset({"name": "hw", "path": csv, "feature_columns": ["a", "b"],
                                            "label_column": ["h", "w"]})
    assert regression.task == "regression" and regression.schema["label"]["kind"] == "regression"
    assert regression.n_outputs == 2
    with pytest.raises(ValidationError, match="one_hot needs exactly one 1 per row") as refused:
        services.register_dataset({"name": "bad", "path": csv, "feature_columns": ["a", "b"],
                                   "label_column": ["cat", "dog"], "label_kind": "one_hot"})
    assert refused.value.field == "label_kind"


@pytest.mark.parametrize("kind, units, loss, metric", [
    ("sparse", 10, "sparse_categorical_crossentropy", "accuracy"),
    ("sparse", 1, "binary_crossentropy", "binary_accuracy"),
    ("one_hot", 10, "categorical_crossentropy", "accuracy"),
    ("multi_label", 4, "binary_crossentropy", "binary_accuracy"),
    ("regression", 3, "mse", "mae"),
])
def test_the_default_loss_follows_the_label_kind_and_the_output(kind, units, loss, metric):
    task = "regression" if kind == "regression" else "classification"
    choice = loss_and_metrics(task, kind, units)
    assert (choice.loss, choice.metrics) == (loss, (metric,)) and choice.reason


def _table() -> Columns:
    return Columns(("age", "thal", "tokens"), ("int", "string", "token_ids"),
                   (np.array([40, 50, 60]), np.array(["fixed", "normal", "fixed"], dtype=object),
                    np.array([[1, 2, 0], [3, 0, 0], [4, 5, 6]], dtype=np.int32)))


def test_inputs_named_after_columns_get_each_column_in_the_declared_shape():
    fed = model_inputs(_table(), [ModelInput("age", (1,), "float32"), ModelInput("thal", (1,), "string"),
                                  ModelInput("tokens", (None,), "int32")])
    assert fed["age"].shape == (3, 1) and fed["age"].dtype == np.float32
    assert fed["thal"].shape == (3, 1) and fed["thal"][1, 0] == "normal"
    assert fed["tokens"].shape == (3, 3)
    assert model_inputs(_table(), [ModelInput("thal", (), "string")]).shape == (3,)
    one_string = Columns(("review", "n"), ("text", "int"), (np.array(["a b c", "d e f"], dtype=object), np.array([1, 2])))
    assert list(model_inputs(one_string, [ModelInput("text_in", (1,), "string")])[:, 0]) == ["a b c", "d e f"]
    numeric = Columns(("a", "b"), ("int", "float"), (np.array([1, 2]), np.array([0.5, 1.5], np.float32)))
    matrix = model_inputs(numeric, [ModelInput("input_layer", (2,), "float32")])
    assert matrix.dtype == np.float32 and matrix.tolist() == [[1.0, 0.5], [2.0, 1.5]]
    assert model_inputs(numeric, []).shape == (2, 2)  # a model whose Input is not declared yet


@pytest.mark.parametrize("inputs, message", [
    ([ModelInput("features", (3,), "float32")], r"string columns \(thal\).*age \(int\), thal \(string\)"),
    ([ModelInput("age", (1,), "float32"), ModelInput("other", (1,), "float32")], "inputs other are not named"),
    ([ModelInput("x1", (1,), "float32"), ModelInput("x2", (1,), "float32")], "2 inputs .* none is named"),
    ([ModelInput("thal", (1,), "float32")], "holds strings: declare dtype=\"string\""),
    ([ModelInput("age", (4,), "float32")], r"declares shape \(4,\) but column 'age' holds one value"),
    ([ModelInput("tokens", (5,), "int32")], "holds 3 token ids per row"),
])
def test_inputs_that_do_not_fit_the_table_are_refused_with_the_columns_listed(inputs, message):
    with pytest.raises(ValidationError, match=message):
        model_inputs(_table(), inputs)


@pytest.mark.parametrize("loss, kind, fits", [
    ("sparse_categorical_crossentropy", "one_hot", False), ("categorical_crossentropy", "sparse", False),
    ("categorical_crossentropy", "multi_label", False), ("categorical_crossentropy", "one_hot", True),
    ("mse", "one_hot", True),  # not a crossentropy: the script knows what it does
])
def test_a_scripts_own_crossentropy_that_does_not_fit_the_labels_is_noted(loss, kind, fits):
    from hopper.roster._compile import loss_mismatch

    note = loss_mismatch(loss, kind)
    assert (note is None) == fits
    if not fits:
        assert loss in note and kind.replace("_", "-") in note
