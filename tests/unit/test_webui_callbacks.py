"""The UI's callbacks called as plain functions against a real SQLite store (no browser, no Dash server).

Each test checks what a callback returns (rows, figures, notices) and, for bad input, that the store did
not change: the notice is the only effect of a mistake.
"""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
from dash import no_update

from hopper.webui import callbacks as cb
from tests.support.dash_forms import GRID
from tests.support.dash_forms import is_error as _is_error
from tests.support.dash_forms import launch as _launch
from tests.support.dash_forms import text_of as _text


@pytest.fixture
def workload(services, digits):
    notice, path = _launch(services)
    assert not _is_error(notice), _text(notice)
    return services.get_workload(int(path.rsplit("/", 1)[1]))


def _configs(services, workload) -> list:  # noqa: ANN001
    return services.list_configs(workload.id)


def test_launch_from_the_wizard_then_the_workloads_table(services, digits):
    assert cb.workload_rows(services) == []
    notice, path = _launch(services, name="first [grid]")
    assert _text(notice).startswith("workload ") and notice.className == "ok"
    workload_id = int(path.rsplit("/", 1)[1])
    assert path == f"/workloads/{workload_id}"
    [row] = cb.workload_rows(services)
    assert row["id"] == workload_id and row["status"] == "running" and row["procedure"] == "grid"
    assert row["link"] == f"[first \\[grid\\]](/workloads/{workload_id})"  # markdown-escaped name
    assert row["progress"] == "0/4 epochs · 2 queued" and row["best"] == ""


@pytest.mark.parametrize(("space", "field"), [
    ("lr: [0.01", "space"),  # not YAML
    ("- 0.01\n- 0.1", "space"),  # not a mapping
    ("lr: {type: uniform, low: 1}", None),  # a range without its high end
])
def test_a_launch_with_an_invalid_space_shows_an_error_and_creates_nothing(services, digits, space, field):
    notice, path = _launch(services, space=space)
    assert _is_error(notice) and path is no_update
    if field:
        assert f"[{field}]" in _text(notice)
    assert services.list_workloads() == []
    assert services.list_events() == [e for e in services.list_events() if e.action != "launch_workload"]


def test_space_feedback_and_the_row_builder(services):
    assert _text(cb.validate_space(services, GRID, "grid", "mlp")) == "valid: 2 grid points"
    assert _text(cb.validate_space(services, GRID, "random", "mlp")) == "valid: 2 parameters"
    assert _is_error(cb.validate_space(services, "lr: [", "grid", "mlp"))
    text = cb.add_space_row("lr", "choice", "0.1, 0.01", "")
    assert text == 'lr: {"type": "choice", "values": [0.1, 0.01]}\n'
    text = cb.add_space_row("units", "int", "16, 64, 16", text)
    assert text.endswith('units: {"type": "int", "low": 16, "high": 64, "step": 16}\n')
    assert _text(cb.validate_space(services, text, "grid", "mlp")) == "valid: 8 grid points"
    assert cb.add_space_row("", "choice", "1", text) is no_update  # incomplete row: nothing changes


def test_the_detail_page_returns_rows_and_figures(services, workload):
    rows, summary, gantt, parcoords, links = cb.workload_detail(services, workload.id)
    assert sorted(r["status"] for r in rows) == ["queued", "queued"]
    assert {r["hparams_text"] for r in rows} == {"lr=0.01, units=32", "lr=0.001, units=32"}
    assert summary.startswith("running · grid · model mlp · 2 epochs per config · 0/4 epochs · 2 queued · no results yet")
    assert isinstance(gantt, go.Figure) and isinstance(parcoords, go.Figure)
    assert links == []
    assert isinstance(cb.learning_curves(services, workload.id, "val_accuracy", None), go.Figure)


def test_priority_stop_and_resume_change_the_config_and_the_audit_log(services, workload):
    config = _configs(services, workload)[0]
    notice = cb.config_action(services, "btn-prio", [config.id], 7)
    assert _text(notice) == f"config {config.id}: priority 7"
    assert services.get_config(config.id).priority == 7
    assert _text(cb.config_action(services, "btn-stop", [config.id], None)).startswith(f"config {config.id}: stopped")
    assert _text(cb.config_action(services, "btn-resume", [config.id], None)).startswith(f"config {config.id}: queued")
    actions = [(e.actor, e.action) for e in services.list_events(limit=3)]
    assert actions == [("web", "resume_config"), ("web", "stop_config"), ("web", "set_priority")]


@pytest.mark.parametrize("box", [None, "", "  ", "high", 2.5])
def test_an_empty_or_wrong_priority_box_shows_an_error_and_changes_nothing(services, workload, box):
    config = _configs(services, workload)[0]
    before = services.get_config(config.id)
    notice = cb.config_action(services, "btn-prio", [config.id], box)
    assert _is_error(notice) and "[priority]" in _text(notice)
    after = services.get_config(config.id)
    assert (after.priority, after.version) == (before.priority, before.version)


def test_actions_without_a_selection_name_the_table(services, workload):
    for notice in (cb.config_action(services, "btn-stop", None, None), cb.clone_config(services, [], None, None, ""),
                   cb.edge_action(services, "btn-deploy", None, None), cb.drill_down(services, None, GRID, "grid", 2)):
        assert _is_error(notice) and "[config]" in _text(notice)
    assert _is_error(notice := cb.stop_deployment(services, None)) and "[deployment]" in _text(notice)


@pytest.mark.parametrize(("lr", "batch_size", "extra", "field"), [
    (None, None, "{units: ", "overrides"),  # malformed YAML
    (None, None, "[1, 2]", "overrides"),  # not a mapping
    ("fast", None, "", "lr"),
    (None, "big", "", "batch_size"),
])
def test_a_malformed_clone_override_shows_an_error_and_clones_nothing(services, workload, lr, batch_size, extra,
                                                                      field):
    config = _configs(services, workload)[0]
    notice = cb.clone_config(services, [config.id], lr, batch_size, extra)
    assert _is_error(notice) and f"[{field}]" in _text(notice)
    assert len(_configs(services, workload)) == 2
    assert all(e.action != "clone_config" for e in services.list_events())


def test_deploying_an_untrained_config_is_refused_and_queues_nothing(services, workload):
    config = _configs(services, workload)[0]
    notice = cb.edge_action(services, "btn-deploy", [config.id], None)
    assert _is_error(notice)
    assert services.list_deployments() == []
    notice = cb.edge_action(services, "btn-export", [config.id], ["profile"])
    assert _is_error(notice) and services.list_export_requests() == []


def test_add_config_and_its_errors(services, workload):
    assert _text(cb.add_config(services, workload.id, "lr: 0.05\nunits: 32")).endswith("queued")
    assert len(_configs(services, workload)) == 3
    notice = cb.add_config(services, workload.id, "lr: [")
    assert _is_error(notice) and "[hparams]" in _text(notice)
    assert len(_configs(services, workload)) == 3


def test_pages_for_urls(services, workload):
    page = cb.route_page(services, lambda: None, "/", None)
    assert "Workloads" in _text(page)
    assert "There is no page at /nope." in _text(cb.route_page(services, lambda: None, "/nope/", None))
    assert _text(cb.route_page(services, lambda: None, "/workloads/999999", None)) != ""
    detail = cb.route_page(services, lambda: None, f"/workloads/{workload.id}", None)
    assert workload.name in _text(detail)
    assert cb.route_page(services, lambda: None, f"/workloads/{workload.id}/pareto", "?x=bytes") is not None
    assert cb.route_page(services, lambda: "http://tb/", "/tensorboard", None) is not None


def test_device_tables_and_events(services, workload):
    devices, profiles, jobs, deployments = cb.device_tables(services)
    assert (devices, profiles, jobs, deployments) == ([], [], [], [])
    cb.config_action(services, "btn-prio", [_configs(services, workload)[0].id], 3)
    top = cb.event_rows(services)[0]
    assert top["actor"] == "web" and top["action"] == "set_priority" and top["object"].startswith("config ")
    figure, devices = cb.pareto_figure(services, workload.id, "latency", None)
    assert isinstance(figure, go.Figure) and devices == []
    assert cb.pareto_config(services, None, workload.id) is no_update


def test_the_wizards_privacy_inputs_are_checked_as_people_type(services, digits):
    off = cb.privacy_feedback(services, [], 1.0, "target_epsilon", 8, 1e-5, None, "digits")
    assert off == "" and cb.privacy_options([], 1.0, "target_epsilon", 8, 1e-5, None) is None
    good = cb.privacy_feedback(services, ["dp"], 1.0, "target_epsilon", 8, 1e-5, None, "digits")
    assert good.className == "ok" and "epsilon at most 8" in _text(good)
    bad = cb.privacy_feedback(services, ["dp"], 1.0, "noise_multiplier", 1.0, 1.5, None, "digits")
    assert _is_error(bad) and "[privacy.delta]" in _text(bad)
    negative = cb.privacy_feedback(services, ["dp"], -1.0, "noise_multiplier", 1.0, 1e-5, None, "digits")
    assert _is_error(negative) and "[privacy.l2_norm_clip]" in _text(negative)
    missing = cb.privacy_feedback(services, ["dp"], 1.0, "target_epsilon", None, 1e-5, None, "digits")
    assert _is_error(missing) and "exactly one of" in _text(missing)
    n_train = services.get_dataset("digits").n_train
    loose = cb.privacy_feedback(services, ["dp"], 1.0, "noise_multiplier", 1.0, 2.0 / n_train, None, "digits")
    assert loose.className == "warn" and "not below 1/N" in _text(loose)


def test_a_private_launch_from_the_wizard_stores_the_privacy_section_and_shows_its_warning(services, digits):
    n_train = services.get_dataset("digits").n_train
    privacy = cb.privacy_options(["dp"], 1.0, "noise_multiplier", 1.1, 2.0 / n_train, None)
    notice, path = cb.launch_workload(services, "private", "", "mlp", "digits", "grid", GRID, 2, None,
                                      "val_accuracy", "max", privacy)
    assert "launched" in _text(notice) and "not below 1/N" in _text(notice)
    workload = services.get_workload(int(path.rsplit("/", 1)[1]))
    assert workload.privacy["noise_multiplier"] == 1.1 and workload.privacy["delta"] == 2.0 / n_train
    assert workload.warnings and "not below 1/N" in workload.warnings[0]
    bad = cb.privacy_options(["dp"], 0.0, "noise_multiplier", 1.1, 1e-5, None)
    notice, path = cb.launch_workload(services, "bad", "", "mlp", "digits", "grid", GRID, 2, None,
                                      "val_accuracy", "max", bad)
    assert _is_error(notice) and "[privacy.l2_norm_clip]" in _text(notice) and path is no_update
    assert [w.name for w in services.list_workloads()] == ["private"]


def test_the_epsilon_column_and_curve_appear_only_for_private_workloads(services, digits):
    from hopper.webui import layout

    def columns(page) -> tuple[list[str], list[str]]:  # noqa: ANN001
        found: dict[str, object] = {}

        def walk(node) -> None:  # noqa: ANN001
            if getattr(node, "id", None) in ("cfg-table", "curve-metric"):
                found[node.id] = node
            children = getattr(node, "children", None)
            for child in children if isinstance(children, list) else [children]:
                if child is not None and not isinstance(child, str | int | float):
                    walk(child)

        walk(page)
        return [c["id"] for c in found["cfg-table"].columns], list(found["curve-metric"].options)

    _, plain_path = _launch(services, name="plain")
    plain = services.get_workload(int(plain_path.rsplit("/", 1)[1]))
    privacy = cb.privacy_options(["dp"], 1.0, "noise_multiplier", 1.1, 1e-5, None)
    _, private_path = cb.launch_workload(services, "private", "", "mlp", "digits", "grid", GRID, 2, None,
                                         "val_accuracy", "max", privacy)
    private = services.get_workload(int(private_path.rsplit("/", 1)[1]))
    table, curves = columns(layout.detail_page(plain, None))
    assert "epsilon" not in table and "epsilon" not in curves
    table, curves = columns(layout.detail_page(private, None))
    assert "epsilon" in table and "epsilon" in curves


def test_the_wizard_passes_a_scripts_entry_options_through_spec_validation(services, digits):
    script = services.store.scripts.add(
        name="s.py", sha256="0" * 64, path="/nowhere/s.py", entry_point="build_model", kind="hypermodel", valid=True,
        validation={"ok": True, "entry": "Classifier", "needs_entry_args": ["num_classes"]}, actor="t", message="ok")
    form = {"name": "w", "description": "", "model": f"script:{script.id}", "dataset": "digits", "procedure": "grid",
            "space": GRID, "epochs": 1, "configs": None, "metric": "val_accuracy", "direction": "max"}
    notice, path = cb.launch_workload(services, *form.values(), None, entry_options="bind_globals: {x_train: z}")
    assert _is_error(notice) and "bind_globals.x_train" in _text(notice) and path is no_update
    notice, path = cb.launch_workload(services, *form.values(), None, entry_options="")
    assert _is_error(notice) and "needs num_classes" in _text(notice)
    notice, path = cb.launch_workload(services, *form.values(), None, entry_options="entry_args: {num_classes: 10}")
    assert not _is_error(notice), _text(notice)
