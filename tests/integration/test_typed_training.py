"""A real MOP run on a typed table: a keras.io structured-data style model with one named Input per column
(StringLookup on a string column, TextVectorization on free text, an Embedding on token ids), one-hot labels
given as three label columns, and no compile in the script: the default compile picks the loss."""

import math

import numpy as np
import pandas as pd
import pytest

from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

SCRIPT = '''
import keras


def build_model(hp):
    age = keras.Input(shape=(1,), name="age", dtype="int64")
    chol = keras.Input(shape=(1,), name="chol", dtype="float32")
    thal = keras.Input(shape=(1,), name="thal", dtype="string")
    note = keras.Input(shape=(), name="note", dtype="string")
    tokens = keras.Input(shape=(None,), name="tokens", dtype="int32")
    thal_onehot = keras.layers.StringLookup(vocabulary=["fixed", "normal", "reversible"], output_mode="one_hot")(thal)
    words = keras.layers.TextVectorization(vocabulary=["calm", "tired", "sore"], output_mode="multi_hot")(note)
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4)(tokens))
    numbers = keras.layers.Concatenate()([keras.ops.cast(age, "float32") / 80.0, (chol - 240.0) / 40.0])
    x = keras.layers.Concatenate()([thal_onehot, words, pooled, numbers])
    x = keras.layers.Dense(hp.Int("units", 8, 16, step=8, default=16), activation="relu")(x)
    return keras.Model([age, chol, thal, note, tokens], keras.layers.Dense(3, activation="softmax")(x))
'''


@pytest.fixture(scope="module")
def typed_run(tmp_path_factory):
    from hopper.app import open_services
    from tests.conftest import make_settings

    # One worker and one config for one epoch: every worker process and validation pays for importing TensorFlow.
    settings = make_settings(tmp_path_factory.mktemp("typed") / "home", workers=1)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    rng = np.random.default_rng(7)
    rows = 240
    thal = rng.choice(["fixed", "normal", "reversible"], rows)
    frame = pd.DataFrame({
        "age": rng.integers(29, 77, rows), "chol": rng.normal(240, 40, rows).round(1), "thal": thal,
        "note": [f"patient is {w} after the walk" for w in rng.choice(["calm", "tired", "sore"], rows)],
        "tokens": [str(list(rng.integers(1, 50, rng.integers(2, 6)))) for _ in range(rows)],
    })
    for name in ("fixed", "normal", "reversible"):  # the class is the thal value: learnable in one epoch
        frame[f"is_{name}"] = (thal == name).astype(int)
    path = settings.data_roots[0] / "heart.csv"
    frame.to_csv(path, index=False)
    dataset = services.register_dataset({"name": "heart", "path": str(path),
                                         "label_column": ["is_fixed", "is_normal", "is_reversible"]})
    # The scheduler starts first so that its worker imports TensorFlow while the script is validated.
    with RunningScheduler(services) as running:
        script = services.upload_script("structured.py", SCRIPT, dataset="heart")
        workload = services.launch_workload({
            "name": "structured", "script": script.id, "dataset": "heart", "procedure": "grid", "max_epochs": 1,
            "space": {"units": 16, "lr": 0.03, "batch_size": 8},
        })
        running.wait_for(lambda: services.get_workload(workload.id).status in ("done", "failed"), 300,
                         "the structured-data workload to finish")
    return services, dataset, script, workload.id


def test_named_inputs_train_on_the_typed_table_with_the_loss_the_one_hot_labels_need(typed_run):
    services, dataset, script, workload_id = typed_run
    assert dataset.schema["label"]["kind"] == "one_hot" and dataset.n_outputs == 3
    note = script.validation["notes"][0]
    assert "categorical_crossentropy because the labels are one-hot" in note
    configs = services.list_configs(workload_id)
    assert len(configs) == 1 and configs[0].status == "done" and configs[0].error is None, configs
    metrics = configs[0].latest_metrics
    assert math.isfinite(metrics["val_loss"])
    # thal decides the class: a model that really received the string column learns it (chance is 1/3).
    assert metrics["val_accuracy"] >= 0.6, metrics

