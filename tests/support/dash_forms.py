"""Driving Dash callbacks as plain functions: the wizard's form, and reading what a callback shows."""

from __future__ import annotations

from dash import html

from hopper.webui import callbacks as cb

GRID = "lr: {type: choice, values: [0.01, 0.001]}\nunits: 32"


def text_of(component) -> str:  # noqa: ANN001
    """The visible text of a Dash component tree."""
    if component is None or isinstance(component, (str, int, float)):
        return "" if component is None else str(component)
    if isinstance(component, (list, tuple)):
        return "".join(text_of(c) for c in component)
    return text_of(getattr(component, "children", None))


def is_error(notice) -> bool:  # noqa: ANN001
    return isinstance(notice, html.Span) and notice.className == "error"


def launch(services, **overrides):  # noqa: ANN001, ANN201
    """The wizard's Launch with a small valid grid on digits, fields overridden by name."""
    form = {"name": "w", "description": "", "model": "mlp", "dataset": "digits", "procedure": "grid",
            "space": GRID, "epochs": 2, "configs": None, "metric": "val_accuracy", "direction": "max", **overrides}
    return cb.launch_workload(services, *form.values())
