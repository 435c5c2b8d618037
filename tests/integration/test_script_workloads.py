"""Scripts through the real scheduler and a worker process, on digits: a KerasTuner HyperModel whose ``fit``
preprocesses and returns a float objective, and a script whose every config fails.

One scheduler run serves both workloads (worker start-up is the expensive part).
"""

from __future__ import annotations

import textwrap

import pytest

from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

CROPPING_FIT = """
    import keras, keras_tuner as kt

    def crop(images):
        # 6x6 centre of the 8x8 digits: a model fed the raw images would fail on their shape
        return images[:, 1:7, 1:7, :]

    class CroppedDigits(kt.HyperModel):
        def build(self, hp):
            model = keras.Sequential([keras.Input((6, 6, 1)), keras.layers.Flatten(),
                                      keras.layers.Dense(hp.Choice("units", [16, 32]), activation="relu"),
                                      keras.layers.Dense(10, activation="softmax")])
            model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"], run_eagerly=True)  # a few dozen steps: faster than tracing
            return model

        def fit(self, hp, model, x, y, validation_data=None, **kwargs):
            model.fit(crop(x), y, batch_size=hp.Choice("batch_size", [32, 64]), verbose=0, **kwargs)
            if validation_data is None:
                return None
            x_val, y_val = validation_data
            return float(model.evaluate(crop(x_val), y_val, verbose=0, return_dict=True)["accuracy"])
"""

BROKEN = """
    def build_model(hp):
        raise RuntimeError("this model needs a GPU")
"""


def _script(services, name: str, text: str) -> int:  # noqa: ANN001
    # Stored as validated, without the validation child (its own tests cover it): the broken script is
    # one that would pass an upload-time build elsewhere and fail on the workers.
    path = services.settings.artifact_dir / "scripts" / f"{name}.py"  # where uploads live (in the workers' view)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return services.store.scripts.add(name=f"{name}.py", sha256="0" * 64, path=str(path), entry_point="build_model",
                                      kind="hypermodel", valid=True, validation={"ok": True}, actor="test",
                                      message="ok").id


@pytest.fixture(scope="module")
def run(tmp_path_factory):  # noqa: ANN001, ANN201
    from hopper.app import open_services
    from hopper.engine.demo import ensure_digits
    from tests.conftest import make_settings

    # One worker: starting worker processes (each imports TensorFlow) is what this test would pay for most; the
    # mid-epoch sub-epochs of a multi-partition epoch are covered by tests/unit/test_script_entries.py.
    services = open_services(make_settings(tmp_path_factory.mktemp("scripts") / "home", workers=1),
                             check_schema=False)
    services.store.upgrade()
    ensure_digits(services)
    common = {"dataset": "digits", "procedure": "grid", "max_epochs": 1, "max_configs": 2}
    # One config: its sub-epoch costs more than everything else here.
    cropped = services.launch_workload({**common, "name": "cropped", "script": _script(services, "cropping", CROPPING_FIT),
                                        "max_configs": 1, "space": {"units": {"type": "choice", "values": [16, 32]}}})
    broken = services.launch_workload({**common, "name": "broken", "script": _script(services, "broken", BROKEN),
                                       "space": {"lr": {"type": "choice", "values": [0.01, 0.1]}}})
    with RunningScheduler(services) as running:
        running.wait_for(lambda: all(services.get_workload(w.id).status in ("done", "failed")
                                     for w in (cropped, broken)), 300, "both workloads to finish")
    yield services, cropped.id, broken.id
    services.store.dispose()


def test_a_preprocessing_fit_is_evaluated_on_its_own_preprocessing(run) -> None:  # noqa: ANN001
    from hopper.engine.data import read_partition
    from hopper.mop_scheduler.worker.checkpoints import load_checkpoint
    from hopper.mop_scheduler.worker.factory import ModelFactory, load_script_module

    services, workload_id, _ = run
    workload = services.get_workload(workload_id)
    assert workload.status == "done", workload.error
    configs = services.list_configs(workload_id)
    assert len(configs) == 1 and configs[0].status == "done"
    layout = services.store.datasets.layout(workload.dataset_id)
    x_val, y_val = read_partition(layout.validation_path, layout.feature_shape)
    for config in configs:
        reported = config.latest_metrics["val_accuracy"]
        source = services.export_source(config.id)
        factory = ModelFactory(source.model_ref, source.feature_shape, source.n_outputs, source.task)
        model = factory.build(source.hparams)
        assert load_checkpoint(model, source.checkpoint_path, source.checkpoint_sha256)
        module = load_script_module(source.model_ref[len("script:"):])
        expected = model.evaluate(module.crop(x_val), y_val, verbose=0, return_dict=True)["accuracy"]
        # The epoch's metric is what fit returned: the accuracy on its own crop of the validation split.
        assert reported == pytest.approx(expected, abs=1e-6) and reported > 0.3
    # batch_size, declared only in fit, grew the space; the audit log says so, with the script as the actor.
    assert set(services.get_workload(workload_id).search_space) == {"units", "batch_size"}
    [event] = [e for e in services.list_events(object_type="workload") if e.action == "grow_space"]
    assert event.actor == "script:cropping.py" and event.object_id == workload_id
    assert event.after["added"]["batch_size"] == {"type": "choice", "values": [32, 64]}


def test_a_workload_whose_configs_all_failed_is_failed_with_their_error(run) -> None:  # noqa: ANN001
    from hopper.webui.callbacks import workload_rows

    services, _, workload_id = run
    workload = services.get_workload(workload_id)
    assert workload.status == "failed"
    assert workload.error.startswith("all 2 configs failed with the same error: RuntimeError: this model needs a GPU")
    [row] = [r for r in workload_rows(services) if r["id"] == workload_id]
    assert row["status"] == "failed" and row["error"].endswith("RuntimeError: this model needs a GPU")
