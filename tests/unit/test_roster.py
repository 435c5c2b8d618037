"""Roster builders and custom-script validation (scripts run in a child process)."""

import textwrap
from pathlib import Path

import numpy as np
import pytest

from hopper.engine.errors import ValidationError
from hopper.mop_scheduler.worker.validate import validate_script
from hopper.roster import check_hparams, get_entry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scripts"


def test_unknown_model_and_unknown_hparam_are_named():
    with pytest.raises(ValidationError) as info:
        get_entry("vgg99")
    assert "vgg99" in info.value.message and info.value.field == "model"
    with pytest.raises(ValidationError) as info:
        check_hparams("mlp", ["lr", "filters"])
    assert info.value.field == "space.filters"


@pytest.mark.parametrize("name, shape, config", [
    ("mlp", (64,), {"units": 16, "layers": 1, "dropout": 0.1, "optimizer": "sgd"}),
    ("cnn", (8, 8, 1), {"filters": 8, "conv_layers": 2, "optimizer": "rmsprop"}),
    ("cnn", (64,), {"filters": 4, "conv_layers": 1}),
    ("mobilenet_v2", (8, 8, 1), {"alpha": 0.35}),
    ("resnet50", (32, 32, 3), {"optimizer": "adamw", "weight_decay": 1e-4}),
])
def test_image_and_tabular_models_build_compile_and_train(name, shape, config):
    from hopper.mop_scheduler.worker.factory import ModelFactory

    model = ModelFactory(name, shape, 10, "classification").build({"lr": 1e-3, **config})
    assert model.optimizer is not None
    # Tracing the train step of the two big image models costs 60-70 s each on two cores; eager steps train the
    # same model (the traced path is the small models' and every training test's).
    model.run_eagerly = name in ("resnet50", "mobilenet_v2")
    x = np.random.default_rng(0).random((8, *shape), dtype=np.float32)
    history = model.fit(x, np.arange(8) % 10, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("name", ["bert_base", "distilbert"])
def test_text_models_tiny_preset_trains_and_default_sizes_are_the_papers(name):
    from hopper.mop_scheduler.worker.factory import ModelFactory
    from hopper.roster.text import BERT_BASE, DISTILBERT, encoder_sizes

    model = ModelFactory(name, (16,), 2, "classification").build({"preset": "tiny"})
    x = np.random.default_rng(0).integers(0, 1000, size=(8, 16)).astype("int32")
    assert np.isfinite(model.fit(x, np.arange(8) % 2, epochs=1, verbose=0).history["loss"][0])
    assert model.count_params() < 500_000
    base = BERT_BASE if name == "bert_base" else DISTILBERT
    assert encoder_sizes({}, base) == base
    assert base["hidden"] == 768 and base["layers"] == (12 if name == "bert_base" else 6)


def test_local_weights_file_enables_fine_tuning(tmp_path):
    from hopper.mop_scheduler.worker.factory import ModelFactory

    factory = ModelFactory("mlp", (64,), 10, "classification")
    source = factory.build({"units": 16})
    path = tmp_path / "pretrained.weights.h5"
    source.save_weights(path)
    tuned = factory.build({"units": 16, "weights_path": str(path)})
    for a, b in zip(source.get_weights(), tuned.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_regression_task_gets_mse():
    from hopper.mop_scheduler.worker.factory import ModelFactory

    model = ModelFactory("mlp", (4,), 1, "regression").build({})
    assert model.loss == "mse"


@pytest.mark.parametrize("file, entry, kind, has_space, compiled", [
    ("config_fn.py", "build_model", "config_fn", False, True),
    ("kerastuner_hp.py", "make_classifier", "hp_fn", True, True),
    ("hypermodel_fit.py", "DigitsHyperModel", "hypermodel", True, False),
])
def test_example_scripts_validate(file, entry, kind, has_space, compiled):
    result = validate_script(EXAMPLES / file, entry, input_shape=(8, 8, 1), timeout=120)
    assert result.ok, result.message + result.details
    assert result.kind == kind
    assert (result.space is not None) == has_space
    assert result.compiled == compiled
    if not compiled:
        assert "uncompiled" in result.notes[0]
    if kind == "hp_fn":
        assert result.space["units"] == {"type": "int", "low": 32, "high": 128, "step": 32}


BAD_SCRIPTS = {
    "raises_at_import": ("import keras\nraise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
    "raises_at_build": ("def build_model(config):\n    return {}['missing']\n", "KeyError"),
    "wrong_type": ("def build_model(config):\n    return 'not a model'\n", "not a keras.Model"),
    "no_entry": ("def something_else(a, b):\n    pass\n", "defines no 'build_model'"),
    "hangs": ("import time\ndef build_model(config):\n    while True:\n        time.sleep(1)\n", "did not finish"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCRIPTS))
def test_bad_scripts_are_rejected_with_the_reason(tmp_path, case):
    source, expected = BAD_SCRIPTS[case]
    path = tmp_path / f"{case}.py"
    path.write_text(textwrap.dedent(source))
    result = validate_script(path, "build_model", timeout=25 if case == "hangs" else 120)
    assert not result.ok
    assert expected in result.message, result.message
    if case in ("raises_at_import", "raises_at_build"):
        assert "Traceback" in result.details
