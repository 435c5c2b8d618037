"""Script entries as Keras and KerasTuner code comes: resolution, rejections, deferred shapes, logits, build data,
the space KerasTuner's oracle would see, and HyperModel.fit called exactly as keras_tuner's Tuner calls it.

Real Keras models and real keras_tuner objects throughout; data is a few dozen rows.
"""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hopper.engine.entities import DatasetLayout
from hopper.engine.errors import ValidationError
from hopper.mop_scheduler.worker.build_data import BuildData
from hopper.mop_scheduler.worker.factory import ModelFactory
from hopper.mop_scheduler.worker.protocol import SubEpochTask

SHAPE, CLASSES = (6,), 3

# The scripts that train compile with run_eagerly=True: on a few dozen rows that is faster than tracing a
# tf.function, and nothing here depends on graph mode.
SCRIPTS = {
    "config_fn": """
        import keras
        def build_model(config):
            return keras.Sequential([keras.Input(config["input_shape"]),
                                     keras.layers.Dense(config["num_classes"], activation="softmax")])
    """,
    "hp_fn_other_name": """
        import keras
        def make_net(hp):
            return keras.Sequential([keras.Input((6,)), keras.layers.Dense(hp.Int("units", 4, 8, step=4)),
                                     keras.layers.Dense(3, activation="softmax")])
    """,
    "noarg_globals": """
        import keras
        NUM_CLASSES = 3
        def create_model():
            model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(NUM_CLASSES)])
            model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
            return model
    """,
    "module_model": """
        import keras
        model = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(8, activation="relu"),
                                  keras.layers.Dense(3)])
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.003),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                      run_eagerly=True)
    """,
    "model_from_function": """
        import keras
        def get_model():
            return keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
        model = get_model()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    """,
    "hypermodel_args": """
        import keras, keras_tuner as kt
        class Classifier(kt.HyperModel):
            def __init__(self, num_classes, width=4):
                super().__init__()
                self.num_classes, self.width = num_classes, width
            def build(self, hp):
                return keras.Sequential([keras.Input((6,)), keras.layers.Dense(self.width),
                                         keras.layers.Dense(self.num_classes, activation="softmax")])
    """,
    "hypermodel_instance": """
        import keras, keras_tuner as kt
        class Classifier(kt.HyperModel):
            def __init__(self, num_classes):
                super().__init__()
                self.num_classes = num_classes
            def build(self, hp):
                return keras.Sequential([keras.Input((6,)), keras.layers.Dense(self.num_classes, activation="softmax")])
        hypermodel = Classifier(num_classes=3)
    """,
    "data_param": """
        import keras
        def build_model(hp, data):
            norm = keras.layers.Normalization()
            norm.adapt(data.x)
            return keras.Sequential([keras.Input((6,)), norm, keras.layers.Dense(3, activation="softmax")])
    """,
    "bound_globals": """
        import keras
        norm = keras.layers.Normalization()
        norm.adapt(x_train)
        SEEN = (len(x_train), len(y_train))
        def build():
            return keras.Sequential([keras.Input((6,)), norm, keras.layers.Dense(3, activation="softmax")])
    """,
    "ambiguous": """
        import keras
        def build_a(hp):
            return keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
        def build_b(config):
            return keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
        def add_block(hp, model):  # a helper, not an entry
            model.add(keras.layers.Dense(hp.Int("units", 4, 8)))
    """,
    "nothing": """
        import keras
        WIDTH = 4
        def helper(a, b):
            return a + b
    """,
    "subclass_class": """
        import keras
        class Net(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(3)
            def call(self, x):
                return self.dense(x)
    """,
    "two_args": """
        import keras
        def build_model(units, classes):
            return None
    """,
    "not_callable": """
        build_model = 42
    """,
    "conditional": """
        import keras, keras_tuner as kt
        def build_model(hp):
            model = keras.Sequential([keras.Input((6,))])
            for i in range(hp.Int("num_layers", 1, 3)):
                model.add(keras.layers.Dense(hp.Int(f"units_{i}", 4, 8, step=4), activation="relu"))
            if hp.Boolean("dropout"):
                model.add(keras.layers.Dropout(rate=hp.Float("rate", 0.1, 0.5)))
            model.add(keras.layers.Dense(3, activation="softmax"))
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            return model
    """,
    # A KerasTuner-guide HyperModel: fit declares hparams, preprocesses, passes batch_size itself, requires
    # validation_data, and returns a float objective computed on its own preprocessing.
    "preprocessing_fit": """
        import keras, keras_tuner as kt, numpy as np
        CALLS = []
        class Cropper(kt.HyperModel):
            def build(self, hp):
                model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(hp.Choice("units", [4, 8])),
                                          keras.layers.Dense(3, activation="softmax")])
                model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                              run_eagerly=True)
                return model
            def fit(self, hp, model, x, y, validation_data, callbacks=None, **kwargs):
                CALLS.append({"args": (type(x).__name__, type(y).__name__), "validation_data": validation_data,
                              "callbacks": callbacks, **kwargs})
                scale = 0.5 if hp.Boolean("normalize") else 1.0
                crop = lambda a: a[:, :4] * scale
                model.fit(crop(x), y, batch_size=hp.Choice("batch_size", [8, 16]), callbacks=callbacks, **kwargs)
                if validation_data is None:
                    return None
                xv, yv = validation_data
                return float(model.evaluate(crop(xv), yv, verbose=0, return_dict=True)["accuracy"]) + 1000.0
    """,
    "custom_loop": """
        import keras, keras_tuner as kt, tensorflow as tf
        STEPS = []
        class Loop(kt.HyperModel):
            def build(self, hp):
                inputs = keras.Input((6,))
                flat = keras.layers.Flatten()(inputs)
                return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(hp.Choice("units", [4, 8]))(flat)))
            def fit(self, hp, model, x, y, validation_data, callbacks=None, **kwargs):
                optimizer = keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-1, default=1e-3))
                loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
                @tf.function
                def step(a, b):
                    with tf.GradientTape() as tape:
                        loss = loss_fn(b, model(a))
                    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                                  model.trainable_variables))
                for a, b in tf.data.Dataset.from_tensor_slices((x, y)).batch(8):
                    step(a, b)
                STEPS.append((int(optimizer.iterations.numpy()), round(float(optimizer.learning_rate.numpy()), 6)))
                xv, yv = validation_data
                return float(loss_fn(yv, model(xv)))
    """,
    "history_fit": """
        import keras, keras_tuner as kt
        class Plain(kt.HyperModel):
            def build(self, hp):
                model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
                model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                              run_eagerly=True)
                return model
            def fit(self, hp, model, *args, **kwargs):
                return model.fit(*args, epochs=hp.Int("epochs", 1, 2), verbose=0, **kwargs)
    """,
    "module_model_adapted": """
        import keras
        import numpy as np
        colours = train_dataframe["colour"].to_numpy()
        lookup = keras.layers.StringLookup(output_mode="one_hot")
        lookup.adapt(colours)
        colour = keras.Input(shape=(1,), dtype="string", name="colour")
        model = keras.Model(colour, keras.layers.Dense(2, activation="softmax")(lookup(colour)))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"], run_eagerly=True)
        LABELS = train_dataframe.pop("target").to_numpy()
    """,
}


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("scripts")
    out = {}
    for name, text in SCRIPTS.items():
        (root / f"{name}.py").write_text(textwrap.dedent(text))
        out[name] = f"script:{root / name}.py"
    return out


def _sample(rows: int = 48) -> BuildData:
    rng = np.random.default_rng(3)
    return BuildData(rng.normal(size=(rows, *SHAPE)).astype("float32"), rng.integers(0, CLASSES, rows))


def _factory(ref: str, entry: str = "build_model", **kwargs) -> ModelFactory:
    return ModelFactory(ref, SHAPE, CLASSES, "classification", entry_point=entry, data_source=_sample, **kwargs)


@pytest.mark.parametrize("script,entry,kind", [
    ("config_fn", "build_model", "config_fn"), ("hp_fn_other_name", "build_model", "hp_fn"),
    ("noarg_globals", "build_model", "noarg_fn"), ("module_model", "build_model", "model"),
    ("hypermodel_instance", "build_model", "hypermodel"), ("data_param", "build_model", "hp_fn"),
    ("ambiguous", "build_b", "config_fn"), ("model_from_function", "build_model", "model")])
def test_every_entry_kind_builds_a_compiled_built_model(scripts, script, entry, kind) -> None:
    factory = _factory(scripts[script], entry)
    assert factory.kind == kind
    model = factory.build({"lr": 0.01})
    assert model.built and model.count_params() > 0 and model.optimizer is not None
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(0.01)


def test_a_module_level_compiled_model_is_cloned_per_config_keeping_its_compile(scripts) -> None:
    factory = _factory(scripts["module_model"])
    first, second = factory.build({}), factory.build({"lr": 0.05})
    assert first is not second and first.layers[1] is not second.layers[1]
    # Deferred shape (Flatten first, no Input) built with the dataset's shape, before anything counts params.
    assert first.count_params() == 6 * 8 + 8 + 8 * 3 + 3
    assert type(first.optimizer).__name__ == "RMSprop"
    assert float(np.asarray(first.optimizer.learning_rate)) == pytest.approx(0.003)
    assert float(np.asarray(second.optimizer.learning_rate)) == pytest.approx(0.05)
    assert first.loss.get_config()["from_logits"] is True
    assert type(factory.build({"optimizer": "sgd"}).optimizer).__name__ == "SGD"
    x, y = _sample().x, _sample().y
    assert set(first.fit(x, y, epochs=1, verbose=0).history) == {"loss", "accuracy"}


def test_the_only_candidate_is_picked_and_a_hypermodel_class_gets_its_entry_args(scripts) -> None:
    factory = _factory(scripts["hp_fn_other_name"])
    assert factory.entry_point == "make_net"
    built = _factory(scripts["hypermodel_args"], entry_args={"num_classes": 3, "width": 5}).build({})
    assert built.layers[0].units == 5 and built.output_shape == (None, 3)


def test_builders_receive_the_training_sample_and_bound_globals(scripts) -> None:
    sample = _sample()
    model = _factory(scripts["data_param"]).build({})
    assert np.allclose(np.asarray(model.layers[0].mean).ravel(), sample.x.mean(axis=0), atol=1e-4)
    from hopper.mop_scheduler.worker.factory import import_with_free_globals

    # Validation finds the globals a script reads without defining them: what the workload must bind.
    _, free = import_with_free_globals(scripts["bound_globals"][len("script:"):] + "", sample)
    assert free == {"x_train": "x", "y_train": "y"}
    factory = _factory(scripts["bound_globals"], bind_globals={"x_train": "x", "y_train": "y"})
    assert factory.kind == "noarg_fn"
    assert np.allclose(np.asarray(factory.build({}).layers[0].mean).ravel(), sample.x.mean(axis=0), atol=1e-4)


def test_the_default_compile_detects_a_logits_output_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "logits.py").write_text("import keras\ndef build_model(config):\n"
                                        "    return keras.Sequential([keras.layers.Dense(3)])\n")
    factory = _factory(f"script:{tmp_path / 'logits.py'}")
    model = factory.build({})
    assert factory.compiled_by_factory and model.loss.get_config()["from_logits"] is True
    assert any("from_logits=True" in note for note in factory.notes)


@pytest.mark.parametrize("script,entry,fragments", [
    ("ambiguous", "build_model", ["2 possible entries", "build_a (function of hp)", "build_b (function of config)",
                                  "--entry NAME"]),
    ("ambiguous", "make", ["defines no 'make'", "build_a", "--entry NAME"]),
    ("nothing", "build_model", ["defines no 'build_model'", "HyperModel class or instance", "WIDTH", "helper"]),
    ("subclass_class", "Net", ["keras.Model subclass, not a HyperModel", "return Net(...)"]),
    ("two_args", "build_model", ["build_model(units, classes) needs 2 arguments", "one (hp or a config dict)"]),
    ("not_callable", "build_model", ["build_model is a int, not a function, HyperModel or keras.Model"]),
    ("hypermodel_args", "Classifier", ["Classifier.__init__ needs num_classes", "entry_args: {num_classes: ...}",
                                       "hypermodel = Classifier(num_classes=...)"]),
])
def test_each_rejection_names_what_was_found_and_what_to_do(scripts, script, entry, fragments) -> None:
    with pytest.raises(ValidationError) as raised:
        _factory(scripts[script], entry)
    message = raised.value.message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_a_builder_returning_no_model_is_rejected_by_name(tmp_path: Path) -> None:
    (tmp_path / "none.py").write_text("def build_model(hp):\n    return None\n")
    with pytest.raises(ValidationError, match="build_model returned builtins.NoneType, not a keras.Model"):
        _factory(f"script:{tmp_path / 'none.py'}").build({})


def test_the_space_holds_conditional_and_fit_declared_hyperparameters(scripts) -> None:
    space = _factory(scripts["conditional"]).search_space_from_script()
    assert {"num_layers", "units_0", "units_1", "units_2", "dropout", "rate"} <= set(space)
    example = Path(__file__).resolve().parents[2] / "examples" / "scripts" / "hypermodel_fit.py"
    assert "batch_size" in ModelFactory(f"script:{example}", (8, 8, 1), 10, "classification",
                                        data_source=lambda: BuildData(np.zeros((8, 8, 8, 1)), np.arange(8)),
                                        ).search_space_from_script()


# -- the fit contract, through the worker's runner ------------------------------------------------------------------
def _read(path: str, feature_shape) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    rng = np.random.default_rng(0 if "train" in path else 1)
    return rng.normal(size=(40, *feature_shape)).astype("float32"), rng.integers(0, CLASSES, 40)


REF = DatasetLayout(dataset_id=1, partition_paths=("train-0",), validation_path="val", feature_shape=SHAPE,
                    n_outputs=CLASSES, task="classification", schema={})


def _task(ref: str, out: Path, *, evaluate: bool, hparams: dict | None = None, sub_epoch: int = 1) -> SubEpochTask:
    return SubEpochTask(sub_epoch_id=sub_epoch, config_id=1, epoch=0, partition=0, model_ref=ref,
                        entry_point="build_model", hparams=dict(hparams or {"units": 8}), dataset=REF,
                        out_path=str(out / f"s{sub_epoch}.npz"), seed=1, evaluate=evaluate,
                        objective=("val_accuracy", "max"))


def test_fit_is_called_as_keras_tuner_calls_it_and_its_float_is_the_epochs_objective(scripts, tmp_path) -> None:
    import keras_tuner as kt

    from hopper.mop_scheduler.worker.factory import load_script_module
    from hopper.mop_scheduler.worker.runner import SubEpochRunner

    ref = scripts["preprocessing_fit"]
    calls = load_script_module(ref[len("script:"):]).CALLS
    runner = SubEpochRunner(0, reader=_read)
    middle = runner.run(_task(ref, tmp_path, evaluate=False, sub_epoch=1))
    assert middle.ok, middle.details
    last = runner.run(_task(ref, tmp_path, evaluate=True, sub_epoch=2))
    assert last.ok, last.details
    # No collision although fit passes batch_size itself; the validation split on every call, as KerasTuner
    # passes it (this fit names validation_data, so it may unpack it mid-epoch too); only the epoch's last
    # sub-epoch's result is read back.
    ours = [dict(call) for call in calls[-2:]]
    assert all(call["validation_data"][0].shape == (40, *SHAPE) for call in ours)
    assert last.val_metrics["val_accuracy"] > 1000.0  # what fit returned, not a model.evaluate on raw data
    assert set(last.val_metrics) == {"val_accuracy", "params"}
    assert set(middle.new_space) == {"normalize", "batch_size"} and last.new_space == {}

    # The same HyperModel searched by keras_tuner itself: the same positional and keyword arguments reach fit.
    calls.clear()
    module = load_script_module(ref[len("script:"):])
    x, y = _read("train", SHAPE)
    tuner = kt.RandomSearch(module.Cropper(), objective="val_accuracy", max_trials=1, overwrite=True,
                            directory=str(tmp_path / "kt"), project_name="p")
    tuner.search(x, y, epochs=1, validation_data=_read("val", SHAPE))
    theirs = calls[0]
    assert set(theirs) == set(ours[1]) and theirs["args"] == ours[1]["args"] and theirs["epochs"] == ours[1]["epochs"]


def test_an_optimizer_made_inside_fit_continues_across_sub_epochs_and_hops(scripts, tmp_path) -> None:
    """A custom training loop creates its optimizer in every fit call; under MOP each sub-epoch is one call,
    so without carrying its state Adam would restart at every sub-epoch (issue 13's kt_custom_training_loop)."""
    from hopper.mop_scheduler.worker.factory import load_script_module
    from hopper.mop_scheduler.worker.runner import SubEpochRunner

    ref = scripts["custom_loop"]
    steps = load_script_module(ref[len("script:"):]).STEPS
    hparams = {"units": 8, "learning_rate": 0.01}

    def task(sub_epoch: int, previous=None, **changes):  # noqa: ANN001, ANN202
        t = _task(ref, tmp_path, evaluate=True, sub_epoch=sub_epoch, hparams={**hparams, **changes})
        checkpoint = None if previous is None else (previous.checkpoint_path, previous.checkpoint_sha256)
        return dataclasses.replace(t, entry_point="Loop", in_checkpoint=checkpoint)

    first_worker, second_worker = SubEpochRunner(0, reader=_read), SubEpochRunner(1, reader=_read)
    first = first_worker.run(task(1))
    assert first.ok, first.details
    hopped = second_worker.run(task(2, first))  # another worker: the state comes from the checkpoint
    assert hopped.ok, hopped.details
    stayed = second_worker.run(task(3, hopped, learning_rate=0.02))  # the same worker: the model in memory
    assert stayed.ok, stayed.details
    # 40 rows in batches of 8: five steps a call, counted on from the previous call's optimizer; the learning
    # rate is always the config's own.
    assert steps[-3:] == [(5, 0.01), (10, 0.01), (15, 0.02)]


def test_a_fit_that_sets_epochs_itself_keeps_them_and_its_history_reports_the_epoch(scripts, tmp_path) -> None:
    from hopper.mop_scheduler.worker.runner import SubEpochRunner

    result = SubEpochRunner(0, reader=_read).run(_task(scripts["history_fit"], tmp_path, evaluate=True,
                                                       hparams={"epochs": 1}))
    assert result.ok, result.details
    assert {"val_accuracy", "val_loss"} <= set(result.val_metrics) and result.train_loss is not None
    assert any("Plain.fit sets epochs itself" in note for note in result.notes)


def test_a_module_level_model_with_adapted_layers_runs_the_script_again_per_config(scripts) -> None:
    """clone_model would re-create the StringLookup from its config with an empty table ("Table not
    initialized" at the first step); the script runs again instead, and the bound train_dataframe has the
    label column the keras.io example pops, under its file's name."""
    import pandas as pd

    from hopper.mop_scheduler.worker.build_data import with_labels

    colours = np.array(["red", "green", "blue", "red"] * 6, dtype=object)
    y = np.array([0, 1, 0, 1] * 6)
    frame = with_labels(pd.DataFrame({"colour": colours}), y, ["target"])
    assert list(frame.columns) == ["colour", "target"] and frame["target"].tolist() == y.tolist()
    factory = ModelFactory(scripts["module_model_adapted"], (1,), 2, "classification", entry_point="model",
                           bind_globals={"train_dataframe": "frame"},
                           data_source=lambda: BuildData(colours, y, frame))
    first, second = factory.build({"lr": 0.01}), factory.build({"lr": 0.02})
    assert first is not second
    assert any("runs the script again" in note and "StringLookup" in note for note in factory.notes)
    for model in (first, second):
        assert model.layers[1].vocabulary_size() == 4  # [UNK], red, green, blue: adapted, not empty
        model.fit({"colour": colours}, y, epochs=1, verbose=0)
