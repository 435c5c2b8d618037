"""Plotly figures built from services' plain objects (no TensorFlow, no store access)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import plotly.graph_objects as go

if TYPE_CHECKING:
    from hopper.engine.entities import ParetoFront

_PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
            "#bab0ac"]


def colour(config_id: int) -> str:
    """A stable colour per config, so a config looks the same in every chart."""
    return _PALETTE[config_id % len(_PALETTE)]


def empty(message: str) -> go.Figure:
    """A figure that only says why there is nothing to draw yet."""
    return _empty(message)


def _empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font={"size": 14, "color": "#888"})
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=320,
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
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title=metric, height=360,
                      margin={"l": 50, "r": 20, "t": 50, "b": 40}, uirevision="keep", legend={"orientation": "h"})
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
    fig = px.timeline(frame, x_start="start", x_end="finish", y="worker", color="config", hover_data=["detail"],
                      color_discrete_map=colours)
    fig.update_layout(title="Sub-epochs per worker", height=300, margin={"l": 80, "r": 20, "t": 50, "b": 40},
                      uirevision="keep", legend={"orientation": "h"})
    fig.update_yaxes(categoryorder="category ascending")
    return fig


def parallel_coordinates(configs: list[dict], metric: str, direction: str) -> go.Figure:
    """Hyperparameters against the objective, one line per config with a value."""
    scored = [c for c in configs if metric in c["latest_metrics"]]
    if not scored:
        return _empty(f"No {metric} yet")
    names = sorted({k for c in scored for k in c["hparams"]})
    dimensions = []
    for name in names:
        values = [c["hparams"].get(name) for c in scored]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            dimensions.append({"label": name, "values": values})
        else:
            labels = sorted({str(v) for v in values})
            dimensions.append({"label": name, "values": [labels.index(str(v)) for v in values],
                               "tickvals": list(range(len(labels))), "ticktext": labels})
    varying = [dim for dim in dimensions if len({str(v) for v in dim["values"]}) > 1]
    dimensions = varying or dimensions[:1]  # a fixed hyperparameter is one flat line: leave it out
    values = [c["latest_metrics"][metric] for c in scored]
    dimensions.append({"label": metric, "values": values})
    fig = go.Figure(go.Parcoords(line={"color": values, "colorscale": "Viridis",
                                       "reversescale": direction == "min", "showscale": True},
                                 dimensions=dimensions))
    fig.update_layout(title={"text": f"Hyperparameters vs {metric}", "y": 0.97}, height=360,
                      margin={"l": 60, "r": 60, "t": 90, "b": 30},
                      uirevision="keep")
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
                      height=460, margin={"l": 60, "r": 20, "t": 30, "b": 50}, uirevision="keep",
                      legend={"orientation": "h", "y": 1.08})
    return fig


def importance_bars(importances: dict[str, float], metric: str) -> go.Figure:
    """fANOVA importance of each searched hyperparameter, largest on top."""
    if not importances:
        return _empty("No importance yet")
    ranked = sorted(importances.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in ranked], y=[k for k, _ in ranked], orientation="h",
                           marker={"color": "#4c78a8"}, text=[f"{v:.0%}" for _, v in ranked], textposition="auto"))
    fig.update_layout(title=f"Hyperparameter importance for {metric} (fANOVA)", xaxis_title="share of the variance",
                      height=120 + 40 * len(ranked), margin={"l": 120, "r": 20, "t": 50, "b": 40}, uirevision="keep")
    return fig


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
                          height=360, margin={"l": 60, "r": 20, "t": 50, "b": 40}, uirevision="keep")
    epochs = front["epochs"]
    volume = go.Figure(go.Scatter(x=[e["epoch"] for e in epochs], y=[e["hypervolume"] for e in epochs],
                                  mode="lines+markers", line={"color": "#54a24b"},
                                  text=[f"front: configs {', '.join(map(str, e['front']))}" for e in epochs]))
    volume.update_layout(title="Hypervolume of the front per epoch", xaxis_title="epoch", yaxis_title="hypervolume",
                         height=300, margin={"l": 60, "r": 20, "t": 50, "b": 40}, uirevision="keep")
    return scatter, volume
