"""The Data & scripts page: register a dataset (an uploaded file or a path under a data root) and upload a Keras
script, each with its result next to the form, and the lists of registered datasets and scripts.

A page of its own rather than a section of the workloads page: a person registers data and scripts once and
launches many workloads on them, and the workloads page is what a returning person reads. Layout and callbacks
live together here (one page, one module); the callbacks are plain functions of a ``Services`` handle and their
inputs, so tests call them directly. Scripts are validated in the services' contained pool (``wait=False``): this
process never imports TensorFlow, and the status line polls the stored result on the UI's refresh tick.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from dash import Dash, Input, Output, State, dash_table, dcc, html, no_update

from hopper.engine.errors import HopperError, ValidationError
from hopper.engine.services import Services
from hopper.engine.services.data import MAX_DATASET_UPLOAD_BYTES
from hopper.engine.status import ScriptValidation
from hopper.rest.gate import require_editor
from hopper.webui.layout import TABLE_STYLE, field

ACTOR = "web"
# The dataset form's fields, each with an error line under it; a service error naming one lands there.
DATASET_FIELDS = ("file", "name", "path", "label_column", "feature_columns", "task")
SCRIPT_FIELDS = ("script", "script_name", "entry_point", "dataset")
_UPLOAD_STYLE = {"border": "2px dashed #b6c2cf", "borderRadius": "6px", "padding": "14px", "textAlign": "center",
                 "cursor": "pointer", "fontSize": ".88rem", "color": "#57606a"}


def _with_error(label: str, control: Any, error_id: str, hint: str | None = None, width: str = "100%") -> html.Div:
    """A form field with its own error line, so every problem shows next to the box to fix."""
    box = field(label, control, hint, width)
    box.children.append(html.Div(id=error_id, className="field-error"))
    return box


def data_page(datasets: list) -> html.Div:
    """Both forms and both lists (the lists are filled by :func:`dataset_rows` and :func:`script_rows`)."""
    dataset_options = [{"label": d.name, "value": d.name} for d in datasets]
    return html.Div([
        html.H1("Data & scripts"),
        html.P(["Register the data a workload trains on and upload model scripts. Same as ",
                html.Code("hopper data add"), " and ", html.Code("hopper script add"), "."], className="summary"),
        html.Div([
            html.Div([
                html.H2("Register a dataset"),
                _with_error("File (CSV, Parquet or NPZ)", dcc.Upload(
                    id="data-upload", children=html.Div(id="data-upload-label", children=[
                        "Drop a file here or ", html.A("choose one")]), style=_UPLOAD_STYLE, multiple=False,
                    accept=".csv,.tsv,.parquet,.pq,.npz"), "data-file-error",
                    f"saved under the data root's uploads/; at most {MAX_DATASET_UPLOAD_BYTES // 1_000_000} MB"),
                _with_error("… or a path already under a data root", dcc.Input(id="data-path", className="input",
                                                                               placeholder="/data/wine.csv"),
                            "data-path-error"),
                _with_error("Name", dcc.Input(id="data-name", className="input", placeholder="e.g. wine"),
                            "data-name-error", "letters, digits, . _ -"),
                html.Div([
                    _with_error("Label column", dcc.Input(id="data-label", className="input",
                                                           placeholder="the last column"), "data-label_column-error",
                                width="49%"),
                    _with_error("Task", dcc.Dropdown(id="data-task", placeholder="inferred from the labels", options=[
                        {"label": t, "value": t} for t in ("classification", "regression")]), "data-task-error",
                        width="49%"),
                ], className="row"),
                _with_error("Feature columns", dcc.Input(id="data-features", className="input",
                                                         placeholder="all but the label; or a, b, c"),
                            "data-feature_columns-error"),
                html.Button("Register", id="data-register", className="button primary"),
                html.Div(id="data-result", className="notice"),
            ], className="col card"),
            html.Div([
                html.H2("Upload a Keras script"),
                _with_error("Script (.py)", dcc.Upload(
                    id="script-upload", children=html.Div(id="script-upload-label", children=[
                        "Drop a .py file here or ", html.A("choose one")]), style=_UPLOAD_STYLE, multiple=False,
                    accept=".py"), "script-script-error",
                    "defines build_model(hp) returning a compiled Keras model (or a HyperModel)"),
                _with_error("Name", dcc.Input(id="script-name", className="input", placeholder="the file's name"),
                            "script-script_name-error"),
                html.Div([
                    _with_error("Entry point", dcc.Input(id="script-entry", className="input", value="build_model"),
                                "script-entry_point-error", width="49%"),
                    _with_error("Validate against dataset", dcc.Dropdown(
                        id="script-dataset", options=dataset_options, placeholder="64 features, 10 classes"),
                        "script-dataset-error", width="49%"),
                ], className="row"),
                html.Button("Upload and validate", id="script-send", className="button primary"),
                dcc.Store(id="script-last"),
                html.Div(id="script-status", className="notice"),
            ], className="col card"),
        ], className="two-col"),
        html.H2("Datasets"),
        dash_table.DataTable(id="data-table", columns=[{"name": c, "id": c} for c in (
            "id", "name", "rows", "train / validation", "task", "label", "label kind", "features", "source")],
            data=[], sort_action="native", page_size=15, **TABLE_STYLE),
        html.H2("Scripts"),
        dash_table.DataTable(id="script-table", columns=[{"name": c, "id": c} for c in (
            "id", "name", "entry point", "validation", "kind", "message")],
            data=[], sort_action="native", page_size=15,
            **{**TABLE_STYLE, "style_data_conditional": [
                {"if": {"filter_query": "{validation} = rejected"}, "color": "#b42318"}]}),
    ])


def _decode(contents: str | None, filename: str | None, field_name: str) -> bytes:
    """The bytes of a ``dcc.Upload`` (a ``data:...;base64,`` URL)."""
    if not contents:
        raise ValidationError("choose a file first", field=field_name)
    try:
        return base64.b64decode(contents.split(",", 1)[1], validate=True)
    except (IndexError, binascii.Error):
        raise ValidationError(f"{filename or 'the file'} did not arrive whole; choose it again",
                              field=field_name) from None


def under_box(problem: HopperError) -> str:
    """A problem's message as the line under its box shows it: without the field name the box already shows."""
    prefix = f"{problem.field}: "
    return problem.message[len(prefix):] if problem.field and problem.message.startswith(prefix) else problem.message


def field_errors(problems: list[HopperError], fields: tuple[str, ...]) -> tuple[list, Any]:
    """Each field's error line (in ``fields``' order) and the notice for errors that name no field of the form."""
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in problems:
        name = (problem.field or "").split(".")[0]
        if name in fields:
            by_field.setdefault(name, []).append(under_box(problem))
        else:
            general.append(problem.message)
    lines = [html.Span("; ".join(by_field[f]), className="error") if f in by_field else None for f in fields]
    notice = html.Span("Error: " + "; ".join(general), className="error") if general else None
    if problems and not general:
        notice = html.Span(f"{len(problems)} field{'s' if len(problems) > 1 else ''} to fix", className="error")
    return lines, notice


def _columns(names: str | None) -> list[str] | None:
    listed = [c.strip() for c in (names or "").split(",") if c.strip()]
    return listed or None


def dataset_form_problems(contents: str | None, path: str | None, name: str | None) -> list[HopperError]:
    """Every problem the form shows before anything is sent: all of them at once, each naming its field."""
    problems: list[HopperError] = []
    if not contents and not (path or "").strip():
        problems.append(ValidationError("choose a file to upload, or give a path below", field="file"))
    if contents and (path or "").strip():
        problems.append(ValidationError("give a file or a path, not both", field="path"))
    if not (name or "").strip():
        problems.append(ValidationError("a dataset needs a name", field="name"))
    elif not all(ch.isalnum() or ch in "._-" for ch in name.strip()):
        problems.append(ValidationError(f"{name.strip()!r} may hold only letters, digits and . _ -", field="name"))
    return problems


def describe_dataset(info: Any) -> html.Div:
    """What registering found: rows and their split, each column's type, the label and its kind."""
    columns = info.schema.get("columns") or []
    typed = ", ".join(f"{c.get('name')}: {c.get('type')}" for c in columns) or \
        f"{len(info.feature_columns)} feature column(s), shape {tuple(info.feature_shape)}"
    classes = f", {len(info.classes)} classes" if info.classes else ""
    return html.Div([
        html.Span(f"dataset {info.name} registered: {info.n_rows} rows ({info.n_train} train, {info.n_validation} "
                  f"validation), {info.task}, label {info.label_column} ({info.label_kind}{classes})", className="ok"),
        html.Div(f"columns: {typed}", className="hint", id="data-result-columns"),
    ])


def register_dataset(services: Services, contents: str | None, filename: str | None, path: str | None,
                     name: str | None, label: str | None, task: str | None, features: str | None) -> tuple:
    """Register from the form: (each field's error line..., the result notice). Nothing is saved on an error."""
    problems = dataset_form_problems(contents, path, name)
    if not problems:
        spec = {"name": (name or "").strip(), "label_column": (label or "").strip() or None, "task": task or None,
                "feature_columns": _columns(features)}
        try:
            if contents:
                info = services.register_uploaded_dataset(filename or "", _decode(contents, filename, "file"), spec,
                                                          actor=require_editor(ACTOR))
            else:
                info = services.register_dataset({**spec, "path": (path or "").strip()}, actor=require_editor(ACTOR))
        except HopperError as exc:
            problems = [exc]
        else:
            return (*[None] * len(DATASET_FIELDS), describe_dataset(info))
    lines, notice = field_errors(problems, DATASET_FIELDS)
    return (*lines, notice)


def upload_label(filename: str | None, placeholder: str) -> Any:
    """The drop zone's text once a file is chosen: its name, so the person sees what will be sent."""
    if not filename:
        return [placeholder, html.A("choose one")]
    return [html.Strong(filename), " (drop or click to choose another)"]


def upload_script(services: Services, contents: str | None, filename: str | None, name: str | None,
                  entry_point: str | None, dataset: str | None) -> tuple:
    """Send a script for validation: (each field's error line..., the script id to poll, the status line)."""
    problems: list[HopperError] = []
    if not contents:
        problems.append(ValidationError("choose a .py file first", field="script"))
    elif not (filename or "").endswith(".py"):
        problems.append(ValidationError(f"{filename} is not a .py file", field="script"))
    entry = (entry_point or "").strip() or "build_model"
    if not entry.isidentifier():
        problems.append(ValidationError(f"{entry!r} is not a Python identifier", field="entry_point"))
    if not problems:
        try:
            info = services.upload_script((name or "").strip() or filename or "script.py",
                                          _decode(contents, filename, "script"), entry_point=entry,
                                          dataset=dataset or None, actor=require_editor(ACTOR), wait=False)
        except HopperError as exc:
            problems = [exc]
        else:
            return (*[None] * len(SCRIPT_FIELDS), info.id, script_status(services, info.id))
    lines, notice = field_errors(problems, SCRIPT_FIELDS)
    details = getattr(problems[0], "details", None) if len(problems) == 1 else None
    if details:
        notice = html.Div([notice, html.Details([html.Summary("traceback"), html.Pre(details)])])
    return (*lines, None, notice)


def script_status(services: Services, script_id: int | None) -> Any:
    """The sent script's validation: pending, accepted with its notes, or rejected with its one-line reason and
    the traceback folded under it."""
    if script_id is None:
        return None
    try:
        script = services.get_script(int(script_id))
    except HopperError as exc:
        return html.Span(f"Error: {exc.message}", className="error")
    validation = script.validation or {}
    state = validation.get("state")
    if state == ScriptValidation.PENDING:
        return html.Span(f"script {script.id} ({script.name}): validating…", className="warn", id="script-state")
    if state == ScriptValidation.ACCEPTED:
        notes = validation.get("notes") or []
        params = f", {validation['params']:,} parameters" if validation.get("params") else ""
        return html.Div([
            html.Span(f"script {script.id} ({script.name}): accepted, a {script.kind}{params}; pick it as the "
                      "model in the launch wizard", className="ok", id="script-state"),
            *([html.Ul([html.Li(n) for n in notes], className="hint")] if notes else [])])
    reason = (validation.get("message") or "rejected").split("\n")[0]
    return html.Div([
        html.Span(f"script {script.id} ({script.name}): rejected: {reason}", className="error", id="script-state"),
        *([html.Details([html.Summary("traceback"), html.Pre(validation["details"])])]
          if validation.get("details") else [])])


def dataset_rows(services: Services) -> list[dict]:
    """The datasets table."""
    return [{"id": d.id, "name": d.name, "rows": d.n_rows, "train / validation": f"{d.n_train} / {d.n_validation}",
             "task": d.task, "label": d.label_column, "label kind": d.label_kind,
             "features": len(d.feature_columns) if d.schema.get("columns") else str(tuple(d.feature_shape)),
             "source": d.source_path} for d in services.list_datasets()]


def script_rows(services: Services) -> list[dict]:
    """The scripts table, newest first: each one's validation state and one-line message."""
    return [{"id": s.id, "name": s.name, "entry point": s.entry_point,
             "validation": (s.validation or {}).get("state", ""), "kind": s.kind or "",
             "message": ((s.validation or {}).get("message") or "").split("\n")[0][:300]}
            for s in reversed(services.list_scripts())]


def register_data_callbacks(app: Dash, services: Services) -> None:
    """Wire the page's functions to Dash; the result notices as inputs redraw the lists right after a change."""
    app.callback(Output("data-table", "data"), Input("url", "pathname"), Input("data-result", "children"))(
        lambda *_: dataset_rows(services))
    app.callback(Output("script-table", "data"), Input("tick", "n_intervals"), Input("url", "pathname"),
                 Input("script-last", "data"))(lambda *_: script_rows(services))
    # a dataset registered a moment ago can be picked to validate a script against, without a reload
    app.callback(Output("script-dataset", "options"), Input("data-table", "data"))(
        lambda rows: [{"label": r["name"], "value": r["name"]} for r in rows or []])
    app.callback(Output("data-upload-label", "children"), Input("data-upload", "filename"))(
        lambda filename: upload_label(filename, "Drop a file here or "))
    app.callback(Output("script-upload-label", "children"), Input("script-upload", "filename"))(
        lambda filename: upload_label(filename, "Drop a .py file here or "))
    app.callback(*[Output(f"data-{f}-error", "children") for f in DATASET_FIELDS], Output("data-result", "children"),
                 Input("data-register", "n_clicks"), State("data-upload", "contents"),
                 State("data-upload", "filename"), State("data-path", "value"), State("data-name", "value"),
                 State("data-label", "value"), State("data-task", "value"), State("data-features", "value"),
                 prevent_initial_call=True)(
        lambda n, *form: register_dataset(services, *form) if n else no_update)
    app.callback(*[Output(f"script-{f}-error", "children") for f in SCRIPT_FIELDS], Output("script-last", "data"),
                 Output("script-status", "children"), Input("script-send", "n_clicks"),
                 State("script-upload", "contents"), State("script-upload", "filename"), State("script-name", "value"),
                 State("script-entry", "value"), State("script-dataset", "value"), prevent_initial_call=True)(
        lambda n, *form: upload_script(services, *form) if n else no_update)

    # The sent script's state on every tick, as the rest of the UI polls: pending turns into accepted or rejected.
    def poll(_n: int, script_id: int | None) -> Any:
        return no_update if script_id is None else script_status(services, script_id)
    app.callback(Output("script-status", "children", allow_duplicate=True), Input("tick", "n_intervals"),
                 State("script-last", "data"), prevent_initial_call=True)(poll)
