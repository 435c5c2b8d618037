"""The dashboard's validation tells the truth (issue 18, items 1-4): the wizard, clone and priority boxes refuse what
a launch or the worker would refuse, with the field named, and the live validator agrees with Launch because both
call the same service check. Plain callback functions against a real SQLite store: no browser, no training."""

from __future__ import annotations

import pytest
from dash import no_update

from hopper.engine.errors import ValidationError
from hopper.engine.specs import parse_mapping_text
from hopper.webui import callbacks as cb
from tests.support.dash_forms import GRID
from tests.support.dash_forms import is_error as _is_error
from tests.support.dash_forms import launch as _launch
from tests.support.dash_forms import text_of as _text


def test_the_wizard_refuses_an_objective_no_config_would_report(services, digits):
    notice, path = _launch(services, metric="val_acc")
    assert _is_error(notice) and path is no_update
    assert "[objectives.0.metric]" in _text(notice) and "val_accuracy" in _text(notice)  # names what there is
    assert services.list_workloads() == []
    for metric in ("val_loss", "flops", "val_balanced_accuracy", "edge_latency_ms@pi"):
        notice, _ = _launch(services, name=metric, metric=metric, direction="min")
        assert not _is_error(notice), _text(notice)


# One case per mismatch the issue saw: the live validator said "valid" next to a Launch error.
@pytest.mark.parametrize(("space", "procedure", "field"), [
    ("", "grid", "space"),  # empty
    ("optimizer: {type: choice, values: [adam, adamax]}", "grid", "space.optimizer"),
    ("lrr: {type: choice, values: [0.01]}", "random", "space.lrr"),  # misspelled
    ("lr: -0.01", "grid", "space.lr"),
    ("lr: 0", "grid", "space.lr"),
    ("lr: {type: choice, values: [0.01]}\nunits: 32\nlr: {type: choice, values: [0.1]}", "grid", "space.lr"),
])
def test_the_live_validator_and_launch_refuse_the_same_space_naming_the_same_field(services, digits, space,
                                                                                     procedure, field):
    live = cb.validate_space(services, space, procedure, "mlp")
    launched, path = _launch(services, space=space, procedure=procedure, configs=4)
    assert _is_error(live) and _is_error(launched) and path is no_update
    assert f"[{field}]" in _text(live) and f"[{field}]" in _text(launched), (_text(live), _text(launched))
    assert services.list_workloads() == []


def test_a_duplicate_key_from_add_row_is_refused(services):
    text = cb.add_space_row("units", "choice", "32, 64", GRID)
    feedback = cb.validate_space(services, text, "grid", "mlp")
    assert _is_error(feedback) and "[space.units]" in _text(feedback) and "given twice" in _text(feedback)


@pytest.mark.parametrize(("lr", "extra", "field"), [
    (None, "{units: }", "overrides.units"),  # a key without a value is not "units=None"
    (None, "units: null", "overrides.units"),  # nor is an explicit null for a knob with a default
    (0, "", "overrides.lr"),
    (-1, "", "overrides.lr"),
    (None, '{"units": 64, "units": 32}', "overrides.units"),
])
def test_clone_refuses_a_malformed_or_invalid_override_naming_the_field(services, digits, lr, extra, field):
    _, path = _launch(services)
    workload_id = int(path.rsplit("/", 1)[1])
    source = services.list_configs(workload_id)[0]
    notice = cb.clone_config(services, [source.id], lr, None, extra)
    assert _is_error(notice) and f"[{field}]" in _text(notice), _text(notice)
    assert len(services.list_configs(workload_id)) == 2
    assert all(e.action != "clone_config" for e in services.list_events())


def test_an_empty_priority_box_is_refused_not_zero(services, digits):
    _, path = _launch(services)
    config = services.list_configs(int(path.rsplit("/", 1)[1]))[0]
    notice = cb.config_action(services, "btn-prio", [config.id], None)
    assert _is_error(notice) and "[priority]" in _text(notice)
    assert services.get_config(config.id).priority == config.priority


def test_typed_mappings_refuse_duplicate_and_empty_keys_everywhere():
    with pytest.raises(ValidationError) as raised:
        parse_mapping_text("a: 1\nb: 2\na: 3", "hparams")
    assert raised.value.field == "hparams.a" and "line 3" in raised.value.message
    with pytest.raises(ValidationError) as raised:
        parse_mapping_text("{units: }", "overrides")
    assert raised.value.field == "overrides.units"
    assert parse_mapping_text("weights_path: null", "hparams") == {"weights_path": None}


def test_the_list_says_best_of_any_epoch_and_the_pareto_detail_counts_epochs_from_one(services, digits):
    from hopper.webui import layout

    _, path = _launch(services)
    workload_id = int(path.rsplit("/", 1)[1])
    config = services.list_configs(workload_id)[0]
    page = layout.workloads_page([], [])
    table = next(c for c in page.children if getattr(c, "id", None) == "workload-table")
    assert {"name": "best (any epoch)", "id": "best"} in table.columns
    detail = layout.detail_page(services.get_workload(workload_id), None)
    headers = [c["name"] for c in _find(detail, "cfg-table").columns]
    assert "val_accuracy (latest epoch)" in headers
    # three epochs recorded (0-based 0..2): the detail says "after epoch 3 of 3", never "epoch=2"
    with services.store.configs._session() as session:  # noqa: SLF001 - a finished config without training
        from hopper.engine.store.models import ConfigRow

        row = session.get(ConfigRow, config.id)
        row.latest_metrics, row.epochs_done = {"epoch": 2, "val_accuracy": 0.9}, 3
    click = {"points": [{"customdata": [config.id, 1, "float32"]}]}
    shown = _text(cb.pareto_config(services, click, workload_id))
    assert "after epoch 3 of 3" in shown and "epoch=" not in shown


def _find(node, component_id: str):  # noqa: ANN001, ANN202
    if getattr(node, "id", None) == component_id:
        return node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, (str, int, float)):
            found = _find(child, component_id)
            if found is not None:
                return found
    return None


def test_status_words_say_who_trains_now_and_progress_counts_epochs(services, digits):
    """Three started-looking configs on a paused-then-resumed workload: one on a worker ("training now"), one started
    whose worker was lost ("waiting for a worker"), one never started ("queued"), and the list counts epochs."""
    _, path = _launch(services, space="lr: {type: choice, values: [0.01, 0.003, 0.001]}\nunits: 16", epochs=4)
    workload_id = int(path.rsplit("/", 1)[1])
    on_worker, lost, waiting = (c.id for c in services.list_configs(workload_id))
    starts = [services.store.schedule.start_sub_epoch(cid, 0, f"w{cid}", n_partitions=services.settings.workers,
                                                      layouts={}, scripts={}) for cid in (on_worker, lost)]
    services.store.schedule.commit_lost(sub_epoch_id=starts[1].sub_epoch_id, config_id=lost, hung=False,
                                        reason="worker died", fatal=False, max_losses=3)
    rows, summary, *_ = cb.workload_detail(services, workload_id)
    assert {r["id"]: r["status"] for r in rows} == {on_worker: "training now", lost: "waiting for a worker",
                                                    waiting: "queued"}
    assert "0/12 epochs · 1 training now · 1 waiting for a worker · 1 queued" in summary
    [row] = cb.workload_rows(services)
    assert (row["status"], row["progress"]) == ("running", "0/12 epochs · 1 training now · 1 waiting for a worker "
                                                           "· 1 queued")
    services.set_workload_status(workload_id, "paused")
    rows, *_ = cb.workload_detail(services, workload_id)
    assert {r["id"]: r["status"] for r in rows} == {on_worker: "training now", lost: "paused", waiting: "paused"}
    services.stop_config(waiting)  # a stopped config plans no more epochs than it trained
    assert services.workload_progress([workload_id])[workload_id].epochs_planned == 8


def test_the_workloads_list_puts_the_newest_first(services, digits):
    ids = [int(_launch(services, name=f"w{i}")[1].rsplit("/", 1)[1]) for i in range(3)]
    assert [r["id"] for r in cb.workload_rows(services)] == sorted(ids, reverse=True)


def test_a_selection_highlights_its_curve_says_so_and_can_be_cleared(services, digits):
    from hopper.webui import figures

    series = {1: [(0, 0.5), (1, 0.6)], 2: [(0, 0.4), (1, 0.7)]}
    figure = figures.learning_curves(series, "val_accuracy", highlight={2})
    assert [t.name for t in figure.data] == ["config 1", "config 2"]  # nothing hidden by the selection
    assert [t.opacity for t in figure.data] == [0.35, 1.0] and figure.data[1].line.width == 4
    assert figure.layout.title.text == "val_accuracy per epoch · config 2 highlighted"
    assert figures.learning_curves(series, "val_accuracy").layout.title.text == "val_accuracy per epoch"
    assert cb.clear_selection() == ([], [])
    _, path = _launch(services)
    workload_id = int(path.rsplit("/", 1)[1])
    assert cb.learning_curves(services, workload_id, "val_accuracy", [1], ["only"]).layout.annotations  # empty: says why


def test_a_drill_down_starts_from_the_parents_procedure_and_takes_a_budget(services, digits):
    from hopper.engine.procedure_guide import drill_down_procedure

    continuous = {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1}}
    assert drill_down_procedure("tpe", continuous) == "tpe"
    assert drill_down_procedure("grid", continuous) == "random"  # a grid cannot enumerate a continuous range
    assert drill_down_procedure("asha", continuous) == "random"
    assert drill_down_procedure("grid", {"lr": {"type": "choice", "values": [0.1]}}) == "grid"
    _, path = _launch(services)
    config = services.list_configs(int(path.rsplit("/", 1)[1]))[0]
    notice = cb.drill_down(services, [config.id], "lr: {type: uniform, low: 0.001, high: 0.01}", "random", 1, "")
    assert _is_error(notice) and "[max_configs]" in _text(notice)  # an empty budget box is named, not defaulted


def test_the_audit_log_opens_an_event_in_full(services, digits):
    _launch(services, name="x" * 150)
    rows = cb.event_rows(services)
    launch = next(r for r in rows if r["action"] == "launch_workload")
    assert "Click an event" in _text(cb.event_detail(services, None))
    detail = cb.event_detail(services, {"row": 0, "column_id": "after", "row_id": launch["id"]})
    assert "launch_workload on workload" in _text(detail) and '"name": "' + "x" * 150 in _text(detail)


def test_the_view_state_round_trips_through_the_address(services, digits):
    from hopper.webui import layout

    _, path = _launch(services)
    workload_id = int(path.rsplit("/", 1)[1])
    rows, *_ = cb.workload_detail(services, workload_id)
    chosen = rows[1]["id"]
    query = cb.detail_view_query([{"column_id": "objective", "direction": "desc"}], "val_loss", [chosen])
    assert query == f"?config={chosen}&metric=val_loss&sort=objective&dir=desc"
    page = cb.route_page(services, lambda: None, path, query)
    assert _find(page, "curve-metric").value == "val_loss"
    assert _find(page, "cfg-table").sort_by == [{"column_id": "objective", "direction": "desc"}]
    assert _find(page, "view-config").data == chosen
    assert cb.select_from_view(rows, chosen) == ([1], [chosen], None)  # applied once, then forgotten
    assert cb.select_from_view(rows, None) == (no_update, no_update, no_update)
    assert cb.select_from_view(rows, 999_999) == (no_update, no_update, None)  # gone: forget it
    odd = cb.route_page(services, lambda: None, path, "?config=abc&metric=nope&dir=sideways")
    assert _find(odd, "curve-metric").value == "val_accuracy" and _find(odd, "view-config").data is None
    listing = cb.route_page(services, lambda: None, "/", "?sort=id&dir=asc")
    assert _find(listing, "workload-table").sort_by == [{"column_id": "id", "direction": "asc"}]
    assert _find(listing, "wizard").open is False  # workloads exist: the list comes first, the wizard folded
    assert layout.view_query(None) == ""


def test_notes_from_the_workload_page(services, digits):
    _, path = _launch(services)
    workload_id = int(path.rsplit("/", 1)[1])
    config_id = services.list_configs(workload_id)[0].id
    assert "No notes yet." in _text(cb.notes_list(services, workload_id, None))
    assert _text(cb.add_note(services, workload_id, "workload", None, "lr **0.01** diverges")).startswith("note ")
    notice = cb.add_note(services, workload_id, "config", None, "clone this")
    assert _is_error(notice) and "[config]" in _text(notice)  # a config note needs a selected config
    assert _is_error(notice := cb.add_note(services, workload_id, "workload", None, "  ")) and "[text]" in _text(notice)
    cb.add_note(services, workload_id, "config", [config_id], "clone this")
    shown = cb.notes_list(services, workload_id, [config_id])
    assert [n.children[1].children for n in shown] == ["lr **0.01** diverges", "clone this"]  # Markdown kept
    assert "web · " in _text(shown[0]) and f"config {config_id}" in _text(shown[1])
    assert [e.action for e in services.list_events(limit=2)] == ["add_note", "add_note"]


def test_a_page_per_config_with_hparams_lineage_events_and_notes(services, digits):
    _, path = _launch(services)
    workload_id = int(path.rsplit("/", 1)[1])
    source = services.list_configs(workload_id)[0]
    clone = services.clone_config(source.id, {"lr": 0.002}, actor="alice")
    services.add_note("config", clone.id, "half the **lr**", actor="alice")
    rows, *_ = cb.workload_detail(services, workload_id)
    assert {r["page"] for r in rows} >= {f"[open](/configs/{clone.id})"}  # reachable from the table
    page = cb.route_page(services, lambda: None, f"/configs/{clone.id}", None)
    assert _text(_find(page, "config-title")) == f"Config {clone.id}"
    assert "lr0.002" in _text(_find(page, "config-hparams"))
    assert _find(page, "config-clone-source").href == f"/configs/{source.id}"
    assert [e["action"] for e in _find(page, "config-events").data] == ["add_note", "clone_config"]  # newest first
    assert "half the **lr**" in _text(page) and "no checkpoint yet" in _text(page)
    source_page = cb.route_page(services, lambda: None, f"/configs/{source.id}", None)
    assert f"cloned into config {clone.id}" in _text(_find(source_page, "config-lineage"))
    assert "does not exist" in _text(cb.route_page(services, lambda: None, "/configs/999999", None))


def test_configs_compared_side_by_side_and_the_table_filters(services, digits):
    _, path = _launch(services)
    workload_id = int(path.rsplit("/", 1)[1])
    first, second = (c.id for c in services.list_configs(workload_id))
    assert cb.compare_link([first]) == ("", {"pointerEvents": "none", "opacity": 0.5})
    href, style = cb.compare_link([first, second])
    assert href == f"/compare?configs={first},{second}" and style == {}
    page = cb.route_page(services, lambda: None, "/compare", f"?configs={first},{second}")
    table = _find(page, "compare-table")
    assert [c["name"] for c in table.columns] == ["", f"config {first}", f"config {second}"]
    assert {r[""]: (r[f"config {first}"], r[f"config {second}"]) for r in table.data}["lr"] == ("0.01", "0.001")
    for query, reason in ((f"?configs={first}", "two or more"), ("?configs=a,b", "separated by commas"),
                          (f"?configs={first},999999", "does not exist")):
        assert reason in _text(cb.route_page(services, lambda: None, "/compare", query))
    detail = cb.route_page(services, lambda: None, path, None)
    assert _find(detail, "cfg-table").filter_action == "native"
