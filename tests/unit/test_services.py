"""Services: validation, state transitions, optimistic locking and the audit log (no training here)."""

import pytest

from hopper.engine.errors import Conflict, InvalidState, NotFound, ScriptRejected, ValidationError

GRID = {"lr": {"type": "choice", "values": [0.01, 0.001]}, "units": 32}


def _launch(services, **overrides):
    spec = {"name": "w", "model": "mlp", "dataset": "digits", "procedure": "grid", "space": GRID, "max_epochs": 2}
    spec.update(overrides)
    return services.launch_workload(spec)


@pytest.mark.parametrize("overrides, field, fragment", [
    ({"space": {"lr": {"type": "uniform", "low": 1, "high": 0}}}, "space.lr.low", "must not exceed"),
    ({"space": {"lr": {"type": "uniform", "low": 0.001, "high": 0.1}}}, "space.lr", "grid search needs discrete"),
    ({"model": "vgg99"}, "model", "unknown roster model"),
    ({"space": {"filters": 3}}, "space.filters", "has no hyperparameter"),
    ({"dataset": "nope"}, "dataset", "does not exist"),
    ({"procedure": "annealing"}, "procedure", "Input should be"),
    ({"procedure": "random"}, "max_configs", "needs a budget"),
    ({"max_epochs": 0}, "max_epochs", "greater than or equal to 1"),
    ({"objectives": [{"metric": "val_accuracy", "direction": "up"}]}, "objectives.0.direction", "Input should be"),
    ({"colour": "red"}, "colour", "unknown field"),
    ({"model": None}, "model", "exactly one of"),
    ({"model": "bert_base"}, "model", "needs token ids"),
    ({"space": {"weights_path": "/etc/passwd"}}, "space.weights_path", "outside the data roots"),
    ({"space": {"optimizer": {"type": "choice", "values": ["adam", "adagradx"]}}}, "space.optimizer", "unknown optimizer"),
    ({"space": {"units": {"type": "choice", "values": [32, "many"]}}}, "space.units", "must be an integer"),
    ({"space": {"dropout": {"type": "uniform", "low": 0.1, "high": 2, "step": 0.1}}}, "space.dropout", "outside"),
    ({"entry_args": {"num_classes": 10}}, "entry_args", "not to a roster model"),
    ({"bind_globals": {"x_train": "features"}}, "bind_globals.x_train", "'x', 'y' or 'frame'"),
    ({"bind_globals": {"x-train": "x"}}, "bind_globals", "'x-train' is not a Python identifier"),
])
def test_invalid_workload_specs_are_rejected_precisely(services, digits, overrides, field, fragment):
    with pytest.raises(ValidationError) as info:
        _launch(services, **overrides)
    assert info.value.field == field
    assert fragment in info.value.message
    assert services.list_workloads() == []


def test_objective_short_form_and_explicit_direction(services, digits):
    w = _launch(services, objectives={"val_loss": "min"})
    assert w.objectives == [{"metric": "val_loss", "direction": "min"}]


def test_config_state_machine_and_optimistic_locking(services, digits):
    w = _launch(services, procedure="manual", space=None)
    c = services.add_config(w.id, {"lr": 0.01})
    assert c.status == "queued" and c.version == 1 and c.origin == "user"
    with pytest.raises(Conflict) as info:
        services.stop_config(c.id, expected_version=7)
    assert info.value.http_status == 409 and services.get_config(c.id).status == "queued"
    stopped = services.stop_config(c.id, expected_version=1)
    assert stopped.status == "stopped" and stopped.version == 2
    with pytest.raises(InvalidState):
        services.stop_config(c.id)
    assert services.resume_config(c.id).status == "queued"
    with pytest.raises(NotFound):
        services.stop_config(999)
    with pytest.raises(ValidationError) as info:
        services.set_priority(c.id, "high")
    assert info.value.field == "priority"


def test_add_config_validates_hparams(services, digits):
    w = _launch(services)
    with pytest.raises(ValidationError) as info:
        services.add_config(w.id, {"lr": 0.01, "filters": 3, "units": 32})
    assert info.value.field == "hparams.filters"
    with pytest.raises(ValidationError) as info:
        services.add_config(w.id, {"units": 32})
    assert info.value.field == "hparams.lr" and "required" in info.value.message
    with pytest.raises(ValidationError):
        services.add_config(w.id, {"lr": [1, 2], "units": 3})
    assert [c for c in services.list_configs(w.id) if c.origin == "user"] == []


def test_clone_and_drill_down_checks(services, digits):
    w = _launch(services, procedure="manual", space=GRID)
    c = services.add_config(w.id, {"lr": 0.01, "units": 32})
    clone = services.clone_config(c.id, {"lr": 0.005})
    assert clone.hparams == {"lr": 0.005, "units": 32} and "no checkpoint yet" in clone.notes
    with pytest.raises(ValidationError) as info:
        services.clone_config(c.id, {"layers": "many"})
    assert info.value.field == "overrides.layers" and "integer" in info.value.message
    with pytest.raises(ValidationError) as info:
        services.drill_down(c.id, {"lr": {"type": "choice", "values": [0.5]}, "units": 32})
    assert info.value.field == "space.lr"
    with pytest.raises(InvalidState, match="no trained checkpoint"):
        services.drill_down(c.id, {"lr": 0.01, "units": 32})
    assert len(services.list_workloads()) == 1


def test_services_without_a_script_validator_say_how_to_get_one(services):
    from hopper.engine.errors import HopperError
    from hopper.engine.services import Services

    bare = Services(services.store, services.settings)
    with pytest.raises(HopperError, match="open it with hopper.app.open_services"):
        bare.upload_script("ok.py", "def build_model(config):\n    return None\n")
    assert bare.list_scripts() == []  # refused before anything was stored
    assert services.script_validator is not None  # the fixture opens its services through hopper.app


def test_scripts_are_validated_in_a_child_process_and_rejections_keep_the_reason(services, digits):
    with pytest.raises(ScriptRejected) as info:
        services.upload_script("bad.py", "def build_model(config):\n    return 3\n", dataset="digits")
    assert "not a keras.Model" in info.value.message
    with pytest.raises(ScriptRejected, match="syntax error at line 1"):
        services.upload_script("syntax.py", "def build_model(:\n")
    ok = services.upload_script("ok.py", "import keras\n\ndef build(config):\n    return keras.Sequential([\n"
                                "        keras.Input(config['input_shape']), keras.layers.Flatten(),\n"
                                "        keras.layers.Dense(config['num_classes'], activation='softmax')])\n",
                                entry_point="build", dataset="digits")
    assert ok.valid and ok.kind == "config_fn" and "uncompiled" in ok.validation["notes"][0]
    with pytest.raises(ValidationError, match="failed validation"):
        _launch(services, model=None, script=1, space=None, procedure="manual")
    w = _launch(services, model=None, script=ok.id, space={"lr": {"type": "choice", "values": [0.01, 0.02]}})
    assert w.model_ref == f"script:{ok.id}"


def test_every_action_is_audited(services, digits):
    w = _launch(services, procedure="manual", space=None)
    c = services.add_config(w.id, {"lr": 0.01}, actor="ana")
    services.set_priority(c.id, 3, actor="ben")
    services.stop_config(c.id, actor="ana")
    services.set_workload_status(w.id, "paused", actor="ben")
    events = services.list_events()
    assert [(e.actor, e.action) for e in events[:4]] == [
        ("ben", "pause_workload"), ("ana", "stop_config"), ("ben", "set_priority"), ("ana", "add_config")]
    assert events[2].before["priority"] == 0 and events[2].after["priority"] == 3


def _script_row(services, kind, validation):
    return services.store.scripts.add(name="s.py", sha256="0" * 64, path="/nowhere/s.py", entry_point="build_model",
                                      kind=kind, valid=True, validation={"ok": True, **validation}, actor="t",
                                      message="ok").id


def test_a_hypermodel_class_that_needs_constructor_arguments_gets_them_from_entry_args(services, digits):
    needs = _script_row(services, "hypermodel", {"entry": "Classifier", "needs_entry_args": ["num_classes"]})
    with pytest.raises(ValidationError) as info:
        _launch(services, model=None, script=needs)
    assert info.value.field == "entry_args" and "\n" not in info.value.message
    assert "Classifier.__init__ needs num_classes: give them as entry_args: {num_classes: ...}" in info.value.message
    assert "(hypermodel = Classifier(...))" in info.value.message
    function = _script_row(services, "hp_fn", {"entry": "build_model"})
    with pytest.raises(ValidationError, match="is a hp_fn, not a HyperModel class") as info:
        _launch(services, model=None, script=function, entry_args={"num_classes": 10})
    workload = _launch(services, model=None, script=needs, entry_args={"num_classes": 10},
                       bind_globals={"x_train": "x"})
    with services.store.session() as session:
        from hopper.engine.store import WorkloadRow

        row = session.get(WorkloadRow, workload.id)
        assert row.entry_options == {"entry_args": {"num_classes": 10}, "bind_globals": {"x_train": "x"}}


def test_a_script_reading_undefined_module_globals_needs_them_bound(services, digits):
    script = _script_row(services, "noarg_fn", {"entry": "build", "needs_bind_globals": ["x_train", "y_train"]})
    with pytest.raises(ValidationError) as info:
        _launch(services, model=None, script=script, bind_globals={"x_train": "x"})
    assert info.value.field == "bind_globals" and "(y_train)" in info.value.message
    assert "bind_globals: {y_train: x}" in info.value.message
    assert _launch(services, model=None, script=script, bind_globals={"x_train": "x", "y_train": "y"}).id
