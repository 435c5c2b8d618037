"""TFLite export of trained roster models, measured by the real interpreter."""

import hashlib
from pathlib import Path

import pytest

from hopper.engine.errors import InvalidState
from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow


@pytest.fixture
def trained(services, digits):
    ids = {}
    for model, space in (("mlp", {"units": 64}), ("cnn", {"filters": 8})):
        w = services.launch_workload({"name": model, "model": model, "dataset": "digits", "max_epochs": 3,
                                      "space": {"lr": 0.003, **space}})
        ids[model] = services.list_configs(w.id)[0].id
    with RunningScheduler(services) as running:
        running.wait_for(lambda: all(services.get_config(i).status == "done" for i in ids.values()), 240,
                         "both models to train")
    return ids


def test_float_and_int8_exports_match_keras_on_the_interpreter(services, trained, tmp_path):
    from hopper.edge_deploy.export import export_config

    for model, config_id in trained.items():
        rows = export_config(services, config_id, out_dir=tmp_path / model)
        by_q = {r.quantization: r for r in rows}
        assert set(by_q) == {"float32", "int8"}
        keras = by_q["float32"].keras_accuracy
        assert keras > 0.85, (model, keras)
        assert abs(by_q["float32"].tflite_accuracy - keras) <= 0.02, (model, by_q["float32"])
        assert by_q["int8"].tflite_accuracy > 0.5, (model, by_q["int8"])  # reported; loss should be small
        assert by_q["int8"].bytes < by_q["float32"].bytes
        for r in rows:
            assert hashlib.sha256(Path(r.path).read_bytes()).hexdigest() == r.sha256
        assert [e.quantization for e in services.list_exports(config_id)] == ["float32", "int8"]


def test_an_untrained_config_cannot_be_exported(services, digits):
    w = services.launch_workload({"name": "fresh", "model": "mlp", "dataset": "digits", "procedure": "manual"})
    config = services.add_config(w.id, {"lr": 0.01})
    with pytest.raises(InvalidState, match="no finished epoch"):
        services.export_source(config.id)
