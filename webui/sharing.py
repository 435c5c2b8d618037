"""The workload view's sharing card: pause, resume and stop the whole workload, its fair-share weight, and its
budget (spend, remaining, ETA). Layout and callbacks as plain functions, like ``layout`` and ``callbacks``;
``register`` wires them (called from ``callbacks.register_callbacks``)."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from hopper.engine.errors import HopperError, ValidationError
from hopper.engine.services import Services
from hopper.engine.status import WorkloadStatus
from hopper.rest.gate import require_editor

ACTOR = "web"
_ACTIONS = {"wl-pause": "pause_workload", "wl-resume": "resume_workload", "wl-stop": "stop_workload"}


def controls_card(workload: Any) -> html.Div:
    """Buttons for the whole workload, its weight box, and the budget line the tick refreshes."""
    return html.Div([
        html.H3("Whole workload"),
        html.Div([html.Button("Pause", id="wl-pause", className="button"),
                  html.Button("Resume", id="wl-resume", className="button"),
                  html.Button("Stop", id="wl-stop", className="button"),
                  dcc.Input(id="wl-weight", type="number", min=0, value=workload.weight, step="any",
                            className="input narrow"),
                  html.Button("Set weight", id="wl-set-weight", className="button")], className="row"),
        html.Div(id="wl-notice", className="notice"),
        html.Div(id="wl-budget", className="summary"),
    ], className="card", id="wl-controls")


def _notice(message: str, kind: str) -> html.Span:
    return html.Span(message, className=kind)


def workload_action(services: Services, triggered: str | None, workload_id: int, weight: Any) -> html.Span:
    """Pause, resume or stop the workload, or set its weight (``triggered``: the button's id)."""
    try:
        if triggered == "wl-set-weight":
            if weight in (None, "") or isinstance(weight, bool):
                raise ValidationError("type a weight above 0", field="weight")
            info = services.set_workload_weight(workload_id, float(weight), actor=require_editor(ACTOR))
            return _notice(f"workload {workload_id}: weight {info.weight:g} (from the next free worker)", "ok")
        info = getattr(services, _ACTIONS[triggered])(workload_id, actor=require_editor(ACTOR))
        status = WorkloadStatus(info.status)
        after = " (running sub-epochs finish and commit)" if status != WorkloadStatus.RUNNING else ""
        return _notice(f"workload {workload_id}: {status.label}{after}", "ok")
    except (HopperError, ValueError, KeyError) as exc:
        if isinstance(exc, HopperError):
            where = f" [{exc.field}]" if exc.field else ""
            return _notice(f"Error{where}: {exc.message}", "error")
        return _notice(f"Error [weight]: {exc}", "error")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown until a sub-epoch finished"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def budget_text(services: Services, workload_id: int) -> str:
    """One line: status, weight, spend against each limit, and the ETA."""
    budget = services.workload_budget(workload_id)
    parts = [f"{WorkloadStatus(budget.status).label} · weight {budget.weight:g} "
             f"(~{budget.worker_share:.2g} workers)"]
    spends = {"wall_seconds": ("wall time", budget.wall_seconds, _duration),
              "worker_seconds": ("worker time", budget.worker_seconds, _duration),
              "money": ("money", budget.money, lambda v: f"{v:.2f}")}
    for name, (label, spent, show) in spends.items():
        limit = budget.limits.get(name)
        if limit is None:
            if name == "worker_seconds":
                parts.append(f"{label} {show(spent)} (no limit)")
            continue
        parts.append(f"{label} {show(spent or 0.0)} of {show(limit)}, {show(budget.remaining[name])} left")
    if budget.spent:
        parts.append("budget spent")
    else:
        parts.append(f"{budget.sub_epochs_left} sub-epochs left, ETA {_duration(budget.eta_seconds)}")
    return " · ".join(parts)


def register(app: Dash, services: Services) -> None:
    """Wire the card's callbacks."""
    app.callback(Output("wl-notice", "children"), Input("wl-pause", "n_clicks"), Input("wl-resume", "n_clicks"),
                 Input("wl-stop", "n_clicks"), Input("wl-set-weight", "n_clicks"), State("wl-id", "data"),
                 State("wl-weight", "value"), prevent_initial_call=True)(
        lambda pauses, resumes, stops, weights, workload_id, weight:
        workload_action(services, ctx.triggered_id, workload_id, weight)
        if (pauses or resumes or stops or weights) else no_update)
    app.callback(Output("wl-budget", "children"), Input("tick", "n_intervals"), Input("wl-id", "data"))(
        lambda _n, workload_id: budget_text(services, workload_id))
