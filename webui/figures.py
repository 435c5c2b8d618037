"""Plotly figures built from services' plain objects (no TensorFlow, no store access)."""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from plotly.colors import sample_colorscale

if TYPE_CHECKING:
    from hopper.engine.entities import Importance, ParetoFront

_PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
            "#bab0ac"]


# Legends sit above the plot, horizontal: below it they collide with the x axis title (and a date axis's date line)
# once a narrow window wraps them onto two rows.
LEGEND_ABOVE = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0}
_LOG_TYPES = ("loguniform",)


def _legend_margin(entries: int, base: int = 50) -> int:
    """Top margin for a title plus a legend above the plot; about five entries fit a row in an 800 px window."""
    return base + 22 * max(1, math.ceil(entries / 5))


def colour(config_id: int) -> str:
    """A stable colour per config, so a config looks the same in every chart."""
    return _PALETTE[config_id % len(_PALETTE)]


def empty(message: str) -> go.Figure:
    """A figure that only says why there is nothing to draw yet."""
    return _empty(message)


def _empty(message: str) -> go.Figure:
    fig = go.Figure()
    # wrapped near 70 characters: a long reason (importance's) ran past both edges of a narrow chart
    fig.add_annotation(text="<br>".join(textwrap.wrap(message, 70)), showarrow=False,
                       font={"size": 14, "color": "#888"})
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=240, plot_bgcolor="#fff",
                      margin={"l": 20, "r": 20, "t": 30, "b": 20}, uirevision="keep")
    return fig


def learning_curves(series: dict[int, list[tuple[int, float]]], metric: str,
                    highlight: set[int] | frozenset[int] = frozenset()) -> go.Figure:
    """One line per config: metric value per epoch (1-based); ``highlight``ed configs drawn bold, the rest faded,
    and the title says which, so a selection never hides lines without saying so."""
    if not any(series.values()):
        return _empty("No finished epochs yet: curves appear after each config's first epoch")
    fig = go.Figure()
    for config_id, points in sorted(series.items()):
        if not points:
            continue
        bold = config_id in highlight
        fig.add_trace(go.Scatter(x=[e + 1 for e, _ in points], y=[v for _, v in points], mode="lines+markers",
                                 name=f"config {config_id}", line={"color": colour(config_id), "width": 4 if bold else 2},
                                 opacity=1.0 if bold or not highlight else 0.35))
    shown = [c for c in sorted(highlight) if series.get(c)]
    title = f"{metric} per epoch" + (f" · config {', '.join(map(str, shown))} highlighted" if shown else "")
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric, height=360 + 22 * (len(fig.data) // 5),
                      margin={"l": 60, "r": 20, "t": _legend_margin(len(fig.data)), "b": 50}, uirevision="keep",
                      legend=LEGEND_ABOVE)
    fig.update_xaxes(dtick=1)
    return fig


def gantt(sub_epochs: list[dict]) -> go.Figure:
    """Sub-epochs per worker over time, coloured by config (the MOP schedule)."""
    rows = [s for s in sub_epochs if s["started_at"]]
    if not rows:
        return _empty("No sub-epochs yet")
    import pandas as pd
    import plotly.express as px

    frame = pd.DataFrame([{
        "worker": s["worker"], "start": s["started_at"], "finish": s["finished_at"] or s["started_at"],
        "config": f"config {s['config_id']}", "detail": f"epoch {s['epoch'] + 1}, partition {s['partition']}: "
                                                       f"{s['outcome']}",
    } for s in rows])
    frame["start"] = pd.to_datetime(frame["start"])
    frame["finish"] = pd.to_datetime(frame["finish"])
    frame.loc[frame["finish"] <= frame["start"], "finish"] = frame["start"] + pd.Timedelta(milliseconds=200)
    colours = {f"config {s['config_id']}": colour(s["config_id"]) for s in rows}
    # the legend in config order, not in the order configs first trained
    order = [f"config {i}" for i in sorted({s["config_id"] for s in rows})]
    fig = px.timeline(frame, x_start="start", x_end="finish", y="worker", color="config", hover_data=["detail"],
                      color_discrete_map=colours, category_orders={"config": order})
    configs = frame["config"].nunique()
    # The date goes into the axis title: as plotly's second tick line it hid under a legend below the plot.
    fig.update_layout(title="Sub-epochs per worker", height=280 + 22 * math.ceil(configs / 5),
                      margin={"l": 80, "r": 20, "t": _legend_margin(configs), "b": 50}, uirevision="keep",
                      legend={**LEGEND_ABOVE, "title": {"text": ""}})
    fig.update_xaxes(tickformat="%H:%M:%S", title_text=f"time on {frame['start'].min():%b %d, %Y}")
    fig.update_yaxes(categoryorder="category ascending")
    return fig


def log_scale_params(space: dict | None) -> set[str]:
    """Names of the search space's log-scale hyperparameters: ``loguniform`` ranges, ``log: true`` or
    ``sampling: log`` entries, at any depth of a conditional space."""
    names: set[str] = set()

    def walk(mapping: dict) -> None:
        for name, entry in mapping.items():
            if not isinstance(entry, dict):
                continue
            if entry.get("type") in _LOG_TYPES or entry.get("log") is True or entry.get("sampling") == "log":
                names.add(str(name))
            walk(entry)  # a choice's ``when: {value: {name: definition}}`` sub-spaces

    walk(space or {})
    return names


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _log_ticks(values: list[float]) -> list[float]:
    """Tick positions for a log axis, in real values: the values themselves when there are few (a choice of
    learning rates), else 1-2-5 steps per decade (1 only, over three decades or more)."""
    distinct = sorted(set(values))
    if len(distinct) <= 6:
        return distinct
    lo, hi = math.log10(distinct[0]), math.log10(distinct[-1])
    mantissas = (1,) if hi - lo >= 3 else (1, 2, 5)
    return [m * 10.0 ** k for k in range(math.floor(lo), math.ceil(hi) + 1) for m in mantissas
            if distinct[0] * (1 - 1e-9) <= m * 10.0 ** k <= distinct[-1] * (1 + 1e-9)]


def _linear_ticks(values: list[float]) -> list[float]:
    distinct = sorted(set(values))
    if len(distinct) <= 6:
        return distinct
    lo, hi = distinct[0], distinct[-1]
    return [lo + (hi - lo) * i / 4 for i in range(5)]


def _tick_text(value: float) -> str:
    return f"{value:.4g}"


def parallel_coordinates(configs: list[dict], metric: str, direction: str,
                         log_params: set[str] | frozenset[str] = frozenset()) -> go.Figure:
    """Hyperparameters against the objective, one thick line per config with a value, coloured by the objective
    (the best drawn on top). ``log_params`` get a log axis (positions are log10 of the value, labels the real
    values). Drawn as lines rather than plotly's parcoords, whose lines are one pixel wide and pale, and which has
    no log axis."""
    scored = sorted((c for c in configs if metric in c["latest_metrics"]), key=lambda c: c["id"])
    if not scored:
        return _empty(f"No {metric} yet")
    names = sorted({k for c in scored for k in c["hparams"]})
    varying = [n for n in names if len({repr(c["hparams"].get(n)) for c in scored}) > 1]
    names = varying or names[:1]  # a fixed hyperparameter is one flat line: leave it out
    objective = [float(c["latest_metrics"][metric]) for c in scored]
    axes = [_coordinate_axis(name, [c["hparams"].get(name) for c in scored], name in log_params) for name in names]
    axes.append(_coordinate_axis(metric, objective, False))
    lo, hi = min(objective), max(objective)
    scale = _OBJECTIVE_SCALE if direction != "min" else [[1 - t, c] for t, c in reversed(_OBJECTIVE_SCALE)]
    shares = [(v - lo) / (hi - lo) if hi > lo else 1.0 for v in objective]
    goodness = shares if direction != "min" else [1 - s for s in shares]
    fig = go.Figure()
    # the best last, so it is drawn on top of the others
    for index in sorted(range(len(scored)), key=lambda i: goodness[i]):
        config = scored[index]
        hover = "<br>".join([f"config {config['id']}",
                             *(f"{n}={_tick_text(v) if _is_number(v) else v}" for n, v in config["hparams"].items()),
                             f"{metric}={objective[index]:.4g}"])
        fig.add_trace(go.Scatter(
            x=list(range(len(axes))), y=[axis["positions"][index] for axis in axes], mode="lines+markers",
            line={"width": 3.5, "color": sample_colorscale(scale, [shares[index]])[0]}, marker={"size": 7},
            name=f"config {config['id']}", hovertext=hover, hoverinfo="text", showlegend=False, opacity=0.95,
            customdata=[config["id"]] * len(axes)))  # a box drawn on an axis selects configs by id (table filter)
    # an invisible point carries the colour bar (the lines cannot)
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False,
                             marker={"color": [lo, hi], "cmin": lo, "cmax": hi, "colorscale": scale,
                                     "showscale": True, "colorbar": {"title": {"text": metric}, "thickness": 14}}))
    for i, axis in enumerate(axes):
        fig.add_shape(type="line", x0=i, x1=i, y0=0, y1=1, line={"color": "#57606a", "width": 1.5}, layer="below")
        fig.add_annotation(x=i, y=1.06, text=f"<b>{axis['label']}</b>" + (" (log)" if axis["log"] else ""),
                           showarrow=False, yanchor="bottom", font={"size": 12}, name=f"label:{axis['label']}")
        for position, text in zip(axis["tickpositions"], axis["ticktext"], strict=True):
            fig.add_annotation(x=i, y=position, text=text, showarrow=False, xanchor="right", xshift=-6,
                               font={"size": 10, "color": "#57606a"}, bgcolor="rgba(255,255,255,0.85)",
                               name=f"tick:{axis['label']}")
    fig.update_layout(title={"text": f"Hyperparameters vs {metric}", "y": 0.97}, height=380,
                      margin={"l": 60, "r": 30, "t": 80, "b": 30}, uirevision="keep", plot_bgcolor="#fff",
                      # drag a box over a range of one axis, as on plotly's parcoords: the table keeps those configs
                      dragmode="select",
                      xaxis={"visible": False, "range": [-0.5, len(axes) - 0.6]},
                      yaxis={"visible": False, "range": [-0.05, 1.14]})  # room for the labels above
    return fig


# Light to dark blue by launch order: the first config's point is still visible on white.
_LAUNCH_SCALE = [[0.0, "#9ecae1"], [1.0, "#08306b"]]
# Viridis without its pale yellow end: every line stays visible on white.
_OBJECTIVE_SCALE = [[0.0, "#440154"], [0.25, "#3b528b"], [0.5, "#21908d"], [0.75, "#3aa85a"], [1.0, "#8fc31f"]]


def _coordinate_axis(label: str, values: list, log: bool) -> dict:
    """One vertical axis: each config's position on it (0..1) and its ticks (positions and texts)."""
    if all(_is_number(v) for v in values) and not (log and any(v <= 0 for v in values)):
        def place(v: float) -> float:
            return math.log10(v) if log else float(v)

        ticks = _log_ticks(values) if log else _linear_ticks(values)
        lo, hi = min(place(v) for v in values), max(place(v) for v in values)

        def normal(v: float) -> float:
            return (place(v) - lo) / (hi - lo) if hi > lo else 0.5

        return {"label": label, "log": log, "positions": [normal(v) for v in values],
                "tickpositions": [normal(t) for t in ticks], "ticktext": [_tick_text(t) for t in ticks]}
    labels = sorted({str(v) for v in values})
    step = 1 / (len(labels) - 1) if len(labels) > 1 else 0.0
    offset = 0.0 if len(labels) > 1 else 0.5
    return {"label": label, "log": False, "positions": [offset + labels.index(str(v)) * step for v in values],
            "tickpositions": [offset + i * step for i in range(len(labels))], "ticktext": labels}


def optimisation_history(configs: list[dict], metric: str, direction: str) -> go.Figure:
    """Each config's objective (latest epoch) in launch order, and the best so far (as Optuna Dashboard draws it)."""
    scored = sorted((c for c in configs if metric in c["latest_metrics"]), key=lambda c: c["id"])
    if not scored:
        return _empty(f"No {metric} yet: the history starts with the first finished epoch")
    values = [float(c["latest_metrics"][metric]) for c in scored]
    order = list(range(1, len(scored) + 1))
    pick = max if direction != "min" else min
    best = [pick(values[: i + 1]) for i in range(len(values))]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=order, y=values, mode="markers", name=f"{metric} of each config",
                             marker={"size": 10, "color": [colour(c["id"]) for c in scored],
                                     "line": {"color": "#333", "width": 1}},
                             customdata=[[c["id"], c["status"]] for c in scored],
                             hovertemplate="config %{customdata[0]} (%{customdata[1]})<br>" + metric
                                           + " %{y:.4g}<extra></extra>"))
    fig.add_trace(go.Scatter(x=order, y=best, mode="lines", name="best so far",
                             line={"color": "#e45756", "width": 3, "shape": "hv"}))
    fig.update_layout(title=f"Optimisation history: {metric} ({'higher' if direction != 'min' else 'lower'} is "
                            "better)", xaxis_title="config, in launch order", yaxis_title=metric, height=340,
                      margin={"l": 60, "r": 20, "t": _legend_margin(2, 60), "b": 50}, uirevision="keep",
                      legend=LEGEND_ABOVE)
    fig.update_xaxes(tickmode="array", tickvals=order, ticktext=[str(c["id"]) for c in scored]
                     if len(scored) <= 30 else None)
    return fig


def slice_plots(configs: list[dict], metric: str, log_params: set[str] | frozenset[str] = frozenset()) -> go.Figure:
    """The objective against each searched hyperparameter, one small panel each (log x axis for the log-scale
    ones, categories for choices of text), points coloured by launch order."""
    from plotly.subplots import make_subplots

    scored = sorted((c for c in configs if metric in c["latest_metrics"]), key=lambda c: c["id"])
    if not scored:
        return _empty(f"No {metric} yet: slices appear with the first finished epoch")
    names = sorted({k for c in scored for k in c["hparams"]})
    names = [n for n in names if len({repr(c["hparams"].get(n)) for c in scored}) > 1] or names[:1]
    ids = [c["id"] for c in scored]
    id_ticks = {"tickvals": ids, "ticktext": [str(i) for i in ids]} if len(ids) <= 8 else {"tickformat": "d"}
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    fig = make_subplots(rows=rows, cols=columns, shared_yaxes=True, horizontal_spacing=0.05,
                        vertical_spacing=0.22 / rows, subplot_titles=names)
    for i, name in enumerate(names):
        row, col = i // columns + 1, i % columns + 1
        chosen = [c for c in scored if name in c["hparams"]]
        xs = [c["hparams"][name] for c in chosen]
        numeric = all(_is_number(x) for x in xs)
        fig.add_trace(go.Scatter(
            x=xs if numeric else [str(x) for x in xs], y=[c["latest_metrics"][metric] for c in chosen],
            mode="markers", name=name, showlegend=False,
            marker={"size": 9, "color": [c["id"] for c in chosen], "colorscale": _LAUNCH_SCALE,
                    "cmin": scored[0]["id"], "cmax": scored[-1]["id"], "line": {"color": "#333", "width": 1},
                    "showscale": i == 0, "colorbar": {"title": {"text": "config id"}, "thickness": 12,
                                                      **id_ticks}},
            customdata=[c["id"] for c in chosen],
            hovertemplate="config %{customdata}<br>" + name + " %{x}<br>" + metric + " %{y:.4g}<extra></extra>"),
            row=row, col=col)
        if numeric and name in log_params and all(x > 0 for x in xs):
            fig.update_xaxes(type="log", exponentformat="none", row=row, col=col)  # 0.0001, not "100μ"
        elif not numeric:
            fig.update_xaxes(type="category", row=row, col=col)
    fig.update_yaxes(title_text=metric, col=1)
    fig.update_layout(title=f"Slices: {metric} against each hyperparameter", height=120 + 240 * rows,
                      margin={"l": 60, "r": 20, "t": 80, "b": 40}, uirevision="keep")
    return fig


def metric_series(configs: list[dict], metric: str) -> dict[int, list[tuple[int, float]]]:
    """Per-config (epoch, value) series of one metric from config dicts."""
    series: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for c in configs:
        for m in c.get("metrics", []):
            if m["name"] == metric:
                series[c["id"]].append((m["epoch"], m["value"]))
    return {k: sorted(v) for k, v in series.items()}


def pareto(document: ParetoFront) -> go.Figure:
    """Accuracy vs latency (or size) per export; the front in colour and joined, dominated points grey."""
    points = document.points
    if not points:
        return _empty("No profiled exports yet: export configs and start an edge agent")
    x_title = (f"latency p50 on {document.device} (ms)" if document.x == "latency"
               else "model size (bytes)")
    fig = go.Figure()
    dominated = [p for p in points if not p.pareto]
    if dominated:
        fig.add_trace(go.Scatter(
            x=[p.x for p in dominated], y=[p.accuracy for p in dominated], mode="markers", name="dominated",
            marker={"color": "#c4c4c4", "size": 11, "line": {"color": "#999", "width": 1}},
            customdata=[[p.config_id, p.export_id, p.quantization] for p in dominated],
            hovertemplate="config %{customdata[0]} (%{customdata[2]})<br>accuracy %{y:.4f}<br>x %{x:.4g}"
                          "<extra>dominated</extra>"))
    front = sorted((p for p in points if p.pareto), key=lambda p: p.x)
    fig.add_trace(go.Scatter(x=[p.x for p in front], y=[p.accuracy for p in front], mode="lines",
                             line={"color": "#4c78a8", "dash": "dot", "shape": "hv"}, name="front",
                             hoverinfo="skip"))
    for quantization, symbol in (("float32", "circle"), ("int8", "diamond")):
        chosen = [p for p in front if p.quantization == quantization]
        if not chosen:
            continue
        fig.add_trace(go.Scatter(
            x=[p.x for p in chosen], y=[p.accuracy for p in chosen], mode="markers+text",
            name=f"front ({quantization})", text=[f"config {p.config_id}" for p in chosen],
            textposition="top center", marker={"size": 14, "symbol": symbol,
                                               "color": [colour(p.config_id) for p in chosen]},
            customdata=[[p.config_id, p.export_id, p.quantization] for p in chosen],
            hovertemplate="config %{customdata[0]} (%{customdata[2]})<br>accuracy %{y:.4f}<br>x %{x:.4g}"
                          "<extra>Pareto</extra>"))
    fig.update_layout(xaxis_title=x_title, yaxis_title="accuracy (TFLite interpreter, validation split)",
                      height=460, margin={"l": 70, "r": 20, "t": 60, "b": 50}, uirevision="keep",
                      legend=LEGEND_ABOVE)
    fig.update_xaxes(**_axis_fit([p.x for p in points]))
    fig.update_yaxes(**_axis_fit([p.accuracy for p in points]))
    return fig


# Below this many configs, fANOVA's ranking moves with every new result: the chart says so.
ROUGH_IMPORTANCE_BELOW = 10


def importance_figure(importance: Importance | None, reason: str = "") -> go.Figure:
    """Each searched hyperparameter's share of the objective's variance (fANOVA) as horizontal bars, largest on
    top; with few configs a note says the ranking is rough. ``None`` draws only ``reason`` (why there is none
    yet, e.g. too few finished configs)."""
    if importance is None or not importance.importances:
        return _empty(reason or "No importance yet")
    ranked = sorted(importance.importances.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in ranked], y=[k for k, _ in ranked], orientation="h",
                           marker={"color": "#4c78a8"}, text=[f"{v:.0%}" for _, v in ranked], textposition="auto",
                           hovertemplate="%{y}: %{x:.1%} of the variance<extra></extra>"))
    method = {"fanova": "fANOVA"}.get(importance.method, importance.method)
    title = (f"Hyperparameter importance for {importance.metric} ({method}, "
             f"{importance.n_configs} configs)")
    fig.update_layout(title=title, xaxis_title="share of the variance", height=150 + 40 * len(ranked),
                      margin={"l": 120, "r": 20, "t": 60, "b": 50}, uirevision="keep")
    fig.update_xaxes(tickformat=".0%", range=[0, max(1.0, max(v for _, v in ranked))])
    if importance.n_configs < ROUGH_IMPORTANCE_BELOW:
        fig.add_annotation(text=f"only {importance.n_configs} finished configs: a rough ranking that may change "
                                "as more finish", xref="paper", yref="paper", x=1, y=1.0, xanchor="right",
                           yanchor="bottom", showarrow=False, font={"size": 11, "color": "#9a6700"}, name="note")
    return fig


def _axis_fit(values: list[float]) -> dict:
    """Axis settings for a scatter with few points: with one or two distinct values, a range padded around them
    (plotly's own runs 0-1.9 for one point at 1); always a tick format with as many decimals as the range's
    spread needs, never SI suffixes ("69.155k, 69.1555k")."""
    lo, hi = min(values), max(values)
    spread = hi - lo
    distinct = len(set(values))
    pad = (abs(lo) * 0.05 or 1.0) if spread == 0 else spread * (0.25 if distinct <= 2 else 0.08)
    low, high = lo - pad, hi + pad
    step = (high - low) / 10  # finer than plotly's own tick step on a tall axis: no two ticks read alike
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    fit: dict = {"tickformat": f",.{decimals}f"}
    if distinct <= 2:
        fit["range"] = [low, high]
    return fit


def objective_front(front: dict) -> tuple[go.Figure, go.Figure]:
    """A multi-objective workload's configs on its first two objectives (the Pareto set joined and marked), and the
    front's hypervolume after each epoch (one fixed reference point, so the values compare across epochs)."""
    metrics = [o["metric"] for o in front["objectives"]]
    points = front["points"]
    if not points:
        empty = _empty("No config has every objective measured yet")
        return empty, empty
    x_name, y_name = metrics[0], metrics[1]
    scatter = go.Figure()
    rest = [p for p in points if not p["on_front"]]
    best = sorted((p for p in points if p["on_front"]), key=lambda p: p["values"][x_name])
    scatter.add_trace(go.Scatter(x=[p["values"][x_name] for p in rest], y=[p["values"][y_name] for p in rest],
                                 mode="markers", name="dominated", marker={"color": "#bab0ac", "size": 9},
                                 text=[f"config {p['config_id']}" for p in rest]))
    scatter.add_trace(go.Scatter(x=[p["values"][x_name] for p in best], y=[p["values"][y_name] for p in best],
                                 mode="lines+markers", name="Pareto set", line={"shape": "hv", "color": "#e45756"},
                                 marker={"size": 11}, text=[f"config {p['config_id']}" for p in best]))
    scatter.update_layout(title=f"Pareto front: {x_name} vs {y_name}", xaxis_title=x_name, yaxis_title=y_name,
                          height=360, margin={"l": 70, "r": 20, "t": _legend_margin(2), "b": 40}, uirevision="keep",
                          legend=LEGEND_ABOVE)
    scatter.update_xaxes(**_axis_fit([p["values"][x_name] for p in points]))
    scatter.update_yaxes(**_axis_fit([p["values"][y_name] for p in points]))
    epochs = front["epochs"]
    volume = go.Figure(go.Scatter(x=[e["epoch"] for e in epochs], y=[e["hypervolume"] for e in epochs],
                                  mode="lines+markers", line={"color": "#54a24b"},
                                  text=[f"front: configs {', '.join(map(str, e['front']))}" for e in epochs]))
    volume.update_layout(title="Hypervolume of the front per epoch", xaxis_title="epoch", yaxis_title="hypervolume",
                         height=300, margin={"l": 60, "r": 20, "t": 50, "b": 40}, uirevision="keep")
    return scatter, volume
