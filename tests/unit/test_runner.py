"""The worker's sub-epoch runner and the one place where a config's optimizer hparams reach its model."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from hopper.engine.catalog import COMMON_HPARAMS, default_for
from hopper.engine.entities import DatasetLayout
from hopper.mop_scheduler.worker.checkpoints import load_checkpoint
from hopper.mop_scheduler.worker.protocol import SubEpochResult, SubEpochTask

SHAPE, CLASSES = (8,), 3


def _data(path: str, feature_shape) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    rng = np.random.default_rng(0 if "train" in path else 1)
    return rng.random((64, *feature_shape), dtype=np.float32), rng.integers(0, CLASSES, 64)


REF = DatasetLayout(dataset_id=1, partition_paths=("train-0",), validation_path="val", feature_shape=SHAPE,
                    n_outputs=CLASSES, task="classification", schema={})


def _task(config_id: int, out_path, hparams: dict, *, in_checkpoint=None, warm_start=None,  # noqa: ANN001
          model_ref: str = "mlp") -> SubEpochTask:
    return SubEpochTask(sub_epoch_id=config_id * 10, config_id=config_id, epoch=0, partition=0, model_ref=model_ref,
                        entry_point="build_model", hparams=hparams, dataset=REF, out_path=str(out_path), seed=7,
                        evaluate=False, in_checkpoint=in_checkpoint, warm_start=warm_start)


def _runner(worker: int = 0):  # noqa: ANN202
    from hopper.mop_scheduler.worker.runner import SubEpochRunner

    return SubEpochRunner(worker, reader=_data)


def _ok(result: SubEpochResult) -> SubEpochResult:
    assert result.ok, f"{result.error}\n{result.details}"
    return result


def _checkpoint_state(path: str, hparams: dict) -> tuple[float, list[np.ndarray]]:
    """(learning rate, weights) stored in a checkpoint, read into a model built with another lr."""
    from hopper.mop_scheduler.worker.factory import ModelFactory

    model = ModelFactory("mlp", SHAPE, CLASSES, "classification").build({**hparams, "lr": 0.5})
    assert load_checkpoint(model, path)
    return float(np.asarray(model.optimizer.learning_rate)), model.get_weights()


def test_the_catalogue_is_the_source_of_defaults() -> None:
    from hopper.roster._compile import make_optimizer

    optimizer = make_optimizer({})
    assert type(optimizer).__name__.lower() == default_for("optimizer")
    assert float(np.asarray(optimizer.learning_rate)) == pytest.approx(COMMON_HPARAMS["lr"])
    with pytest.raises(KeyError, match="not a common hyperparameter"):
        default_for("units")


def test_a_clone_with_a_new_lr_trains_with_that_lr(tmp_path) -> None:  # noqa: ANN001
    """The clone warm-starts the parent's weights but takes its own lr, not the parent's."""
    hparams = {"units": 16, "layers": 1, "lr": 0.05}
    parent = _ok(_runner().run(_task(1, tmp_path / "parent.ckpt", hparams)))
    _, parent_weights = _checkpoint_state(parent.checkpoint_path, hparams)
    warm = (parent.checkpoint_path, parent.checkpoint_sha256)

    # Same worker, so the parent's model is still cached there: the clone must not pick up its optimizer.
    runner = _runner()
    _ok(runner.run(_task(1, tmp_path / "parent-again.ckpt", hparams)))
    moved = {}
    for config_id, lr in ((2, 1e-7), (3, 0.05)):
        clone = _ok(runner.run(_task(config_id, tmp_path / f"clone-{config_id}.ckpt", {**hparams, "lr": lr},
                                     warm_start=warm)))
        assert any(note.startswith("warm start:") for note in clone.notes)
        stored_lr, weights = _checkpoint_state(clone.checkpoint_path, hparams)
        assert stored_lr == pytest.approx(lr)
        moved[lr] = max(float(np.abs(a - b).max()) for a, b in zip(weights, parent_weights, strict=True))
    # With lr=1e-7 a sub-epoch barely moves the warm-started weights; with the parent's lr it does.
    assert moved[1e-7] < 1e-4 < moved[0.05], moved


def test_a_restored_checkpoint_continues_with_its_configs_lr(tmp_path) -> None:  # noqa: ANN001
    hparams = {"units": 16, "layers": 1, "lr": 0.003, "optimizer": "sgd"}
    first = _ok(_runner(0).run(_task(4, tmp_path / "e0.ckpt", hparams)))
    # Another worker has no cached model: it builds one and restores the checkpoint into it.
    second = _ok(_runner(1).run(_task(4, tmp_path / "e1.ckpt", hparams,
                                      in_checkpoint=(first.checkpoint_path, first.checkpoint_sha256))))
    assert not second.reused_in_memory
    assert _checkpoint_state(second.checkpoint_path, hparams)[0] == pytest.approx(0.003)


def test_a_new_config_of_the_same_graph_trains_a_cached_compiled_model_as_a_fresh_one_would(tmp_path) -> None:
    """Configs that differ only in lr and batch size share a compiled model on a worker (no second trace); the
    result is the one a freshly built model gives, and a config of another graph never gets it."""
    base = {"units": 16, "layers": 1, "optimizer": "sgd", "momentum": 0.9}
    runner = _runner()
    _ok(runner.run(_task(1, tmp_path / "a.ckpt", {**base, "lr": 0.05, "batch_size": 16})))
    model, _, _ = runner._models[1]
    traced = model.train_function
    reused = _ok(runner.run(_task(2, tmp_path / "b.ckpt", {**base, "lr": 0.01, "batch_size": 32})))
    assert runner.compiled_reuses == 1 and 1 not in runner._models, "config 1's model went to config 2"
    assert runner._models[2][0] is model and model.train_function is traced
    alone = _ok(_runner().run(_task(2, tmp_path / "b-alone.ckpt", {**base, "lr": 0.01, "batch_size": 32})))
    assert reused.train_loss == pytest.approx(alone.train_loss, rel=1e-6)
    lr, weights = _checkpoint_state(reused.checkpoint_path, base)
    assert lr == pytest.approx(0.01)
    for mine, fresh in zip(weights, _checkpoint_state(alone.checkpoint_path, base)[1], strict=True):
        np.testing.assert_allclose(mine, fresh, rtol=1e-6, atol=1e-7)
    # Config 1 comes back (its checkpoint): it restores into a model again, its step count intact.
    back = _ok(runner.run(_task(1, tmp_path / "a2.ckpt", {**base, "lr": 0.05, "batch_size": 16},
                                in_checkpoint=(str(tmp_path / "a.ckpt"), None))))
    assert not back.reused_in_memory and runner.compiled_reuses == 2
    assert _checkpoint_state(back.checkpoint_path, base)[0] == pytest.approx(0.05)
    # Another width is another graph: built anew, never handed config 1's or 2's model.
    _ok(runner.run(_task(3, tmp_path / "c.ckpt", {**base, "units": 8, "lr": 0.01})))
    assert runner.compiled_reuses == 2 and runner._models[3][0] is not model


def test_a_configs_training_follows_from_its_seed_not_from_what_its_worker_ran_before(tmp_path) -> None:
    """Initial weights and training are a function of the sub-epoch's seed: a config trained on a worker that
    trained another config first gives the checkpoint it gives on a fresh worker (the same bytes)."""
    hparams = {"units": 16, "layers": 1, "lr": 0.01, "batch_size": 16, "dropout": 0.2}
    busy = _runner()
    _ok(busy.run(_task(1, tmp_path / "other.ckpt", {**hparams, "units": 8})))
    after_other = _ok(busy.run(_task(2, tmp_path / "busy.ckpt", hparams)))
    import keras

    keras.utils.set_random_seed(999)  # the process's generators as another program could leave them
    fresh = _ok(_runner().run(_task(2, tmp_path / "fresh.ckpt", hparams)))
    assert after_other.checkpoint_sha256 == fresh.checkpoint_sha256
    assert after_other.train_loss == fresh.train_loss


SELF_COMPILED = """
import keras

def build_model(config):
    model = keras.Sequential([keras.Input(config["input_shape"]), keras.layers.Dense(config["num_classes"],
                                                                                      activation="softmax")])
    lr = {lr}
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    return model
"""


@pytest.mark.parametrize(("script_lr", "hparams", "expected", "note"), [
    ("0.5", {"lr": 0.002}, 0.002, None),  # the config's lr wins over the script's
    ("0.5", {}, 0.5, None),  # no lr in the config: the script's stands
    ("keras.optimizers.schedules.ExponentialDecay(0.5, 10, 0.9)", {"lr": 0.002}, 0.5, "learning-rate schedule"),
])
def test_a_script_that_compiles_itself_gets_the_configs_lr(tmp_path, script_lr, hparams, expected,  # noqa: ANN001
                                                           note) -> None:
    from hopper.mop_scheduler.worker.factory import ModelFactory

    script = tmp_path / f"self_compiled_{abs(hash(script_lr))}.py"
    script.write_text(SELF_COMPILED.format(lr=script_lr))
    factory = ModelFactory(f"script:{script}", SHAPE, CLASSES, "classification")
    model = factory.build(hparams)
    assert float(np.asarray(model.optimizer.learning_rate)) == pytest.approx(expected)
    assert not factory.compiled_by_factory
    if note is None:
        assert factory.notes == []
    else:
        assert any(note in n for n in factory.notes), factory.notes


def test_the_task_protocol_does_not_load_tensorflow() -> None:
    import subprocess

    code = ("import sys, hopper.mop_scheduler.worker.protocol, hopper.mop_scheduler.worker.runner, "
            "hopper.mop_scheduler.scheduler; print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False False", out.stdout + out.stderr


def test_epoch_end_evaluation_batches_grow_only_for_narrow_numeric_rows() -> None:
    from hopper.engine.data import Columns
    from hopper.mop_scheduler.worker.runner import evaluation_batch_size

    assert evaluation_batch_size(np.zeros((40_000, 20), np.float32), 40_000) == 4096  # tabular
    assert evaluation_batch_size(np.zeros((360, 8, 8, 1), np.float32), 360) == 4096  # digits
    assert evaluation_batch_size(np.zeros((100, 28, 28, 1), np.float32), 100) == 512  # MNIST-sized images and up
    text = Columns(("text", "x"), ("string", "float"), (np.array(["a b"] * 10, dtype=object), np.zeros(10, np.float32)))
    assert evaluation_batch_size(text, 10) == 512
    assert evaluation_batch_size({"text": np.array(["a"], dtype=object)}, 1) == 512
