"""The workload page's figures as plain functions (plotly figures in, no browser): log axes, the optimisation
history and slices, importance, legends above the plot and readable Pareto axes; and the callbacks that feed them
from a real store."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import plotly.graph_objects as go
import pytest
from dash import no_update

from hopper.engine.entities import Importance, ParetoFront, ParetoPoint, SubEpochStats
from hopper.webui import callbacks as cb
from hopper.webui import figures, layout

SPACE = {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.1}, "units": {"type": "choice", "values": [32, 64]},
         "optimizer": {"type": "choice", "values": ["adam", "sgd"]}, "batch_size": 32}
# launch order is id order; config 3 is the best, config 4 came after it and did worse
RESULTS = [(1, 1e-4, 32, "adam", 0.50), (2, 1e-3, 64, "sgd", 0.70), (3, 1e-2, 32, "adam", 0.90),
           (4, 1e-1, 64, "sgd", 0.60)]


def _configs(metric: str = "val_accuracy") -> list[dict]:
    return [{"id": i, "status": "done", "latest_metrics": {metric: value},
             "hparams": {"lr": lr, "units": units, "optimizer": opt, "batch_size": 32}}
            for i, lr, units, opt, value in RESULTS]


def _ticks(fig: go.Figure, axis: str) -> list[tuple[float, str]]:
    return [(a.y, a.text) for a in fig.layout.annotations if a.name == f"tick:{axis}"]


def test_the_search_space_names_its_log_scale_parameters():
    space = {**SPACE, "wd": {"type": "uniform", "low": 1e-5, "high": 1e-2, "log": True},
             "mom": {"type": "uniform", "low": 0.8, "high": 0.99, "sampling": "log"},
             "arch": {"type": "choice", "values": ["a", "b"],
                      "when": {"a": {"drop": {"type": "loguniform", "low": 0.01, "high": 0.5}}}}}
    assert figures.log_scale_params(space) == {"lr", "wd", "mom", "drop"}
    assert figures.log_scale_params(None) == set()


def test_parallel_coordinates_put_log_parameters_on_a_log_axis_labelled_in_real_values():
    fig = figures.parallel_coordinates(_configs(), "val_accuracy", "max", {"lr"})
    # one line per config and the colour bar's carrier; the fixed batch_size has no axis
    assert len(fig.data) == 5
    labels = {a.name[len("label:"):]: a.text for a in fig.layout.annotations if (a.name or "").startswith("label:")}
    assert list(labels) == ["lr", "optimizer", "units", "val_accuracy"] and labels["lr"].endswith("(log)")
    # four decades sit evenly spaced: a linear axis would crowd 1e-4..1e-2 into its bottom tenth
    assert _ticks(fig, "lr") == [(0.0, "0.0001"), (pytest.approx(1 / 3), "0.001"), (pytest.approx(2 / 3), "0.01"),
                                 (1.0, "0.1")]
    assert [t for _, t in _ticks(fig, "optimizer")] == ["adam", "sgd"]
    lines = [t for t in fig.data if t.name and t.name.startswith("config")]
    assert all(t.line.width >= 3 for t in lines)
    assert lines[-1].name == "config 3", "the best config is drawn last, on top"
    by_name = {t.name: t for t in lines}
    assert by_name["config 2"].y[0] == pytest.approx(1 / 3)  # lr 0.001 on the log axis
    assert fig.data[-1].marker.showscale and fig.data[-1].marker.colorbar.title.text == "val_accuracy"
    # minimising: the lowest loss is the best, drawn last
    loss = figures.parallel_coordinates(_configs("val_loss"), "val_loss", "min", {"lr"})
    assert [t.name for t in loss.data if t.name][-1] == "config 1"
    assert "No val_loss yet" in figures.parallel_coordinates(_configs(), "val_loss", "min").layout.annotations[0].text


def test_a_log_axis_over_less_than_a_decade_labels_its_values():
    configs = [{"id": i, "latest_metrics": {"m": v}, "hparams": {"lr": lr}}
               for i, (lr, v) in enumerate([(0.003, 0.4), (0.01, 0.5), (0.005, 0.45)], 1)]
    ticks = _ticks(figures.parallel_coordinates(configs, "m", "max", {"lr"}), "lr")
    assert [t for _, t in ticks] == ["0.003", "0.005", "0.01"]
    assert ticks[1][0] == pytest.approx(math.log10(0.005 / 0.003) / math.log10(0.01 / 0.003))


def test_optimisation_history_shows_each_config_in_launch_order_and_the_best_so_far():
    fig = figures.optimisation_history(list(reversed(_configs())), "val_accuracy", "max")
    points, best = fig.data
    assert list(points.x) == [1, 2, 3, 4] and list(points.y) == [0.5, 0.7, 0.9, 0.6]
    assert [c[0] for c in points.customdata] == [1, 2, 3, 4]
    assert list(best.y) == [0.5, 0.7, 0.9, 0.9] and best.line.shape == "hv"
    assert "Optimisation history" in fig.layout.title.text and fig.layout.legend.y > 1
    lower = figures.optimisation_history(_configs("val_loss"), "val_loss", "min")
    assert list(lower.data[1].y) == [0.5, 0.5, 0.5, 0.5] and "lower is better" in lower.layout.title.text
    assert "No val_loss yet" in figures.optimisation_history(_configs(), "val_loss", "min").layout.annotations[0].text


def test_slice_plots_have_a_panel_per_searched_parameter_with_log_x_for_log_ones():
    fig = figures.slice_plots(_configs(), "val_accuracy", {"lr"})
    assert [t.name for t in fig.data] == ["lr", "optimizer", "units"]  # the fixed batch_size has no panel
    assert [a.text for a in fig.layout.annotations] == ["lr", "optimizer", "units"]
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.exponentformat == "none"
    assert fig.layout.xaxis2.type == "category"
    assert fig.layout.xaxis3.type in (None, "linear")
    assert list(fig.data[0].y) == [0.5, 0.7, 0.9, 0.6] and list(fig.data[1].x) == ["adam", "sgd", "adam", "sgd"]
    assert sum(bool(t.marker.showscale) for t in fig.data) == 1
    many = [{"id": 1, "latest_metrics": {"m": 1.0}, "hparams": {f"p{i}": 1 for i in range(5)}},
            {"id": 2, "latest_metrics": {"m": 2.0}, "hparams": {f"p{i}": 2 for i in range(5)}}]
    wrapped = figures.slice_plots(many, "m")
    assert len(wrapped.data) == 5 and wrapped.layout.height > fig.layout.height  # two rows of three


def test_importance_bars_and_the_note_when_few_configs_finished():
    rough = figures.importance_figure(Importance(1, "val_accuracy", "fanova", 5, {"lr": 0.7, "units": 0.3}))
    assert list(rough.data[0].y) == ["units", "lr"] and rough.data[0].orientation == "h"
    assert "5 configs" in rough.layout.title.text
    assert "rough ranking" in next(a.text for a in rough.layout.annotations if a.name == "note")
    settled = figures.importance_figure(Importance(1, "val_accuracy", "fanova", 20, {"lr": 0.7, "units": 0.3}))
    assert not [a for a in settled.layout.annotations if a.name == "note"]
    none = figures.importance_figure(None, "needs at least 4 configs with val_accuracy; it has 2 so far")
    assert "at least 4 configs" in none.layout.annotations[0].text and not none.data


def test_legends_sit_above_the_plot_and_the_gantt_date_is_in_its_axis_title():
    curves = figures.learning_curves({i: [(0, 0.1 * i), (1, 0.2 * i)] for i in range(1, 12)}, "val_loss")
    assert curves.layout.legend.orientation == "h" and curves.layout.legend.yanchor == "bottom"
    assert curves.layout.legend.y > 1 and curves.layout.margin.t >= 50 + 22 * 3  # three rows of legend
    start = datetime(2026, 11, 26, 10, 16, 2)
    gantt = figures.gantt([{"worker": f"local-{i % 2}", "config_id": i, "epoch": 0, "partition": i % 2,
                            "outcome": "ok", "started_at": start + timedelta(seconds=i),
                            "finished_at": start + timedelta(seconds=i + 2)} for i in (2, 1, 3)])
    assert [t.name for t in gantt.data] == ["config 1", "config 2", "config 3"]  # not in order of first training
    assert gantt.layout.legend.y > 1 and gantt.layout.xaxis.tickformat == "%H:%M:%S"
    assert gantt.layout.xaxis.title.text == "time on Nov 26, 2026"


def test_pareto_axes_with_one_or_two_points_are_padded_and_plainly_ticked():
    point = ParetoPoint(export_id=1, config_id=9, quantization="int8", accuracy=0.7242, x=69155.0, bytes=69155,
                        latency_p50_ms=None, latency_p95_ms=None, pareto=True)
    fig = figures.pareto(ParetoFront(workload_id=1, x="bytes", device=None, devices=[], points=[point]))
    low, high = fig.layout.xaxis.range
    assert low < 69155 < high and high - low < 69155 * 0.2  # not plotly's 0..1.9 around a lone point
    assert fig.layout.xaxis.tickformat == ",.0f"  # 69,155, never "69.155k"
    low, high = fig.layout.yaxis.range
    assert low < 0.7242 < high and fig.layout.yaxis.tickformat == ",.3f"
    assert fig.layout.legend.y > 1
    two = figures._axis_fit([0.7242, 0.7301])
    assert two["range"][0] < 0.7242 and two["range"][1] > 0.7301 and two["tickformat"] == ",.4f"
    many = figures._axis_fit([0.1, 0.5, 0.9])
    assert "range" not in many and many["tickformat"] == ",.2f"  # plotly's autorange suits three or more


def _epoch(services, config_id: int, metrics: dict) -> None:  # noqa: ANN001
    """Commit one epoch of a config on both partitions, as the ledger does after real training."""
    for partition in range(2):
        start = services.store.schedule.start_sub_epoch(config_id, partition, f"w{partition}", n_partitions=2,
                                                        layouts={}, scripts={})
        services.store.schedule.commit_ok(
            sub_epoch_id=start.sub_epoch_id, config_id=config_id, n_partitions=2,
            checkpoint_path=f"/nowhere/c{config_id}-e{start.epoch}-p{partition}.npz", checkpoint_sha256="0" * 64,
            checkpoint_bytes=1, stats=SubEpochStats(10, 0.5, 0.5, 0.1, 0.0), val_metrics=dict(metrics),
            summarize=lambda subs, val: dict(val))


def test_the_workload_page_draws_history_slices_importance_and_log_parcoords_from_the_store(services, digits):
    workload = services.launch_workload({
        "name": "plots", "model": "mlp", "dataset": "digits", "procedure": "manual", "max_epochs": 1,
        "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.1}, "units": {"type": "int", "low": 8,
                                                                                    "high": 64}}})
    history, slices = cb.search_plots(services, workload.id)
    assert "No val_accuracy yet" in history.layout.annotations[0].text
    importance, _ = cb.learnt_figures(services, workload.id)
    assert "at least 4 configs" in importance.layout.annotations[0].text  # the note, not an empty chart
    for lr, units, accuracy in [(1e-4, 8, 0.3), (1e-3, 16, 0.5), (1e-2, 32, 0.8), (1e-1, 64, 0.4), (3e-3, 24, 0.7)]:
        _epoch(services, services.add_config(workload.id, {"lr": lr, "units": units}).id,
               {"val_accuracy": accuracy})
    history, slices = cb.search_plots(services, workload.id)
    assert list(history.data[1].y) == [0.3, 0.5, 0.8, 0.8, 0.8]
    assert [t.name for t in slices.data] == ["lr", "units"] and slices.layout.xaxis.type == "log"
    importance, _ = cb.learnt_figures(services, workload.id)
    assert set(importance.data[0].y) == {"lr", "units"} and "5 configs" in importance.layout.title.text
    *_, parcoords, _links = cb.workload_detail(services, workload.id)
    assert [t for _, t in _ticks(parcoords, "lr")][0] == "0.0001"
    page = str(layout.detail_page(workload, None))
    for graph in ("graph-history", "graph-slices", "importance-graph", "graph-parcoords"):
        assert f"'{graph}'" in page
    assert "'responsive': True" in page


def test_a_range_dragged_on_the_parallel_coordinates_filters_the_table_to_the_configs_it_crosses():
    fig = figures.parallel_coordinates(_configs(), "val_accuracy", "max", {"lr"})
    assert fig.layout.dragmode == "select"
    lines = [t for t in fig.data if t.customdata is not None]
    assert all(len(set(t.customdata)) == 1 and len(t.customdata) == len(t.x) for t in lines)
    # what plotly sends for a box over two configs' points on one axis
    picked = sorted({int(t.customdata[0]) for t in lines})[:2]
    selected = {"points": [{"curveNumber": 0, "pointIndex": 0, "customdata": i} for i in picked]}
    query = cb.filter_from_chart_selection(selected, "")
    assert query == " or ".join(f"{{id}} = {i}" for i in picked)
    # a double click clears the chart's filter, not one the person typed
    assert cb.filter_from_chart_selection(None, query) == ""
    assert cb.filter_from_chart_selection({"points": []}, "{objective} > 0.9") is no_update
