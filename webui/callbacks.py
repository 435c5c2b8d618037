"""Dash callbacks as plain module-level functions, and the one place that wires them to the app.

Each function takes the callback's inputs (and, where it acts, a ``Services`` handle and the id of the
button that fired) and returns the outputs: a table's rows, a figure, a notice. They hold no business
logic: each makes one services call and shows the result, or the error as a notice, so that bad input
changes nothing. Being plain functions, tests call them directly against a real store
(tests/unit/test_webui_callbacks.py); ``register_callbacks`` is the only code that knows Dash's wiring.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import yaml
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update

from hopper.engine.errors import HopperError, NotFound, ValidationError
from hopper.engine.procedure_guide import guide, options_from_fields
from hopper.engine.services import Services
from hopper.engine.specs import parse_mapping_text as parse_mapping
from hopper.engine.status import (
    ConfigStatus,
    DeviceStatus,
    SuggestionStatus,
    WorkloadStatus,
    config_activity_label,
    workload_label,
)
from hopper.rest.gate import require_editor
from hopper.webui import data_page, figures, layout, schedules_page, sharing

ACTOR = "web"  # who the audit log names for UI changes made outside a request (unit tests)
# The wizard's privacy inputs, in privacy_options()'s order.
PRIVACY_STATES = [State(f"wiz-{name}", "value") for name in
                  ("private", "dp-clip", "dp-mode", "dp-value", "dp-delta", "dp-micro")]


def ok(message: str) -> html.Span:
    """A success notice (green in the stylesheet)."""
    return html.Span(message, className="ok")


def error(exc: Exception) -> html.Span:
    """An error notice naming the field at fault, so the person knows which box to fix."""
    if isinstance(exc, HopperError):
        where = f" [{exc.field}]" if exc.field else ""
        return html.Span(f"Error{where}: {exc.message}", className="error")
    return html.Span(f"Error: {exc}", className="error")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _metric_cell(value: Any) -> float | None:
    """A metric as the tables hold it: a float (None when missing or not finite)."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _when(value: datetime | None) -> str:
    """A timestamp to the second, as the tables show it ("" for none)."""
    return value.isoformat()[:19] if value is not None else ""


def _md(text: str) -> str:
    return "".join("\\" + ch if ch in "[]()*_`\\" else ch for ch in text)


def _selected(selected: list | None) -> int:
    if not selected:
        raise ValidationError("select a config in the table first", field="config")
    return int(selected[0])


def _number(value: Any, kind: type, field: str) -> Any:
    """A typed number from an input box; empty or not a number is a ValidationError naming the box."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValidationError(f"enter a value for {field}", field=field)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} must be a number, not {value!r}", field=field) from None
    if kind is int and isinstance(value, float) and value != number:
        raise ValidationError(f"{field} must be a whole number, not {value}", field=field)
    return number


# -- pages ------------------------------------------------------------------------------------------------
def route_page(services: Services, tensorboard_url: Callable[[], str | None], pathname: str | None,
               search: str | None = None) -> Any:
    """The page for a URL: the workloads list, a workload, its Pareto front, devices, events or TensorBoard."""
    path = (pathname or "/").rstrip("/") or "/"
    view = layout.view_from_query({k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items()})
    if path == "/":
        return layout.workloads_page(services.list_datasets(), services.list_scripts(valid_only=True),
                                     open_wizard=not services.list_workloads(), sort_by=view.get("sort_by"))
    if path == "/events":
        return layout.events_page()
    if path == "/devices":
        return layout.devices_page()
    if path == "/schedules":
        return schedules_page.schedules_page()
    if path == "/data":
        return data_page.data_page(services.list_datasets())
    if path == "/tensorboard":
        return layout.tensorboard_page(tensorboard_url())
    parts = path.split("/")
    if len(parts) == 4 and parts[1] == "workloads" and parts[2].isdigit() and parts[3] == "pareto":
        query = {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items()}
        try:
            workload = services.get_workload(int(parts[2]))
        except NotFound as exc:
            return layout.not_found(exc.message)
        return layout.pareto_page(workload, device=query.get("device"),
                                  x=query.get("x") if query.get("x") in ("latency", "bytes") else "latency")
    if path == "/compare":
        query = {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items()}
        return compare_configs(services, query.get("configs", ""))
    if len(parts) == 3 and parts[1] == "configs" and parts[2].isdigit():
        return config_page(services, int(parts[2]))
    if len(parts) == 3 and parts[1] == "workloads" and parts[2].isdigit():
        try:
            workload = services.get_workload(int(parts[2]))
        except NotFound as exc:
            return layout.not_found(exc.message)
        parent = services.get_workload(workload.parent_workload_id) if workload.parent_workload_id else None
        return layout.detail_page(workload, parent, view)
    return layout.not_found(f"There is no page at {path}.")


def config_page(services: Services, config_id: int) -> Any:
    """The page of one config (reads only; steering stays on its workload's page)."""
    try:
        config = services.get_config(config_id)
    except NotFound as exc:
        return layout.not_found(exc.message)
    workload = services.get_workload(config.workload_id)
    decisions = services.list_decisions(workload.id)
    pbt = next((d.source_config_id for d in decisions if d.kind == "exploit" and d.result_config_id == config_id), None)
    return layout.config_page(
        config, workload, latest_checkpoint=services.latest_checkpoint(config_id), pbt_source=pbt,
        clones=[c.id for c in services.list_configs(workload.id) if c.cloned_from_config_id == config_id],
        exports=services.list_exports(config_id), events=services.list_events(object_type="config",
                                                                             object_id=config_id),
        notes=services.list_notes("config", config_id))


def compare_configs(services: Services, ids_text: str) -> Any:
    """The comparison page of ``configs=1,2,3`` (two or more configs of one workload), or why not."""
    try:
        ids = [int(i) for i in ids_text.split(",") if i.strip()]
    except ValueError:
        return layout.not_found(f"configs={ids_text!r}: give config ids separated by commas")
    if len(set(ids)) < 2:
        return layout.not_found("pick two or more configs to compare")
    try:
        configs = [services.get_config(i) for i in dict.fromkeys(ids)]
    except NotFound as exc:
        return layout.not_found(exc.message)
    if len({c.workload_id for c in configs}) > 1:
        return layout.not_found("the configs to compare belong to different workloads")
    workload = services.get_workload(configs[0].workload_id)
    metric = workload.objectives[0]["metric"]
    series = {c.id: [(m["epoch"], m["value"]) for m in c.metrics if m["name"] == metric] for c in configs}
    return layout.compare_page(workload, configs, metric, figures.learning_curves(series, metric))


def compare_link(picked: list | None) -> tuple[str, dict]:
    """The comparison page's address for the picked configs (the link is inert until two are picked)."""
    if not picked or len(picked) < 2:
        return "", {"pointerEvents": "none", "opacity": 0.5}
    return "/compare?configs=" + ",".join(str(int(p)) for p in picked), {}


# -- workloads page ---------------------------------------------------------------------------------------
def _progress_text(progress: Any, activity: dict[str, int]) -> str:
    """"7/12 epochs · 2 training now · 3 waiting for a worker": how far, and what the configs do right now."""
    now = [f"{activity[label]} {label}" for label in ("training now", "waiting for a worker", "queued", "paused")
           if activity.get(label)]
    return " · ".join([f"{progress.epochs_done}/{progress.epochs_planned} epochs", *now])


def _activity_counts(workload: Any, progress: Any) -> dict[str, int]:
    """How many configs do what now (status.config_activity_label's words), from the stored counts."""
    counts = {ConfigStatus(status): n for status, n in workload.config_counts.items()}
    training = len(progress.training_now)  # only started (running) configs have a sub-epoch on a worker
    paused = workload.status == WorkloadStatus.PAUSED
    out: dict[str, int] = {"training now": training} if training else {}
    for status, n in counts.items():
        n -= training if status == ConfigStatus.RUNNING else 0
        if n > 0:
            label = config_activity_label(status, training_now=False, workload_paused=paused)
            out[label] = out.get(label, 0) + n
    return out


def workload_rows(services: Services) -> list[dict]:
    """The workloads table, newest first: a link, status, progress in epochs and the best result of each."""
    progress = services.workload_progress()
    rows = []
    for w in sorted(services.list_workloads(), key=lambda w: w.id, reverse=True):
        best = f"{w.best['metric']} {w.best['value']:.4f} (config {w.best['config_id']})" if w.best else ""
        rows.append({"id": w.id, "link": f"[{_md(w.name)}](/workloads/{w.id})", "status": workload_label(w.status),
                     "procedure": w.procedure, "model_ref": w.model_ref,
                     "progress": _progress_text(progress[w.id], _activity_counts(w, progress[w.id])), "best": best,
                     # The first line: a workload whose every config failed says the error they share.
                     "error": (w.error or "").strip().split("\n")[0][:300]})
    return rows


def add_space_row(name: str | None, kind: str | None, values: str | None, text: str | None) -> Any:
    """The wizard's space text with one more parameter line (``no_update`` while the row is incomplete)."""
    if not name or values in (None, ""):
        return no_update
    items = [yaml.safe_load(v.strip()) for v in str(values).split(",") if v.strip()]
    if kind == "choice":
        entry: Any = {"type": "choice", "values": items}
    elif kind == "fixed":
        entry = items[0] if items else None
    else:
        entry = {"type": kind, "low": items[0], "high": items[1] if len(items) > 1 else items[0]}
        if len(items) > 2:
            entry["step"] = items[2]
    line = f"{name}: {json.dumps(entry)}"
    return ((text or "").rstrip("\n") + "\n" + line + "\n").lstrip("\n")


def validate_space(services: Services, text: str | None, procedure: str | None, model: str | None) -> html.Span:
    """Live feedback under the space box: the launch's own space check (services.check_space), so the two never
    disagree: how many grid points or parameters, or what is wrong."""
    try:
        return ok("valid: " + services.check_space(parse_mapping(text, "space"), model=model or "mlp",
                                                   procedure=procedure or "grid"))
    except HopperError as exc:
        return error(exc)


def privacy_options(enabled: list | None, clip: float | None, mode: str | None, value: float | None,
                    delta: float | None, microbatches: int | None) -> dict | None:
    """The wizard's privacy inputs as a spec's ``privacy`` section (None when private training is off).

    Empty boxes are left out, so the spec's own validation names what is missing.
    """
    if not enabled or "dp" not in enabled:
        return None
    options: dict[str, Any] = {"l2_norm_clip": clip, "delta": delta, "microbatches": microbatches}
    options[mode or "target_epsilon"] = value
    return {k: v for k, v in options.items() if v not in (None, "")}


def privacy_feedback(services: Services, enabled: list | None, clip: float | None, mode: str | None,
                     value: float | None, delta: float | None, microbatches: int | None,
                     dataset: str | None) -> html.Span | str:
    """Live feedback under the privacy inputs: what is wrong, or what a launch would warn about."""
    options = privacy_options(enabled, clip, mode, value, delta, microbatches)
    if options is None:
        return ""
    try:
        warnings = services.check_privacy(options, dataset or None)
    except HopperError as exc:
        return error(exc)
    if warnings:
        return html.Span("warning: " + "; ".join(warnings), className="warn")
    noise = (f"epsilon at most {options['target_epsilon']:g}" if "target_epsilon" in options
             else f"noise multiplier {options.get('noise_multiplier', 0):g}")
    return ok(f"valid: DP-SGD with clip {options.get('l2_norm_clip', 1.0):g}, {noise}, "
              f"delta {options.get('delta', 1e-5):g}")


def wizard_options(ids: list | None, values: list | None) -> dict:
    """The wizard's procedure option fields (pattern ids and their values) as ``procedure_options``."""
    return options_from_fields({i["name"]: v for i, v in zip(ids or [], values or [], strict=False)})


def procedure_feedback(services: Services, procedure: str | None, ids: list | None, values: list | None,
                       space: str | None, epochs: Any, configs: Any) -> html.Span:
    """Live feedback under the procedure's option fields: what the search will do, or which option is wrong."""
    chosen = guide(procedure or "")
    try:
        if chosen is None:
            raise ValidationError(f"unknown procedure {procedure!r}", field="procedure")
        text = services.check_procedure(
            chosen.name, wizard_options(ids, values), space=parse_mapping(space, "space"),
            max_epochs=_number(epochs, int, "max_epochs") if epochs not in (None, "") else None,
            max_configs=(_number(configs, int, "max_configs") if chosen.needs_budget and configs not in (None, "")
                         else None),
            objectives=[{"metric": "objective", "direction": "max"}] * (2 if chosen.multi_objective else 1))
    except HopperError as exc:
        return error(exc)
    notes = " · needs two or more objectives" if chosen.multi_objective else ""
    return ok(f"valid: {text}{notes}")


# The wizard's error lines (``wiz-error-<slot>``, each under its box) and which spec fields land in each.
WIZARD_ERROR_SLOTS = ("name", "model", "dataset", "procedure", "epochs", "configs", "metric", "privacy", "space",
                      "entry", "plan")
_WIZARD_SLOT_OF = {"name": "name", "description": "name", "model": "model", "script": "model", "dataset": "dataset",
                   "procedure": "procedure", "procedure_options": "procedure", "advisor": "procedure",
                   "max_epochs": "epochs", "max_configs": "configs", "objectives": "metric", "privacy": "privacy",
                   "space": "space", "entry_args": "entry", "bind_globals": "entry", "entry options": "entry",
                   "plan": "plan"}


def _wizard_spec(name: str | None, description: str | None, model: str | None,  # noqa: PLR0913
                 dataset: str | None, procedure: str | None, space: str | None, epochs: int | None,
                 configs: int | None, metric: str | None, direction: str | None,
                 privacy: dict | None = None, procedure_options: dict | None = None,
                 advisor: bool = False, entry_options: str | None = None,
                 plan: str | None = None) -> tuple[dict[str, Any], list[HopperError]]:
    """The wizard's boxes as a workload spec, and what could not be read (each text box on its own, so a typo in
    the space and one in the entry options are both reported)."""
    problems: list[HopperError] = []
    try:
        space_map = parse_mapping(space, "space") or None
    except HopperError as exc:
        problems.append(exc)
        space_map = None
    spec: dict[str, Any] = {
        "name": name or "", "description": description or "", "dataset": dataset or "",
        "procedure": procedure, "space": space_map,
        "objectives": [{"metric": metric or "", "direction": direction}], "max_epochs": epochs or 0,
        "procedure_options": procedure_options or {}, "advisor": bool(advisor),
    }
    if privacy is not None:
        spec["privacy"] = privacy
    if plan:  # none chosen: the deployment's default_plan
        spec["plan"] = plan
    try:
        spec.update(parse_mapping(entry_options, "entry options"))
    except HopperError as exc:
        problems.append(exc)
    chosen = guide(procedure or "")
    if (chosen is not None and chosen.needs_budget) or (procedure == "grid" and configs and configs < 1):
        spec["max_configs"] = configs
    if model and model.startswith("script:"):
        try:
            spec["script"] = _number(model.split(":", 1)[1], int, "model")
        except HopperError as exc:
            problems.append(exc)
    else:
        spec["model"] = model
    return spec, problems


def launch_workload(services: Services, name: str | None, description: str | None, model: str | None,  # noqa: PLR0913
                    dataset: str | None, procedure: str | None, space: str | None, epochs: int | None,
                    configs: int | None, metric: str | None, direction: str | None,
                    privacy: dict | None = None, procedure_options: dict | None = None,
                    advisor: bool = False, entry_options: str | None = None,
                    plan: str | None = None) -> tuple[Any, Any]:
    """Launch a workload from the wizard: (notice, the new workload's path) or (error notice, no_update).

    ``privacy`` is :func:`privacy_options` of the wizard's privacy inputs, ``procedure_options``
    :func:`wizard_options` of its procedure fields; ``entry_options`` the YAML of a script's ``entry_args`` /
    ``bind_globals`` (validated with the rest of the spec).
    """
    spec, problems = _wizard_spec(name, description, model, dataset, procedure, space, epochs, configs, metric,
                                  direction, privacy, procedure_options, advisor, entry_options, plan)
    try:
        if problems:
            raise problems[0]
        workload = services.launch_workload(spec, actor=require_editor(ACTOR))
    except HopperError as exc:
        return error(exc), no_update
    notice = ok(f"workload {workload.id} launched")
    if workload.warnings:
        notice = html.Span([notice, html.Span(" warning: " + "; ".join(workload.warnings), className="warn")])
    return notice, f"/workloads/{workload.id}"


def wizard_launch(services: Services, *form: Any) -> tuple:
    """The Launch button: every problem the wizard can tell apart at once, each on the error line under its box
    (:data:`WIZARD_ERROR_SLOTS`), the first also in the notice; or the launch (:func:`launch_workload`'s notice and
    path) with the error lines cleared. ``form`` is :func:`launch_workload`'s arguments after ``services``."""
    spec, problems = _wizard_spec(*form)
    slot_of = [_WIZARD_SLOT_OF.get((p.field or "").split(".")[0]) for p in problems]
    for extra in services.launch_problems(spec):
        slot = _WIZARD_SLOT_OF.get((extra.field or "").split(".")[0])
        if slot is None or slot not in slot_of:  # a box that did not parse is not checked again
            problems.append(extra)
            slot_of.append(slot)
    if not problems:
        notice, path = launch_workload(services, *form)
        return (notice, path, *[None] * len(WIZARD_ERROR_SLOTS))
    lines: dict[str, list[str]] = {}
    for problem, slot in zip(problems, slot_of, strict=True):
        if slot is not None:
            lines.setdefault(slot, []).append(data_page.under_box(problem))
    notice = error(problems[0])
    if len(problems) > 1:
        notice = html.Span([notice, html.Span(f" ({len(problems)} problems, each shown under its box)",
                                              className="error")])
    return (notice, no_update, *[html.Span("; ".join(lines[s]), className="error") if s in lines else None
                                 for s in WIZARD_ERROR_SLOTS])


def register_dataset(services: Services, name: str | None, path: str | None, features: str | None,
                     label: str | None) -> html.Span:
    """Register a dataset from the form; the notice says how it was partitioned."""
    try:
        info = services.register_dataset({
            "name": name or "", "path": path or "", "label_column": label or None,
            "feature_columns": [f.strip() for f in features.split(",")] if features else None}, actor=require_editor(ACTOR))
    except HopperError as exc:
        return error(exc)
    return ok(f"dataset {info.name}: {info.n_rows} rows, {info.partition_count} partitions "
              "(reload to pick it in the wizard)")


# -- workload detail --------------------------------------------------------------------------------------
def workload_detail(services: Services, workload_id: int) -> tuple[list[dict], str, Any, Any, list]:
    """The detail page's live parts: config rows, the summary line, Gantt chart, parallel coordinates, links."""
    workload = services.get_workload(workload_id)
    configs = [c.to_dict() for c in services.list_configs(workload_id)]
    metric = workload.objectives[0]["metric"]
    progress = services.workload_progress([workload_id])[workload_id]
    paused = workload.status == WorkloadStatus.PAUSED
    rows = [{"id": c["id"], "page": f"[open](/configs/{c['id']})", "priority": c["priority"],
             "status": config_activity_label(c["status"], training_now=c["id"] in progress.training_now,
                                             workload_paused=paused),
             "epochs_done": c["epochs_done"],
             "origin": c["origin"], "version": c["version"],
             "hparams_text": ", ".join(f"{k}={_fmt(v)}" for k, v in c["hparams"].items()),
             # Numbers, not text: the table sorts them and filters them with "> 0.9" (layout.NUMBER formats them).
             "objective": _metric_cell(c["latest_metrics"].get(metric)),
             "val_loss": _metric_cell(c["latest_metrics"].get("val_loss")),
             # The privacy spent so far (DP-SGD workloads only), per epoch in the curves.
             "epsilon": _metric_cell(c["latest_metrics"].get("epsilon"))} for c in configs]
    best = (f"best {metric} (any epoch) {workload.best['value']:.4f} (config {workload.best['config_id']})"
            if workload.best else "no results yet")
    summary = (f"{workload_label(workload.status)} · {workload.procedure} · model {workload.model_ref} · "
               f"{workload.max_epochs} epoch{'s' if workload.max_epochs != 1 else ''} per config · "
               f"{_progress_text(progress, _activity_counts(workload, progress)) if configs else 'no configs yet'}"
               f" · {best}")
    if workload.privacy:
        p = workload.privacy
        budget = (f"target epsilon {p['target_epsilon']:g}" if p.get("target_epsilon") is not None
                  else f"noise multiplier {p['noise_multiplier']:g}")
        summary += f" · DP-SGD ({budget}, delta {p['delta']:g})"
        summary += "".join(f" · warning: {w}" for w in workload.warnings)
    summary += f" · plan {_plan_text(workload)}"
    children = services.child_workloads(workload_id)
    links = [html.Span("Drill-downs: ")] + [html.A(f"{name} ", href=f"/workloads/{child_id}",
                                                   className="child-link") for child_id, name in children] \
        if children else []
    sub_epochs = [s.to_dict() for s in services.list_sub_epochs(workload_id, limit=5000)]
    return (rows, summary, figures.gantt(sub_epochs),
            figures.parallel_coordinates(configs, metric, workload.objectives[0]["direction"],
                                         figures.log_scale_params(workload.search_space)), links)


def filter_from_chart_selection(selected: dict | None, current: str | None) -> Any:
    """The config table's filter for a range dragged on the parallel-coordinates chart: the configs whose lines
    it crosses (``{id} = 3 or {id} = 7``). Clearing the selection (a double click) clears only a filter the chart
    set, never one the person typed."""
    ids = sorted({int(p["customdata"]) for p in (selected or {}).get("points", []) if p.get("customdata") is not None})
    if ids:
        return " or ".join(f"{{id}} = {i}" for i in ids)
    return "" if current and re.fullmatch(r"\{id\} = \d+( or \{id\} = \d+)*", current) else no_update


def _plan_text(workload: Any) -> str:
    """The execution plan the scheduler chose and why, or what was asked while nothing is chosen yet."""
    if workload.plan_choice:
        return str(workload.plan_choice.get("reason") or workload.plan_choice.get("plan"))
    if workload.plan == "auto":
        return "auto (chosen when the scheduler first dispatches its configs)"
    return f"{workload.plan} (as asked; applied when the scheduler first dispatches its configs)"


def search_plots(services: Services, workload_id: int) -> tuple[Any, Any]:
    """The optimisation history (each config's objective in launch order, best so far) and the slice plots
    (objective against each hyperparameter) of a workload's primary objective."""
    workload = services.get_workload(workload_id)
    configs = [c.to_dict() for c in services.list_configs(workload_id)]
    objective = workload.objectives[0]
    return (figures.optimisation_history(configs, objective["metric"], objective["direction"]),
            figures.slice_plots(configs, objective["metric"], figures.log_scale_params(workload.search_space)))


def learning_curves(services: Services, workload_id: int, metric: str, selected: list | None,
                    only_selected: list | None = None) -> Any:
    """Learning curves of ``metric`` for every config, the selected ones highlighted; only the selected ones when
    the person ticks "only the selected" (``only_selected``), never silently."""
    metrics = services.workload_metrics(workload_id, metric)
    series = {cid: [(m["epoch"], m["value"]) for m in rows] for cid, rows in metrics.items()}
    chosen = {int(c) for c in selected or []}
    if chosen and only_selected:
        series = {cid: pts for cid, pts in series.items() if cid in chosen}
    return figures.learning_curves(series, metric, highlight=chosen)


def select_from_view(rows: list[dict] | None, config_id: int | None) -> tuple[Any, Any, Any]:
    """Select the config the address names once the table has rows: (selected_rows, selected_row_ids, view-config
    store); the table derives neither from the other when a callback sets it. The store is emptied after, so the
    person's own selections are never overridden by the next refresh."""
    if config_id is None or not rows:
        return no_update, no_update, no_update
    index = next((i for i, r in enumerate(rows) if r["id"] == config_id), None)
    if index is None:
        return no_update, no_update, None
    return [index], [config_id], None


def detail_view_query(sort_by: list | None, metric: str | None, selected: list | None) -> str:
    """The detail page's view state as the address's query (kept on reload and in shared links)."""
    return layout.view_query(sort_by, config=(selected or [None])[0], metric=metric)


def clear_selection() -> tuple[list, list]:
    """No config selected: the curves show every config alike again."""
    return [], []


def config_action(services: Services, triggered: str | None, selected: list | None, priority: Any) -> html.Span:
    """Stop, resume or re-prioritise the selected config (``triggered``: btn-stop, btn-resume or btn-prio)."""
    try:
        config_id = _selected(selected)
        if triggered == "btn-stop":
            info = services.stop_config(config_id, actor=require_editor(ACTOR))
            return ok(f"config {config_id}: {info.status} (takes effect after its running sub-epoch)")
        if triggered == "btn-resume":
            info = services.resume_config(config_id, actor=require_editor(ACTOR))
            return ok(f"config {config_id}: {info.status}, continues after epoch {info.epochs_done}")
        # an empty box is a mistake, not "priority 0"
        info = services.set_priority(config_id, _number(priority, int, "priority"), actor=require_editor(ACTOR))
        return ok(f"config {config_id}: priority {info.priority}")
    except HopperError as exc:
        return error(exc)


def clone_config(services: Services, selected: list | None, lr: Any, batch_size: Any, extra: str | None) -> html.Span:
    """Clone the selected config with its weights and the overrides typed in the boxes."""
    try:
        config_id = _selected(selected)
        overrides = parse_mapping(extra, "overrides")
        if lr not in (None, ""):
            overrides["lr"] = _number(lr, float, "lr")
        if batch_size not in (None, ""):
            overrides["batch_size"] = _number(batch_size, int, "batch_size")
        info = services.clone_config(config_id, overrides, actor=require_editor(ACTOR))
    except HopperError as exc:
        return error(exc)
    return ok(f"config {info.id} cloned from {config_id} with its weights"
              + (f" ({', '.join(f'{k}={v}' for k, v in overrides.items())})" if overrides else ""))


def edge_action(services: Services, triggered: str | None, selected: list | None, profile: list | None) -> html.Span:
    """Request an export or a deployment of the selected config; both are rows for the export worker."""
    try:
        config_id = _selected(selected)
        if triggered == "btn-export":
            request = services.request_export(config_id, profile="profile" in (profile or []), actor=require_editor(ACTOR))
            text = (f"export request {request.id} for config {config_id} queued (float32 + int8); "
                    "the exports appear on the Pareto page (size axis) once converted")
            if request.profile:
                online = any(d.status == DeviceStatus.ONLINE for d in services.list_devices())
                text += (", and on the latency axis once profiled by the online edge devices" if online else
                         "; no edge device is online, so nothing will profile them: start `hopper edge-agent`")
            return ok(text)
        row = services.request_deployment(config_id, actor=require_editor(ACTOR))
    except HopperError as exc:
        return error(exc)
    return html.Span([f"deployment {row.id} ({row.name}) requested: the export worker starts the model server; "
                      "its URL appears on the ", dcc.Link("Devices page", href="/devices", id="deploy-devices-link"),
                      " (Deployments), answering POST <url>:predict"], className="ok")


def add_config(services: Services, workload_id: int, text: str | None) -> html.Span:
    """Queue a hand-written config (hparams as YAML/JSON) in the workload."""
    try:
        info = services.add_config(workload_id, parse_mapping(text, "hparams"), actor=require_editor(ACTOR))
    except HopperError as exc:
        return error(exc)
    return ok(f"config {info.id} queued")


def drill_down(services: Services, selected: list | None, space: str | None, procedure: str | None,
               epochs: Any, configs: Any = None) -> html.Span:
    """Launch a child workload around the selected config on the refined space; links to it. ``configs`` is the
    budget of a random or TPE drill-down (grid tries every point)."""
    try:
        config_id = _selected(selected)
        max_epochs = _number(epochs, int, "max_epochs") if epochs not in (None, "") else None
        max_configs = _number(configs, int, "max_configs") if procedure != "grid" else None
        child = services.drill_down(config_id, parse_mapping(space, "space"), procedure=procedure,
                                    max_configs=max_configs, max_epochs=max_epochs, actor=require_editor(ACTOR))
    except HopperError as exc:
        return error(exc)
    return html.Span(["child workload ", html.A(f"{child.id}: {child.name}", href=f"/workloads/{child.id}",
                                                id="child-link"), " launched"], className="ok")


def notes_list(services: Services, workload_id: int, selected: list | None) -> list:
    """The workload's notes, then the selected config's, oldest first in each."""
    notes = services.list_notes("workload", workload_id)
    if selected:
        notes += services.list_notes("config", int(selected[0]))
    if not notes:
        return [html.P("No notes yet.", className="hint")]
    return [layout.note_item(n) for n in notes]


def add_note(services: Services, workload_id: int, about: str | None, selected: list | None,
             text: str | None) -> html.Span:
    """Keep a note on the workload or on the selected config (audited with its text)."""
    try:
        if about == "config":
            info = services.add_note("config", _selected(selected), text or "", actor=require_editor(ACTOR))
        else:
            info = services.add_note("workload", workload_id, text or "", actor=require_editor(ACTOR))
    except HopperError as exc:
        return error(exc)
    return ok(f"note {info.id} added to {info.object_type} {info.object_id}")


# -- edge: devices, deployments and the Pareto front -------------------------------------------------------
def device_tables(services: Services) -> tuple[list[dict], list[dict], list[dict], list[dict]]:
    """The devices page's four tables: devices, profiles, profiling jobs, deployments."""
    profiles = services.list_profiles(limit=500)
    devices = []
    for d in services.list_devices():
        hw = d.hardware
        memory = hw.get("memory_bytes")
        devices.append({"id": d.id, "name": d.name, "status": d.status, "interpreter":
                        f"{d.interpreter} {hw.get('interpreter_version') or ''}".strip(),
                        "cpu": hw.get("cpu", ""), "cores": hw.get("cores", ""),
                        "memory": f"{memory / 2**30:.1f} GiB" if memory else "",
                        "last seen": f"{d.seconds_since_seen:.0f} s ago",
                        "profiles": sum(p.device_id == d.id for p in profiles)})
    rows = [{"id": p.id, "device": p.device, "workload": p.workload_id, "config": p.config_id,
             "export": p.export_id, "quantization": p.quantization, "p50 ms": _fmt(p.latency_p50_ms),
             "p95 ms": _fmt(p.latency_p95_ms), "bytes": p.size_bytes,
             "peak memory": p.peak_memory_bytes if p.peak_memory_bytes is not None else "",
             "energy mJ": _fmt(p.energy_mj) if p.energy_mj is not None else "n/a", "runs": p.runs,
             "at": _when(p.created_at)} for p in profiles]
    names = {d["id"]: d["name"] for d in devices}
    jobs = [{"id": j.id, "export": j.export_id, "device": names.get(j.device_id, "any"),
             "status": j.status, "attempts": f"{j.attempts}/{j.max_attempts}",
             "claimed by": names.get(j.claimed_by, ""), "error": j.error or ""}
            for j in services.list_jobs(limit=200)]
    deployments = [{"id": d.id, "name": d.name, "config": d.config_id, "format": d.format,
                    "status": d.status, "url": f"{d.url}:predict" if d.url else "",
                    "started": _when(d.started_at), "stopped": _when(d.stopped_at),
                    "error": d.error or ""} for d in services.list_deployments()]
    return devices, rows, jobs, deployments


def stop_deployment(services: Services, selected: list | None) -> html.Span:
    """Ask for the selected deployment to stop; the export worker ends its model server."""
    try:
        if not selected:
            raise ValidationError("select a deployment in the table first", field="deployment")
        row = services.request_stop_deployment(int(selected[0]), actor=require_editor(ACTOR))
    except HopperError as exc:
        return error(exc)
    return ok(f"deployment {row.id} ({row.name}): {row.status}")


def pareto_figure(services: Services, workload_id: int, x: str | None, device: str | None) -> tuple[Any, list]:
    """The Pareto scatter (accuracy vs latency or size) and the device names for the picker."""
    document = services.pareto(workload_id, x=x or "latency", device=device or None)
    return figures.pareto(document), document.devices


def pareto_config(services: Services, click: dict | None, workload_id: int) -> Any:
    """What a click on a Pareto point shows: the config, its metrics and its profiles on each device."""
    if not click or not click.get("points") or "customdata" not in click["points"][0]:
        return no_update
    config_id, export_id, quantization = click["points"][0]["customdata"]
    try:
        config = services.get_config(int(config_id))
    except HopperError as exc:
        return error(exc)
    edge = {k: v for k, v in config.latest_metrics.items() if "@" in k or k.startswith("model_bytes")}
    # latest_metrics carries the 0-based index of the epoch they come from; people count epochs from 1
    epoch = config.latest_metrics.get("epoch")
    measured = {k: v for k, v in config.latest_metrics.items() if k not in edge and k != "epoch"}
    profiles = [p for p in services.list_profiles(config_id=config.id) if p.export_id == export_id]
    return html.Div([
        html.H3(["Config ", html.A(str(config.id), href=f"/workloads/{workload_id}", id="pareto-config-link"),
                 f" · export {export_id} ({quantization})"]),
        html.P(f"{config.status}, {config.epochs_done} epochs · " +
               ", ".join(f"{k}={_fmt(v)}" for k, v in config.hparams.items())),
        html.P((f"metrics after epoch {int(epoch) + 1} of {config.epochs_done}: " if epoch is not None else "metrics: ")
               + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(measured.items()))),
        html.P("edge: " + (", ".join(f"{k}={_fmt(v)}" for k, v in sorted(edge.items())) or "not profiled")),
        html.Ul([html.Li(f"{p.device}: p50 {p.latency_p50_ms:.4f} ms, p95 {p.latency_p95_ms:.4f} ms, "
                         f"{p.size_bytes} bytes") for p in profiles]),
    ], id="pareto-config-detail")


# -- audit log --------------------------------------------------------------------------------------------
# -- what the search learnt -------------------------------------------------------------------------------
def learnt_figures(services: Services, workload_id: int) -> tuple[Any, Any]:
    """The importance bars and the lineage tree of a workload."""
    try:
        bars = figures.importance_figure(services.importance(workload_id))
    except HopperError as exc:  # too few results yet (409): the reason is the figure
        bars = figures.importance_figure(None, exc.message)
    configs = [c.to_dict() for c in services.list_configs(workload_id)]
    return bars, layout.lineage_tree(configs, [d.to_dict() for d in services.list_decisions(workload_id)])


def front_figures(services: Services, workload_id: int) -> tuple[Any, Any]:
    """A multi-objective workload's Pareto front and its hypervolume per epoch (its objectives, added ones too)."""
    try:
        return figures.objective_front(services.objective_front(workload_id).to_dict())
    except HopperError as exc:
        return figures.empty(exc.message), figures.empty(exc.message)


# -- advisor mode -----------------------------------------------------------------------------------------
def suggestion_panel(services: Services, workload_id: int, shown: list | None = None) -> tuple[Any, list]:
    """The suggestions card's items (every pending suggestion, then the 20 most recently decided) and what they
    show; unchanged from ``shown`` (what the page shows now) gives ``no_update``: redrawing would replace the
    buttons under a person's pointer and could swallow a click."""
    suggestions = services.list_suggestions(workload_id)
    items = [*(s for s in suggestions if s.status == SuggestionStatus.PENDING),
             *[s for s in suggestions if s.status != SuggestionStatus.PENDING][:20]]
    signature = [[s.id, s.status] for s in items]
    if shown is not None and signature == shown:
        return no_update, no_update
    if not items:
        return [html.P("No suggestions yet: they appear when the procedure decides at an epoch end.")], signature
    return [layout.suggestion_item(s) for s in items], signature


def decide_suggestion(services: Services, workload_id: int, triggered: dict | None) -> html.Span:
    """Accept or reject the suggestion whose button fired (``triggered``: its pattern id)."""
    if not triggered or triggered.get("type") not in ("suggestion-accept", "suggestion-reject"):
        return no_update
    try:
        who = require_editor(ACTOR)
        if triggered["type"] == "suggestion-accept":
            info = services.accept_suggestion(workload_id, int(triggered["id"]), actor=who)
            return ok(f"suggestion {info.id} accepted: {info.summary}; it takes effect at the config's next "
                      "sub-epoch boundary")
        info = services.reject_suggestion(workload_id, int(triggered["id"]), actor=who)
    except HopperError as exc:
        return error(exc)
    return ok(f"suggestion {info.id} rejected: {info.summary}; it will not take effect")


def event_detail(services: Services, active_cell: dict | None) -> Any:
    """The whole before/after of the event whose row was clicked (the table cuts them off), as indented JSON."""
    if not active_cell or active_cell.get("row_id") is None:
        return html.P("Click an event to read its before and after in full.", className="hint")
    event = next((e for e in services.list_events(limit=500) if e.id == int(active_cell["row_id"])), None)
    if event is None:
        return html.P(f"event {active_cell['row_id']} is no longer among the newest 500", className="hint")
    return html.Div([
        html.H3(f"{event.action} on {event.object_type} {event.object_id or ''} by {event.actor} at "
                f"{event.at.isoformat(timespec='seconds')}"),
        html.Div([html.Div([html.Strong("before"), html.Pre(json.dumps(event.before, indent=2) if event.before
                                                            else "—", className="code")], className="col"),
                  html.Div([html.Strong("after"), html.Pre(json.dumps(event.after, indent=2) if event.after
                                                           else "—", className="code")], className="col")],
                 className="two-col"),
    ], id="event-detail-body")


def event_rows(services: Services) -> list[dict]:
    """The audit log table, newest first (``id`` is the event's, so a click finds it)."""
    return [{"id": e.id, "at": e.at.isoformat(timespec="seconds"), "actor": e.actor, "action": e.action,
             "object": f"{e.object_type} {e.object_id}", "before": layout.dumps(e.before) if e.before else "",
             "after": layout.dumps(e.after) if e.after else ""} for e in services.list_events(limit=500)]


# -- wiring -----------------------------------------------------------------------------------------------
def register_callbacks(app: Dash, services: Services,
                       tensorboard_url: Callable[[], str | None] = lambda: None) -> None:
    """Wire every function above to its Dash inputs and outputs; the only code here that knows Dash.

    The wrappers only drop click counters (they say *that* a button fired) and pass ``ctx.triggered_id``
    (*which* one) and the services handle on.
    """
    def cb(*spec: Any, **kwargs: Any) -> Callable:
        return app.callback(*spec, **kwargs)

    sharing.register(app, services)
    cb(Output("page", "children"), Input("url", "pathname"), State("url", "search"))(
        lambda pathname, search=None: route_page(services, tensorboard_url, pathname, search))

    cb(Output("workload-table", "data"), Input("tick", "n_intervals"), Input("url", "pathname"))(
        lambda _n, _path: workload_rows(services))

    cb(Output("wiz-space", "value"), Input("row-add", "n_clicks"), State("row-name", "value"),
       State("row-type", "value"), State("row-values", "value"), State("wiz-space", "value"),
       prevent_initial_call=True)(
        lambda n, name, kind, values, text: add_space_row(name, kind, values, text) if n else no_update)

    cb(Output("wiz-space-feedback", "children"), Input("wiz-space", "value"), Input("wiz-procedure", "value"),
       Input("wiz-model", "value"))(
        lambda text, procedure, model: validate_space(services, text, procedure, model))

    cb(Output("wiz-notice", "children"), Output("url", "pathname", allow_duplicate=True),
       *[Output(f"wiz-error-{slot}", "children") for slot in WIZARD_ERROR_SLOTS],
       Input("wiz-launch", "n_clicks"), State("wiz-name", "value"), State("wiz-description", "value"),
       State("wiz-model", "value"), State("wiz-dataset", "value"), State("wiz-procedure", "value"),
       State("wiz-space", "value"), State("wiz-epochs", "value"), State("wiz-configs", "value"),
       State("wiz-metric", "value"), State("wiz-direction", "value"),
       *PRIVACY_STATES, State({"type": "wiz-option", "name": ALL}, "id"),
       State({"type": "wiz-option", "name": ALL}, "value"), State("wiz-advisor", "value"), State("wiz-entry", "value"),
       State("wiz-plan", "value"), prevent_initial_call=True)(
        lambda n, *form: wizard_launch(services, *form[:10], privacy_options(*form[10:16]),
                                       wizard_options(form[16], form[17]), "advisor" in (form[18] or []), form[19],
                                       form[20])
        if n else (no_update,) * (2 + len(WIZARD_ERROR_SLOTS)))

    cb(Output("wiz-proc-fields", "children"), Input("wiz-procedure", "value"), prevent_initial_call=True)(
        layout.procedure_fields)

    cb(Output("wiz-proc-feedback", "children"), Input("wiz-procedure", "value"),
       Input({"type": "wiz-option", "name": ALL}, "id"), Input({"type": "wiz-option", "name": ALL}, "value"),
       Input("wiz-space", "value"), Input("wiz-epochs", "value"), Input("wiz-configs", "value"))(
        lambda procedure, ids, values, space, epochs, configs:
        procedure_feedback(services, procedure, ids, values, space, epochs, configs))

    cb(Output("wiz-dp-feedback", "children"), Output("wiz-dp-fields", "style"),
       Input("wiz-private", "value"), Input("wiz-dp-clip", "value"), Input("wiz-dp-mode", "value"),
       Input("wiz-dp-value", "value"), Input("wiz-dp-delta", "value"), Input("wiz-dp-micro", "value"),
       Input("wiz-dataset", "value"))(
        lambda enabled, *rest: (privacy_feedback(services, enabled, *rest),
                                {} if enabled and "dp" in enabled else {"display": "none"}))

    cb(Output("ds-notice", "children"), Input("ds-register", "n_clicks"), State("ds-name", "value"),
       State("ds-path", "value"), State("ds-features", "value"), State("ds-label", "value"),
       prevent_initial_call=True)(
        lambda n, *form: register_dataset(services, *form) if n else no_update)

    cb(Output("cfg-table", "data"), Output("wl-summary", "children"), Output("graph-gantt", "figure"),
       Output("graph-parcoords", "figure"), Output("children-links", "children"),
       Input("tick", "n_intervals"), Input("wl-id", "data"))(
        lambda _n, workload_id: workload_detail(services, workload_id))

    cb(Output("graph-curves", "figure"), Input("tick", "n_intervals"), Input("wl-id", "data"),
       Input("curve-metric", "value"), Input("cfg-table", "selected_row_ids"), Input("curve-only-selected", "value"))(
        lambda _n, workload_id, metric, selected, only: learning_curves(services, workload_id, metric, selected,
                                                                        only))

    cb(Output("cfg-table", "filter_query"), Input("graph-parcoords", "selectedData"), State("cfg-table", "filter_query"),
       prevent_initial_call=True)(filter_from_chart_selection)

    cb(Output("cfg-table", "selected_rows"), Output("cfg-table", "selected_row_ids"),
       Input("btn-clear-selection", "n_clicks"), prevent_initial_call=True)(
        lambda n: clear_selection() if n else (no_update, no_update))

    cb(Output("compare-pick", "options"), Input("cfg-table", "data"))(
        lambda rows: [{"label": f"config {r['id']} ({r['hparams_text']})", "value": r["id"]} for r in rows or []])

    cb(Output("compare-link", "href"), Output("compare-link", "style"), Input("compare-pick", "value"))(compare_link)

    # the notice as an input shows a new note at once
    cb(Output("notes-list", "children"), Input("wl-id", "data"), Input("cfg-table", "selected_row_ids"),
       Input("notice-note", "children"))(
        lambda workload_id, selected, _notice: notes_list(services, workload_id, selected))

    cb(Output("notice-note", "children"), Input("btn-note", "n_clicks"), State("wl-id", "data"),
       State("note-about", "value"), State("cfg-table", "selected_row_ids"), State("note-text", "value"),
       prevent_initial_call=True)(
        lambda n, *form: add_note(services, *form) if n else no_update)

    # view state in the address: the selection it names is applied once the rows arrive; changes are written back
    cb(Output("cfg-table", "selected_rows", allow_duplicate=True),
       Output("cfg-table", "selected_row_ids", allow_duplicate=True), Output("view-config", "data"),
       Input("cfg-table", "data"), State("view-config", "data"), prevent_initial_call=True)(select_from_view)

    cb(Output("url-state", "search"), Input("cfg-table", "sort_by"), Input("curve-metric", "value"),
       Input("cfg-table", "selected_row_ids"), prevent_initial_call=True)(detail_view_query)

    cb(Output("url-state", "search", allow_duplicate=True), Input("workload-table", "sort_by"),
       prevent_initial_call=True)(lambda sort_by: layout.view_query(sort_by))

    cb(Output("notice-actions", "children"), Input("btn-stop", "n_clicks"), Input("btn-resume", "n_clicks"),
       Input("btn-prio", "n_clicks"), State("cfg-table", "selected_row_ids"), State("prio-value", "value"),
       prevent_initial_call=True)(
        lambda stops, resumes, prios, selected, priority:
        config_action(services, ctx.triggered_id, selected, priority) if (stops or resumes or prios) else no_update)

    cb(Output("notice-clone", "children"), Input("btn-clone", "n_clicks"), State("cfg-table", "selected_row_ids"),
       State("clone-lr", "value"), State("clone-bs", "value"), State("clone-extra", "value"),
       prevent_initial_call=True)(
        lambda n, *form: clone_config(services, *form) if n else no_update)

    cb(Output("notice-edge", "children"), Input("btn-export", "n_clicks"), Input("btn-deploy", "n_clicks"),
       State("cfg-table", "selected_row_ids"), State("export-profile", "value"), prevent_initial_call=True)(
        lambda exports, deploys, selected, profile:
        edge_action(services, ctx.triggered_id, selected, profile) if (exports or deploys) else no_update)

    cb(Output("notice-add", "children"), Input("btn-add", "n_clicks"), State("wl-id", "data"),
       State("add-hparams", "value"), prevent_initial_call=True)(
        lambda n, workload_id, text: add_config(services, workload_id, text) if n else no_update)

    cb(Output("notice-drill", "children"), Input("btn-drill", "n_clicks"), State("cfg-table", "selected_row_ids"),
       State("drill-space", "value"), State("drill-procedure", "value"), State("drill-epochs", "value"),
       State("drill-configs", "value"), prevent_initial_call=True)(
        lambda n, *form: drill_down(services, *form) if n else no_update)

    # the last input redraws the tables right after a stop request, not at the next tick
    cb(Output("device-table", "data"), Output("profile-table", "data"), Output("job-table", "data"),
       Output("deployment-table", "data"), Input("tick", "n_intervals"), Input("url", "pathname"),
       Input("notice-deployment", "children"))(
        lambda _n, _path, _stopped: device_tables(services))

    cb(Output("notice-deployment", "children"), Input("btn-stop-deployment", "n_clicks"),
       State("deployment-table", "selected_row_ids"), prevent_initial_call=True)(
        lambda n, selected: stop_deployment(services, selected) if n else no_update)

    cb(Output("graph-pareto", "figure"), Output("pareto-device", "options"), Input("tick", "n_intervals"),
       Input("pareto-wl-id", "data"), Input("pareto-x", "value"), Input("pareto-device", "value"))(
        lambda _n, workload_id, x, device: pareto_figure(services, workload_id, x, device))

    cb(Output("pareto-config", "children"), Input("graph-pareto", "clickData"), State("pareto-wl-id", "data"),
       prevent_initial_call=True)(
        lambda click, workload_id: pareto_config(services, click, workload_id))

    cb(Output("importance-graph", "figure"), Output("lineage", "children"), Input("tick", "n_intervals"),
       Input("wl-id", "data"))(
        lambda _n, workload_id: learnt_figures(services, workload_id))

    cb(Output("graph-history", "figure"), Output("graph-slices", "figure"), Input("tick", "n_intervals"),
       Input("wl-id", "data"))(
        lambda _n, workload_id: search_plots(services, workload_id))

    # only on the page of a workload with two or more objectives (the graphs exist there alone)
    cb(Output("graph-front", "figure"), Output("graph-hypervolume", "figure"), Input("tick", "n_intervals"),
       Input("wl-id", "data"))(
        lambda _n, workload_id: front_figures(services, workload_id))

    # the notice as an input redraws the panel right after a decision, not at the next tick
    cb(Output("suggestions-panel", "children"), Output("suggestions-shown", "data"), Input("tick", "n_intervals"),
       Input("wl-id", "data"), Input("notice-suggestions", "children"), State("suggestions-shown", "data"))(
        lambda _n, workload_id, _notice, shown: suggestion_panel(services, workload_id, shown))

    # Redrawing the panel re-creates its buttons with no clicks: only a real click (a count) decides. Dash fires
    # this callback again for the redrawn buttons, which can supersede the notice of the decision; the decided
    # item itself says the outcome (accepted by, rejected by, expired: why). The tick pauses meanwhile, so a
    # redraw rarely races the decision.
    cb(Output("notice-suggestions", "children"), Input({"type": "suggestion-accept", "id": ALL}, "n_clicks"),
       Input({"type": "suggestion-reject", "id": ALL}, "n_clicks"), State("wl-id", "data"),
       running=[(Output("tick", "disabled"), True, False)], prevent_initial_call=True)(
        lambda _accepts, _rejects, workload_id: decide_suggestion(services, workload_id, ctx.triggered_id)
        if ctx.triggered and ctx.triggered[0].get("value") else no_update)

    cb(Output("event-table", "data"), Input("tick", "n_intervals"), Input("url", "pathname"))(
        lambda _n, _path: event_rows(services))

    schedules_page.register_schedule_callbacks(app, services)
    data_page.register_data_callbacks(app, services)
    cb(Output("event-detail", "children"), Input("event-table", "active_cell"))(
        lambda cell: event_detail(services, cell))
