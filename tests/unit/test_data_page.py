"""The Data & scripts page's callbacks as plain functions on real services (SQLite, the real loaders); no browser,
no TensorFlow (script validation itself runs in the browser test)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from dash import html, no_update

from hopper.app import open_services
from hopper.engine.errors import Conflict, ValidationError
from hopper.engine.services.data import MAX_DATASET_UPLOAD_BYTES
from hopper.webui import callbacks as cb
from hopper.webui import data_page
from tests.conftest import make_settings

CSV = "a,b,colour,y\n" + "".join(f"{i * 0.5},{i % 7},{'red' if i % 3 else 'blue'},{i % 2}\n" for i in range(40))


def _upload(text: str | bytes, mime: str = "text/csv") -> str:
    raw = text.encode() if isinstance(text, str) else text
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def _text(component) -> str:  # noqa: ANN001
    """All the text a Dash component tree shows."""
    if component is None:
        return ""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return " ".join(_text(c) for c in component)
    return _text(getattr(component, "children", None))


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("data-page") / "home")
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    yield services
    services.store.dispose()


def _errors(result: tuple) -> dict[str, str]:
    return {f: _text(line) for f, line in zip(data_page.DATASET_FIELDS, result, strict=False) if line is not None}


def test_an_uploaded_csv_is_saved_under_the_data_root_and_described(services):
    result = data_page.register_dataset(services, _upload(CSV), "tiny.csv", None, "tiny", "y", None, None)
    assert _errors(result) == {}
    shown = _text(result[-1])
    assert "dataset tiny registered: 40 rows (32 train, 8 validation), classification" in shown
    assert "label y (sparse, 2 classes)" in shown
    assert "a: float" in shown and "colour: string" in shown
    saved = Path(services.settings.data_roots[0]) / "uploads" / "tiny.csv"
    assert saved.read_text() == CSV
    row = next(r for r in data_page.dataset_rows(services) if r["name"] == "tiny")
    assert (row["rows"], row["label kind"], row["source"]) == (40, "sparse", str(saved))


def test_every_form_error_shows_at_once_next_to_its_field():
    lines = dict(zip(data_page.DATASET_FIELDS, data_page.register_dataset(None, None, None, "", "", None, None, None),
                     strict=False))
    assert "choose a file to upload, or give a path" in _text(lines["file"])
    assert "a dataset needs a name" in _text(lines["name"])
    problems = data_page.dataset_form_problems(_upload(CSV), "/x.csv", "bad name!")
    assert [p.field for p in problems] == ["path", "name"]


def test_a_refused_upload_names_its_field_and_keeps_nothing(services):
    root = Path(services.settings.data_roots[0])
    result = data_page.register_dataset(services, _upload(CSV), "wrong.csv", None, "wrong", "label", None, None)
    assert "label" in _errors(result)["label_column"] and "Error" not in _text(result[-1])
    assert not (root / "uploads" / "wrong.csv").exists()
    assert "wrong" not in {d.name for d in services.list_datasets()}
    # the person fixes the one field and sends the same file again
    result = data_page.register_dataset(services, _upload(CSV), "wrong.csv", None, "wrong", "y", None, None)
    assert _errors(result) == {} and "dataset wrong registered" in _text(result[-1])

    result = data_page.register_dataset(services, _upload(CSV), "notes.txt", None, "notes", None, None, None)
    assert "not a CSV, Parquet or NPZ file" in _errors(result)["file"]
    result = data_page.register_dataset(services, None, None, "/etc/passwd", "pw", None, None, None)
    assert "outside the data roots" in _errors(result)["path"]
    with pytest.raises(ValidationError, match="at most 20,000,000"):
        services.register_uploaded_dataset("big.csv", b"x" * (MAX_DATASET_UPLOAD_BYTES + 1), {"name": "big"})
    with pytest.raises(Conflict):
        services.register_uploaded_dataset("tiny.csv", CSV.encode(), {"name": "wrong", "label_column": "y"})
    assert (root / "uploads" / "wrong.csv").read_text() == CSV  # the registered dataset's file is untouched


def test_a_dataset_already_under_the_data_root_registers_by_path(services):
    source = Path(services.settings.data_roots[0]) / "by-path.csv"
    source.write_text(CSV)
    result = data_page.register_dataset(services, None, None, str(source), "by-path", "y", "regression", "a, b")
    assert _errors(result) == {}
    assert "regression, label y (regression)" in _text(result[-1])


def test_script_form_errors_and_validation_states(services):
    lines = data_page.upload_script(services, None, None, "", "not an id", None)
    assert "choose a .py file" in _text(lines[0]) and "not a Python identifier" in _text(lines[2])
    assert lines[-2] is None  # nothing to poll
    lines = data_page.upload_script(services, _upload("def build_model(hp):\n  return (\n"), "broken.py", "", "",
                                    None)
    assert "syntax error at line" in _text(lines[0]) and lines[-2] is None

    def stored(state: str, **validation) -> int:  # noqa: ANN003
        return services.store.scripts.add(name=f"{state}.py", sha256=state, path="/x", entry_point="build_model",
                                          kind="keras_model" if state == "accepted" else None,
                                          valid=state == "accepted", validation={"state": state, **validation},
                                          actor="test", message=validation.get("message", "")).id

    pending = stored("pending", message="validation pending")
    assert "validating" in _text(data_page.script_status(services, pending))
    accepted = stored("accepted", message="ok", params=1234, notes=["the model is compiled with adam"])
    shown = data_page.script_status(services, accepted)
    assert "accepted, a keras_model, 1,234 parameters" in _text(shown) and "compiled with adam" in _text(shown)
    rejected = stored("rejected", message="build_model returned None\nmore", details="Traceback ...\nValueError")
    shown = data_page.script_status(services, rejected)
    assert "rejected: build_model returned None" in _text(shown) and "more" not in _text(shown.children[0])
    assert isinstance(shown.children[1], html.Details) and "ValueError" in _text(shown.children[1])
    rows = {r["id"]: r for r in data_page.script_rows(services)}
    assert (rows[rejected]["validation"], rows[rejected]["message"]) == ("rejected", "build_model returned None")
    assert data_page.upload_label("wine.csv", "Drop")[0].children == "wine.csv"


def _wizard(services, **changes):  # noqa: ANN001, ANN003, ANN202
    form = {"name": "wizard", "description": "", "model": "mlp", "dataset": "numeric", "procedure": "grid",
            "space": "lr: {type: choice, values: [0.01, 0.003]}\nunits: 16\n", "epochs": 2, "configs": None,
            "metric": "val_accuracy", "direction": "max", "privacy": None, "procedure_options": {},
            "advisor": False, "entry_options": "", "plan": None}
    out = cb.wizard_launch(services, *{**form, **changes}.values())
    return out[0], out[1], {s: _text(line) for s, line in zip(cb.WIZARD_ERROR_SLOTS, out[2:], strict=True) if line}


def test_the_wizard_shows_every_field_error_at_once_under_its_box(services):
    source = Path(services.settings.data_roots[0]) / "numeric.csv"
    source.write_text(CSV)
    services.register_dataset({"name": "numeric", "path": str(source), "label_column": "y",
                               "feature_columns": ["a", "b"]})
    before = len(services.list_workloads())
    notice, path, lines = _wizard(services, name="", epochs=0, space="lr: {type: choice, values: [0.01",
                                  entry_options="entry_args: [")
    assert set(lines) == {"name", "epochs", "space", "entry"}, lines
    assert lines["epochs"] == "Input should be greater than or equal to 1"  # the box names the field
    assert "4 problems, each shown under its box" in _text(notice) and path is no_update
    # past the schema, the launch's own check and the space's own check each name their box
    notice, path, lines = _wizard(services, metric="val_acc",
                                  space="lr: 0.01\nunits: 16\noptimizer: {type: choice, values: [adam, adamax]}\n")
    assert "val_acc" in lines["metric"] and "adamax" in lines["space"], lines
    assert len(services.list_workloads()) == before  # nothing was created
    with pytest.raises(ValidationError) as first:  # REST and the CLI still get the first problem alone
        services.launch_workload({"name": "", "model": "mlp", "dataset": "numeric", "max_epochs": 0})
    assert first.value.field == "name"
    notice, path, lines = _wizard(services)
    assert lines == {} and re.fullmatch(r"/workloads/\d+", path), _text(notice)
    # the execution plan: none chosen takes the deployment's default; a chosen one is the workload's; one the
    # launch refuses (replicated with DP-SGD) is named under its own box
    assert services.get_workload(int(path.rsplit("/", 1)[1])).plan == services.settings.default_plan
    notice, path, lines = _wizard(services, plan="replicated")
    assert services.get_workload(int(path.rsplit("/", 1)[1])).plan == "replicated"
    private = cb.privacy_options(["dp"], 1.0, "noise_multiplier", 1.0, 1e-5, None)
    notice, path, lines = _wizard(services, plan="replicated", privacy=private)
    assert set(lines) == {"plan"} and "DP-SGD" in lines["plan"] and path is no_update, (lines, _text(notice))


def test_a_dataset_larger_than_the_api_body_limit_reaches_its_callback(services):
    """The API's 2 MiB body limit stays; the Dash callback path takes an upload up to the services' own limit, so
    a 3 MB file gets the form's answer (here: its label column is wrong), not a 413 the page would never show."""
    from hopper.rest import MAX_BODY_BYTES
    from hopper.webui import create_dash

    client = create_dash(services, token=None, secret_key="d" * 32).server.test_client()
    big = CSV + "".join(f"{i},{i % 5},red,{i % 2}\n" for i in range(300_000))
    assert len(big) > 1.5 * MAX_BODY_BYTES
    outputs = [{"id": f"data-{f}-error", "property": "children"} for f in data_page.DATASET_FIELDS]
    outputs.append({"id": "data-result", "property": "children"})
    form = {"data-upload.contents": _upload(big), "data-upload.filename": "big.csv", "data-path.value": None,
            "data-name.value": "big", "data-label.value": "nope", "data-task.value": None,
            "data-features.value": None}
    answer = client.post("/_dash-update-component", json={
        "output": ".." + "...".join(f"{o['id']}.{o['property']}" for o in outputs) + "..", "outputs": outputs,
        "inputs": [{"id": "data-register", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["data-register.n_clicks"],
        "state": [{"id": k.split(".")[0], "property": k.split(".")[1], "value": v} for k, v in form.items()]})
    assert answer.status_code == 200, answer.status_code
    assert "nope" in answer.get_data(as_text=True) and "big" not in {d.name for d in services.list_datasets()}
    assert client.post("/api/v1/datasets", json={"name": "x", "path": "a" * MAX_BODY_BYTES}).status_code == 413
