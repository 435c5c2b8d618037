"""Page layouts. Pure functions of services' plain objects; callbacks fill the live parts."""

from __future__ import annotations

import json
import re

from dash import dash_table, dcc, html
from dash.dash_table.Format import Format, Scheme

from hopper.engine.catalog import ROSTER
from hopper.engine.procedure_guide import COMMON_OPTIONS, DRILL_DOWN_PROCEDURES, GUIDES, drill_down_procedure
from hopper.engine.status import SuggestionStatus
from hopper.webui import sharing

REFRESH_MS = 2000
EXAMPLE_SPACE = """lr: {type: choice, values: [0.001, 0.003]}
units: {type: choice, values: [64, 128]}
batch_size: 32
"""

# Responsive: a chart follows its card's width when the window narrows, instead of keeping the width it was
# first drawn at and overflowing the card (the figures set their height, never their width).
GRAPH_CONFIG = {"displaylogo": False, "responsive": True}

PLAN_OPTIONS = [
    {"label": "auto: MOP or replicated, chosen from the data's size and the measured hop costs", "value": "auto"},
    {"label": "MOP: each worker holds its partitions, models hop", "value": "mop"},
    {"label": "replicated: every worker holds all the data, a config trains a whole epoch per dispatch",
     "value": "replicated"}]
# A metric column: numbers that sort and filter as numbers ("> 0.9"), shown to four significant digits.
NUMBER = {"type": "numeric", "format": Format(precision=4, scheme=Scheme.decimal_or_exponent)}
TABLE_STYLE = {
    "style_table": {"overflowX": "auto"},
    "style_cell": {"fontFamily": "system-ui, sans-serif", "fontSize": "13px", "padding": "6px 8px",
                   "textAlign": "left", "maxWidth": "340px", "overflow": "hidden", "textOverflow": "ellipsis"},
    "style_header": {"fontWeight": "600", "backgroundColor": "#f3f5f8", "borderBottom": "2px solid #d0d7de"},
    "style_data_conditional": [
        {"if": {"filter_query": "{status} = failed"}, "color": "#b42318"},
        {"if": {"filter_query": "{status} = stopped"}, "color": "#777"},
        {"if": {"filter_query": '{status} = "training now"'}, "fontWeight": "600"},
        {"if": {"state": "selected"}, "backgroundColor": "#e8f0fe", "border": "1px solid #4c78a8"},
    ],
}


def field(label: str, control, hint: str | None = None, width: str = "100%",  # noqa: ANN001
          error_id: str | None = None) -> html.Div:
    """A labelled form control with an optional hint; one look for every form box. ``error_id`` adds the line
    under it where the form's callback puts that field's error."""
    children = [html.Label(label, className="field-label"), control]
    if hint:
        children.append(html.Div(hint, className="hint"))
    if error_id:
        children.append(html.Div(id=error_id, className="field-error"))
    return html.Div(children, className="field", style={"width": width})


def shell(token_required: bool) -> html.Div:
    """The page frame: navigation, the URL and the refresh tick; pages render into ``#page``."""
    nav = [dcc.Link("Workloads", href="/", className="nav-link"),
           dcc.Link("Data & scripts", href="/data", className="nav-link"),
           dcc.Link("Schedules", href="/schedules", className="nav-link"),
           dcc.Link("Devices", href="/devices", className="nav-link"),
           dcc.Link("Audit log", href="/events", className="nav-link"),
           dcc.Link("TensorBoard", href="/tensorboard", className="nav-link"),
           html.A("REST API", href="/api/docs", className="nav-link", target="_blank")]
    if token_required:
        nav.append(html.A("Log out", href="/logout", className="nav-link right"))
    return html.Div([
        dcc.Location(id="url"),
        # The view state (sort, selected config, curve metric) written into the address without a reload.
        dcc.Location(id="url-state", refresh=False),
        dcc.Interval(id="tick", interval=REFRESH_MS),
        html.Header([html.Span("Hopper", className="brand"),
                     html.Span("model selection you can steer", className="tagline"), html.Nav(nav)],
                    className="topbar"),
        html.Main(id="page", className="page"),
    ])


def workloads_page(datasets: list, scripts: list, *, open_wizard: bool = True, sort_by: list | None = None) -> html.Div:
    """The launch wizard (a section above the list, folded unless ``open_wizard``), the workloads list, newest first,
    and the dataset form."""
    model_options = [{"label": f"{name} (roster)", "value": name} for name in ROSTER]
    model_options += [{"label": f"script {s.id}: {s.name}", "value": f"script:{s.id}"} for s in scripts if s.valid]
    return html.Div([
        html.H1("Workloads"),
        # The wizard above the list, folded once there are workloads: the list is what a returning person reads.
        html.Details([html.Summary("Launch a workload", id="wizard-toggle", className="section-toggle"),
            html.Div([
                html.Div([
                    field("Name", dcc.Input(id="wiz-name", placeholder="e.g. digits grid", className="input"),
                          error_id="wiz-error-name"),
                    field("Description", dcc.Textarea(id="wiz-description", className="textarea small")),
                    field("Model", dcc.Dropdown(id="wiz-model", options=model_options, value="mlp", clearable=False),
                          "a roster model, or a script you uploaded and Hopper validated", error_id="wiz-error-model"),
                    field("Dataset", dcc.Dropdown(id="wiz-dataset", options=[
                        {"label": f"{d.name} ({d.n_rows} rows, {d.task}, features {tuple(d.feature_shape)}, "
                                  f"label {d.label_column})", "value": d.name} for d in datasets],
                        value=datasets[0].name if datasets else None), error_id="wiz-error-dataset"),
                    html.Div([
                        field("Procedure", dcc.Dropdown(id="wiz-procedure", clearable=False, value="grid", options=[
                            {"label": g.name, "title": g.summary, "value": g.name} for g in GUIDES.values()]),
                            width="32%", error_id="wiz-error-procedure"),
                        field("Max epochs", dcc.Input(id="wiz-epochs", type="number", min=1, value=3,
                                                      className="input"), width="32%",
                              error_id="wiz-error-epochs"),
                        field("Configs (all but grid/manual/PBT)", dcc.Input(id="wiz-configs", type="number", min=1,
                                                                             value=8, className="input"), width="32%",
                              error_id="wiz-error-configs"),
                    ], className="row"),
                    html.Div(procedure_fields("grid"), id="wiz-proc-fields"),
                    dcc.Checklist(id="wiz-advisor", value=[], options=[
                        {"label": " Advisor mode: the procedure suggests stops, pauses, promotions and exploits; "
                                  "people accept or reject each", "value": "advisor"}]),
                    field("Execution plan", dcc.Dropdown(id="wiz-plan", value=None, placeholder="the deployment's "
                                                         "default (auto unless set)", options=PLAN_OPTIONS),
                          error_id="wiz-error-plan"),
                    html.Div(id="wiz-proc-feedback", className="feedback"),
                    html.Div([
                        field("Objective metric", dcc.Input(id="wiz-metric", value="val_accuracy", className="input"),
                              width="49%", error_id="wiz-error-metric"),
                        field("Direction", dcc.Dropdown(id="wiz-direction", clearable=False, value="max", options=[
                            {"label": "maximise", "value": "max"}, {"label": "minimise", "value": "min"}]), width="49%"),
                    ], className="row"),
                    dcc.Checklist(id="wiz-private", options=[{"label": " Train privately (DP-SGD)", "value": "dp"}],
                                  value=[]),
                    html.Div([
                        field("Clip norm C", dcc.Input(id="wiz-dp-clip", type="number", value=1.0, className="input"),
                              width="18%"),
                        field("Noise from", dcc.Dropdown(id="wiz-dp-mode", clearable=False, value="target_epsilon",
                                                         options=[{"label": "target epsilon", "value": "target_epsilon"},
                                                                  {"label": "noise multiplier", "value": "noise_multiplier"}]),
                              width="28%"),
                        field("Value", dcc.Input(id="wiz-dp-value", type="number", value=8, className="input"),
                              width="14%"),
                        field("Delta", dcc.Input(id="wiz-dp-delta", type="number", value=1e-5, className="input"),
                              width="18%"),
                        field("Microbatches", dcc.Input(id="wiz-dp-micro", type="number", min=1, className="input",
                                                        placeholder="per example"), width="18%"),
                    ], className="row", id="wiz-dp-fields"),
                    html.Div(id="wiz-dp-feedback", className="feedback"),
                    html.Div(id="wiz-error-privacy", className="field-error"),
                ], className="col"),
                html.Div([
                    html.Div([
                        field("Parameter", dcc.Input(id="row-name", placeholder="units", className="input"), width="24%"),
                        field("Type", dcc.Dropdown(id="row-type", value="choice", clearable=False, options=[
                            {"label": t, "value": t} for t in ("choice", "int", "uniform", "loguniform", "fixed")]),
                            width="24%"),
                        field("Values / low,high[,step]", dcc.Input(id="row-values", placeholder="32, 64, 128",
                                                                    className="input"), width="34%"),
                        html.Button("Add row", id="row-add", className="button secondary"),
                    ], className="row bottom"),
                    field("Search space (YAML or JSON)", dcc.Textarea(id="wiz-space", value=EXAMPLE_SPACE,
                                                                     className="textarea code"),
                          error_id="wiz-error-space"),
                    html.Div(id="wiz-space-feedback", className="feedback"),
                    field("Script entry options (YAML: entry_args, bind_globals)", dcc.Textarea(
                        id="wiz-entry", placeholder="entry_args: {num_classes: 10}\nbind_globals: {x_train: x}",
                        className="textarea code"), error_id="wiz-error-entry"),
                    html.Button("Launch", id="wiz-launch", className="button primary"),
                    html.Div(id="wiz-notice", className="notice"),
                ], className="col"),
            ], className="two-col card"),
        ], id="wizard", open=open_wizard),
        dash_table.DataTable(
            id="workload-table", columns=[
                {"name": "id", "id": "id"}, {"name": "name", "id": "link", "presentation": "markdown"},
                {"name": "status", "id": "status"}, {"name": "procedure", "id": "procedure"},
                {"name": "model", "id": "model_ref"}, {"name": "progress", "id": "progress"},
                # the best value any epoch reached, which the detail table (latest epoch) may not show
                {"name": "best (any epoch)", "id": "best"}, {"name": "error", "id": "error"}],
            data=[], sort_action="native", sort_by=sort_by or [], page_size=20,
            markdown_options={"link_target": "_self"}, **TABLE_STYLE),
        html.H2("Register a dataset"),
        html.Div([
            field("Name", dcc.Input(id="ds-name", className="input"), width="18%"),
            field("Path (inside a data root)", dcc.Input(id="ds-path", className="input"), width="36%"),
            field("Feature columns", dcc.Input(id="ds-features", placeholder="all but the label", className="input"),
                  width="20%"),
            field("Label column", dcc.Input(id="ds-label", className="input"), width="14%"),
            html.Button("Register", id="ds-register", className="button secondary"),
        ], className="row bottom card"),
        html.Div(id="ds-notice", className="notice"),
    ])


def procedure_fields(procedure: str | None) -> list:
    """The option fields of a procedure (its own, then the median stopping rule's), each with its default as the
    placeholder: an empty field keeps the default."""
    chosen = GUIDES.get(procedure or "")
    own = list(chosen.options) if chosen else []
    fields = []
    for option in [*own, *COMMON_OPTIONS]:
        control_id = {"type": "wiz-option", "name": option.name}
        if option.kind == "choice":
            control = dcc.Dropdown(id=control_id, options=list(option.choices), placeholder=str(option.default))
        else:
            control = dcc.Input(id=control_id, type="number", placeholder=str(option.default), className="input",
                                min=option.low, max=option.high, step=1 if option.kind == "int" else "any")
        fields.append(field(option.name, control, option.help, width="32%"))
    summary = html.P(chosen.summary, className="hint", id="wiz-proc-summary") if chosen else None
    return [summary, html.Div(fields, className="row wrap")]


def detail_page(workload, parent, view: dict | None = None) -> html.Div:  # noqa: ANN001
    """One workload: its configs, charts and the steering controls (stop, clone, drill down, edge).

    ``view`` is the state kept in the address (:func:`view_from_query`): ``config`` to select once the table fills,
    ``metric`` for the curves, ``sort_by`` for the table.
    """
    view = view or {}
    crumbs = [dcc.Link("Workloads", href="/"), " / "]
    if parent is not None:
        crumbs += [dcc.Link(f"{parent.name}", href=f"/workloads/{parent.id}", id="crumb-parent"), " / "]
    crumbs.append(html.Span(workload.name))
    crumbs += [" · ", dcc.Link("Pareto front (edge)", href=f"/workloads/{workload.id}/pareto", id="pareto-link")]
    metric = workload.objectives[0]["metric"]
    curve_metrics = ["val_accuracy", "val_loss", "train_accuracy", "train_loss", "epoch_seconds",
                     *(["epsilon"] if workload.privacy else [])]
    curve_metrics += [o["metric"] for o in workload.objectives if o["metric"] not in curve_metrics]
    return html.Div([
        dcc.Store(id="wl-id", data=workload.id),
        dcc.Store(id="view-config", data=view.get("config")),
        html.Div(crumbs, className="crumbs"),
        html.H1(workload.name, id="wl-title"),
        html.Div(id="wl-summary", className="summary"),
        sharing.controls_card(workload),
        *([suggestions_card(workload)] if workload.advisor else []),
        dash_table.DataTable(
            id="cfg-table", columns=[
                {"name": "id", "id": "id"}, {"name": "page", "id": "page", "presentation": "markdown"},
                {"name": "status", "id": "status"}, {"name": "priority", "id": "priority", "type": "numeric"},
                {"name": f"epochs (of {workload.max_epochs})", "id": "epochs_done", "type": "numeric"},
                {"name": "origin", "id": "origin"}, {"name": "hparams", "id": "hparams_text"},
                {"name": f"{metric} (latest epoch)", "id": "objective", **NUMBER},
                {"name": "val_loss (latest epoch)", "id": "val_loss", **NUMBER},
                # epsilon only means something for a private workload; elsewhere it would be an empty column
                *([{"name": "epsilon", "id": "epsilon", **NUMBER}] if workload.privacy else []),
                {"name": "version", "id": "version"}],
            data=[], row_selectable="single", sort_action="native", sort_by=view.get("sort_by") or [], page_size=15,
            # a filter row under the header: status ("training now"), a metric (> 0.9), an hparam (lr=0.01)
            filter_action="native", markdown_options={"link_target": "_self"},
            tooltip_duration=None, **TABLE_STYLE),
        html.Div([
            html.Div([
                html.H3("Selected config"),
                html.Div([html.Button("Clear selection", id="btn-clear-selection", className="button secondary"),
                          html.Button("Stop", id="btn-stop", className="button"),
                          html.Button("Resume", id="btn-resume", className="button"),
                          dcc.Input(id="prio-value", type="number", value=10, className="input narrow"),
                          html.Button("Set priority", id="btn-prio", className="button")], className="row"),
                html.Div(id="notice-actions", className="notice"),
                html.H3("Clone with trained weights"),
                html.Div([field("learning rate", dcc.Input(id="clone-lr", type="number", className="input"),
                                width="30%"),
                          field("batch size", dcc.Input(id="clone-bs", type="number", className="input"), width="30%"),
                          field("other overrides (JSON)", dcc.Input(id="clone-extra", placeholder='{"units": 64}',
                                                                    className="input"), width="36%")], className="row"),
                html.Button("Clone", id="btn-clone", className="button primary"),
                html.Div(id="notice-clone", className="notice"),
                html.H3("Edge"),
                html.Div([html.Button("Export to TFLite (float32 + int8)", id="btn-export", className="button"),
                          dcc.Checklist(id="export-profile", options=[{"label": " then profile on edge devices",
                                                                       "value": "profile"}], value=["profile"]),
                          html.Button("Deploy (HTTP predict)", id="btn-deploy", className="button")],
                         className="row"),
                html.Div(id="notice-edge", className="notice"),
            ], className="col card"),
            html.Div([
                html.H3("Add a config"),
                field("hyperparameters (YAML/JSON)", dcc.Textarea(id="add-hparams", className="textarea small code",
                                                                  placeholder="lr: 0.002\nunits: 96")),
                html.Button("Add config", id="btn-add", className="button primary"),
                html.Div(id="notice-add", className="notice"),
                html.H3("Drill down from the selected config"),
                field("refined space (YAML/JSON, a subset of this workload's)",
                      dcc.Textarea(id="drill-space", className="textarea small code",
                                   value=_space_text(workload.search_space))),
                html.Div([field("procedure", dcc.Dropdown(
                              id="drill-procedure", clearable=False, options=list(DRILL_DOWN_PROCEDURES),
                              value=drill_down_procedure(workload.procedure, workload.search_space)), width="32%"),
                          field("epochs", dcc.Input(id="drill-epochs", type="number", min=1,
                                                    value=workload.max_epochs, className="input"), width="32%"),
                          field("configs (random/TPE)", dcc.Input(id="drill-configs", type="number", min=1, value=8,
                                                                  className="input"), width="32%")],
                         className="row"),
                html.Button("Drill down", id="btn-drill", className="button primary"),
                html.Div(id="notice-drill", className="notice"),
            ], className="col card"),
        ], className="two-col"),
        html.Div([
            html.Div([field("Curve metric", dcc.Dropdown(
                id="curve-metric", clearable=False, options=curve_metrics,
                value=view["metric"] if view.get("metric") in curve_metrics else metric),
                width="30%"),
                dcc.Checklist(id="curve-only-selected", value=[], options=[
                    {"label": " only the selected config (else it is highlighted among all)", "value": "only"}])],
                className="row bottom"),
            dcc.Graph(id="graph-curves", config=GRAPH_CONFIG),
        ], className="card"),
        html.Div([field("Compare configs", dcc.Dropdown(id="compare-pick", multi=True, options=[],
                                                         placeholder="pick two or more configs"), width="60%"),
                  dcc.Link("Compare side by side", href="", id="compare-link", className="button secondary")],
                 className="row bottom card"),
        notes_card(),
        html.Div([dcc.Graph(id="graph-gantt", config=GRAPH_CONFIG)], className="card"),
        learnt_card(workload),
        html.Div([dcc.Graph(id="graph-parcoords", config=GRAPH_CONFIG)], className="card"),
        search_plots_card(),
        html.Div(id="children-links", className="summary"),
    ])


def view_from_query(query: dict[str, str]) -> dict:
    """The view state a URL's query keeps (``?config=12&metric=val_loss&sort=objective&dir=desc``), checked: what
    does not parse is left out, so a stale or hand-edited address still opens the page."""
    view: dict = {}
    if query.get("config", "").isdigit():
        view["config"] = int(query["config"])
    if query.get("metric"):
        view["metric"] = query["metric"]
    if query.get("sort"):
        view["sort_by"] = [{"column_id": query["sort"],
                            "direction": "desc" if query.get("dir") == "desc" else "asc"}]
    return view


def view_query(sort_by: list | None, **values: object) -> str:
    """The query string of a view state (the inverse of :func:`view_from_query`); empty values are left out."""
    from urllib.parse import urlencode

    items = {k: v for k, v in values.items() if v not in (None, "", [])}
    if sort_by:
        items["sort"], items["dir"] = sort_by[0]["column_id"], sort_by[0]["direction"]
    return "?" + urlencode(items) if items else ""


def config_page(config, workload, *, latest_checkpoint, pbt_source: int | None, clones: list[int],  # noqa: ANN001, PLR0913
                exports: list, events: list, notes: list) -> html.Div:
    """One config: its hyperparameters, every epoch's metrics, where its weights came from (clone source, the
    drill-down parent of its workload, the PBT source it exploited) and went (its clones), its newest checkpoint,
    exports, audit events and notes."""
    link = f"/workloads/{workload.id}"
    epochs: dict[int, dict] = {}
    for m in config.metrics:
        epochs.setdefault(m["epoch"], {})[m["name"]] = m["value"]
    names = sorted({n for values in epochs.values() for n in values})
    lineage = []
    if config.cloned_from_config_id is not None:
        lineage.append(html.Li(["cloned from ", dcc.Link(f"config {config.cloned_from_config_id}",
                                                         href=f"/configs/{config.cloned_from_config_id}",
                                                         id="config-clone-source")]))
    if pbt_source is not None:
        lineage.append(html.Li(["PBT exploit of ", dcc.Link(f"config {pbt_source}", href=f"/configs/{pbt_source}")]))
    if workload.parent_config_id is not None:
        lineage.append(html.Li(["its workload drills down from ", dcc.Link(
            f"config {workload.parent_config_id}", href=f"/configs/{workload.parent_config_id}",
            id="config-drill-parent"), f" of workload {workload.parent_workload_id}"]))
    lineage += [html.Li(["cloned into ", dcc.Link(f"config {c}", href=f"/configs/{c}")]) for c in clones]
    checkpoint = (f"newest checkpoint: epoch {latest_checkpoint.epoch + 1}, {latest_checkpoint.bytes} bytes, "
                  f"sha256 {latest_checkpoint.sha256[:12]}…" if latest_checkpoint else "no checkpoint yet")
    return html.Div([
        html.Div([dcc.Link("Workloads", href="/"), " / ", dcc.Link(workload.name, href=link, id="config-workload"),
                  " / ", html.Span(f"config {config.id}")], className="crumbs"),
        html.H1(f"Config {config.id}", id="config-title"),
        html.P(f"{config.status} · {config.epochs_done}/{workload.max_epochs} epochs · origin {config.origin} · "
               f"priority {config.priority} · version {config.version}" + (f" · error: {config.error}"
                                                                           if config.error else ""),
               className="summary"),
        html.Div([
            html.Div([html.H3("Hyperparameters"),
                      html.Table([html.Tr([html.Th(k), html.Td(str(v))]) for k, v in config.hparams.items()],
                                 id="config-hparams"),
                      html.H3("Lineage"),
                      html.Ul(lineage, id="config-lineage") if lineage else html.P("Trained from scratch; no clones."),
                      html.P(checkpoint, className="hint")], className="col card"),
            html.Div([html.H3("Exports"),
                      html.Ul([html.Li(f"export {e.id}: {e.quantization}, {e.bytes} bytes, TFLite accuracy "
                                       f"{e.tflite_accuracy if e.tflite_accuracy is not None else 'n/a'}")
                               for e in exports]) if exports else html.P("Not exported yet."),
                      html.H3("Notes"),
                      html.Div([note_item(n) for n in notes] or [html.P("No notes yet.", className="hint")])],
                     className="col card"),
        ], className="two-col"),
        html.H3("Every epoch"),
        dash_table.DataTable(id="config-epochs", columns=[{"name": "epoch", "id": "epoch"}] + [
            {"name": n, "id": n} for n in names],
            data=[{"epoch": e + 1, **{n: f"{v:.4g}" for n, v in values.items()}} for e, values in sorted(epochs.items())],
            page_size=50, **TABLE_STYLE),
        html.H3("Audit events"),
        dash_table.DataTable(id="config-events", columns=[{"name": c, "id": c} for c in ("at", "actor", "action",
                                                                                         "after")],
                             data=[{"at": e.at.isoformat(timespec="seconds"), "actor": e.actor, "action": e.action,
                                    "after": dumps(e.after) if e.after else ""} for e in events],
                             page_size=20, **TABLE_STYLE),
    ])


def compare_page(workload, configs: list, metric: str, figure) -> html.Div:  # noqa: ANN001
    """Configs of one workload side by side: each hyperparameter and latest metric in a row, a column per config,
    and their curves of the workload's objective."""
    hparams = sorted({k for c in configs for k in c.hparams})
    metrics = sorted({k for c in configs for k in c.latest_metrics if k != "epoch"})
    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))
    rows = [{"": "status", **{f"config {c.id}": c.status for c in configs}},
            {"": "epochs", **{f"config {c.id}": c.epochs_done for c in configs}},
            *({"": k, **{f"config {c.id}": cell(c.hparams.get(k)) for c in configs}} for k in hparams),
            *({"": k, **{f"config {c.id}": cell(c.latest_metrics.get(k)) for c in configs}} for k in metrics)]
    return html.Div([
        html.Div([dcc.Link("Workloads", href="/"), " / ", dcc.Link(workload.name, href=f"/workloads/{workload.id}"),
                  " / ", html.Span("compare")], className="crumbs"),
        html.H1(f"Compare configs {', '.join(str(c.id) for c in configs)}"),
        dash_table.DataTable(id="compare-table", columns=[{"name": "", "id": ""}] + [
            {"name": f"config {c.id}", "id": f"config {c.id}"} for c in configs], data=rows, **TABLE_STYLE),
        html.Div([dcc.Graph(id="compare-curves", figure=figure, config=GRAPH_CONFIG)], className="card"),
        html.P(f"Latest epoch's metrics; curves of {metric}.", className="hint"),
    ])


def notes_card() -> html.Div:
    """People's notes (Markdown) on the workload and on the selected config, and a box to add one."""
    return html.Div([
        html.H3("Notes"),
        html.Div(id="notes-list", className="notes"),
        field("note (Markdown: why you stopped, cloned or chose something)",
              dcc.Textarea(id="note-text", className="textarea small")),
        html.Div([dcc.RadioItems(id="note-about", value="workload", inline=True, options=[
                      {"label": " on this workload ", "value": "workload"},
                      {"label": " on the selected config", "value": "config"}]),
                  html.Button("Add note", id="btn-note", className="button secondary")], className="row"),
        html.Div(id="notice-note", className="notice"),
    ], className="card", id="notes-card")


def note_item(note) -> html.Div:  # noqa: ANN001
    """One note: who, when, about what, then its Markdown."""
    return html.Div([html.Div(f"{note.author} · {note.created_at.isoformat(timespec='minutes')} · "
                              f"{note.object_type} {note.object_id}", className="hint"),
                     dcc.Markdown(note.text, className="note-text")], className="note", id=f"note-{note.id}")


def learnt_card(workload) -> html.Div:  # noqa: ANN001
    """What the search learnt: hyperparameter importance, the Pareto front and its hypervolume per epoch (two or
    more objectives), and PBT's lineage (which config took whose weights at which epoch)."""
    multi = len(workload.objectives) >= 2
    graphs = [dcc.Graph(id="importance-graph", config=GRAPH_CONFIG)]
    if multi:
        graphs += [dcc.Graph(id="graph-front", config=GRAPH_CONFIG),
                   dcc.Graph(id="graph-hypervolume", config=GRAPH_CONFIG)]
    return html.Div([
        html.H3("What the search learnt"), *graphs,
        html.H3("Lineage (clones and PBT exploits: parent, then the configs that started from its weights)"),
        html.Div(id="lineage", className="lineage"),
    ], className="card", id="learnt-card")


def search_plots_card() -> html.Div:
    """How the search went: each config's objective in launch order with the best so far, and the objective
    against each hyperparameter (one panel each)."""
    return html.Div([
        html.H3("Optimisation history and slices"),
        html.Div([html.Div(dcc.Graph(id="graph-history", config=GRAPH_CONFIG), className="col"),
                  html.Div(dcc.Graph(id="graph-slices", config=GRAPH_CONFIG), className="col")],
                 className="two-col wrap-narrow"),
    ], className="card", id="search-plots-card")


def lineage_tree(configs: list[dict], decisions: list[dict]) -> html.Div:
    """Configs as a tree of weights: each clone under the config whose weights it started from, with the epoch of
    the exploit and the config it replaced (from the procedure's decisions)."""
    exploits = {d["result_config_id"]: d for d in decisions if d["kind"] == "exploit" and d["result_config_id"]}
    children: dict[int | None, list[dict]] = {}
    ids = {c["id"] for c in configs}
    for c in sorted(configs, key=lambda c: c["id"]):
        parent = c["cloned_from_config_id"] if c["cloned_from_config_id"] in ids else None
        children.setdefault(parent, []).append(c)
    if not any(parent is not None for parent in children):
        return html.Div(html.P("No clones or exploits yet: every config started from scratch."))

    def label(c: dict) -> list:
        text = f"config {c['id']} ({', '.join(f'{k}={v}' for k, v in c['hparams'].items())}) · {c['status']}"
        exploit = exploits.get(c["id"])
        if exploit is not None:
            epoch = re.search(r"@epoch(\d+)", exploit["key"])
            text += (f" · exploited config {exploit['source_config_id']}"
                     f"{f' at epoch {epoch.group(1)}' if epoch else ''}, replacing config {exploit['config_id']}")
        elif c["cloned_from_config_id"] is not None:
            text += f" · cloned from config {c['cloned_from_config_id']}"
        return [html.Span(text, id=f"lineage-{c['id']}")]

    def branch(parent: int | None) -> html.Ul:
        return html.Ul([html.Li([*label(c), *([branch(c["id"])] if c["id"] in children else [])])
                        for c in children.get(parent, [])])

    roots_with_children = [c for c in children.get(None, []) if c["id"] in children]
    return html.Div(html.Ul([html.Li([*label(c), branch(c["id"])]) for c in roots_with_children]))


def suggestions_card(workload) -> html.Div:  # noqa: ANN001
    """Advisor mode: what the workload's procedure suggests, each with its reason and Accept / Reject buttons."""
    return html.Div([
        html.H3(f"Suggestions from {workload.procedure} (advisor mode: nothing happens until you accept)"),
        html.Div(id="suggestions-panel", className="suggestions"),
        dcc.Store(id="suggestions-shown"),  # what the panel shows, so an unchanged list is not redrawn
        html.Div(id="notice-suggestions", className="notice"),
    ], className="card", id="suggestions-card")


def suggestion_item(suggestion) -> html.Div:  # noqa: ANN001
    """One suggestion: what, why, and either the buttons (pending) or who decided it."""
    head = [html.Strong(suggestion.summary), html.Span(f" · {suggestion.reason}", className="reason")]
    if suggestion.status == SuggestionStatus.PENDING:
        tail = [html.Button("Accept", id={"type": "suggestion-accept", "id": suggestion.id},
                            className="button primary small"),
                html.Button("Reject", id={"type": "suggestion-reject", "id": suggestion.id},
                            className="button small")]
    elif suggestion.status == SuggestionStatus.EXPIRED:
        found = f" (found when {suggestion.decided_by} accepted it)" if suggestion.decided_by else ""
        tail = [html.Span(f"expired: {suggestion.detail}{found}", className="decided expired")]
    else:
        tail = [html.Span(f"{suggestion.status} by {suggestion.decided_by}", className=f"decided {suggestion.status}")]
    return html.Div([html.Div(head), html.Div(tail, className="row")], className="suggestion",
                    id=f"suggestion-{suggestion.id}")


def _space_text(space: dict) -> str:
    import yaml

    return yaml.safe_dump(space, sort_keys=False, default_flow_style=None) if space else ""


def events_page() -> html.Div:
    """The audit log table (filled by the ``event_rows`` callback)."""
    return html.Div([
        html.H1("Audit log"),
        dash_table.DataTable(id="event-table", columns=[
            {"name": c, "id": c} for c in ("at", "actor", "action", "object", "before", "after")],
            data=[], sort_action="native", page_size=30, **TABLE_STYLE),
        html.Div(id="event-detail", className="card"),
    ])


def tensorboard_page(url: str | None) -> html.Div:
    """TensorBoard in an iframe, or a hint how to start it when it does not run."""
    if not url:
        return html.Div([html.H1("TensorBoard"),
                         html.P("TensorBoard is not running (start `hopper serve` without --no-tensorboard).")])
    return html.Div([html.H1("TensorBoard"),
                     html.P(["Event files of every config, one run per workload/config. ",
                             html.A("Open in a new tab", href=url, target="_blank")]),
                     html.Iframe(id="tensorboard-frame", src=url, className="tensorboard")])


def devices_page() -> html.Div:
    """Edge devices, profiles, profiling jobs and deployments (filled by ``device_tables``)."""
    return html.Div([
        html.H1("Edge devices"),
        html.P(["Agents started with ", html.Code("hopper edge-agent --server URL --token T --name NAME"),
                " register here, claim profiling jobs and report latency, size and memory."], className="summary"),
        dash_table.DataTable(id="device-table", columns=[
            {"name": c, "id": c} for c in ("id", "name", "status", "interpreter", "cpu", "cores", "memory",
                                           "last seen", "profiles")],
            data=[], sort_action="native", page_size=20, **{**TABLE_STYLE, "style_data_conditional": [
                {"if": {"filter_query": "{status} = offline"}, "color": "#777"},
                {"if": {"filter_query": "{status} = online"}, "fontWeight": "600"}]}),
        html.H2("Profiles"),
        dash_table.DataTable(id="profile-table", columns=[
            {"name": c, "id": c} for c in ("id", "device", "workload", "config", "export", "quantization",
                                           "p50 ms", "p95 ms", "bytes", "peak memory", "energy mJ", "runs", "at")],
            data=[], sort_action="native", page_size=25, **TABLE_STYLE),
        html.H2("Profiling jobs"),
        dash_table.DataTable(id="job-table", columns=[
            {"name": c, "id": c} for c in ("id", "export", "device", "status", "attempts", "claimed by", "error")],
            data=[], sort_action="native", page_size=15, **TABLE_STYLE),
        html.H2("Deployments"),
        html.P(["Model servers started with the Deploy button, ", html.Code("POST /api/v1/configs/ID/deploy"),
                " or ", html.Code("hopper serve-model CONFIG"), ". Each answers ",
                html.Code("POST <url>:predict"), " with JSON."], className="summary"),
        dash_table.DataTable(id="deployment-table", columns=[
            {"name": c, "id": c} for c in ("id", "name", "config", "format", "status", "url", "started", "stopped",
                                           "error")],
            data=[], row_selectable="single", sort_action="native", page_size=15, **TABLE_STYLE),
        html.Button("Stop the selected deployment", id="btn-stop-deployment", className="button"),
        html.Div(id="notice-deployment", className="notice"),
    ])


def pareto_page(workload, *, device: str | None = None, x: str = "latency") -> html.Div:  # noqa: ANN001
    """The front of a workload's exports; ``?device=NAME&x=latency|bytes`` in the URL preselects the axes."""
    return html.Div([
        dcc.Store(id="pareto-wl-id", data=workload.id),
        html.Div([dcc.Link("Workloads", href="/"), " / ", dcc.Link(workload.name, href=f"/workloads/{workload.id}"),
                  " / ", html.Span("Pareto front")], className="crumbs"),
        html.H1(f"Pareto front: {workload.name}"),
        html.P("Each point is a TFLite export: its interpreter accuracy against its latency on an edge device "
               "(or its size). Points on the front are coloured; dominated ones are grey. Click a point to see "
               "its config.", className="summary"),
        html.Div([
            field("x axis", dcc.Dropdown(id="pareto-x", value=x, clearable=False, options=[
                {"label": "latency p50 on a device (ms)", "value": "latency"},
                {"label": "model size (bytes)", "value": "bytes"}]), width="40%"),
            field("device", dcc.Dropdown(id="pareto-device", value=device, clearable=True,
                                         options=[device] if device else [], placeholder="device with most profiles"),
                  width="40%"),
        ], className="row"),
        html.Div([dcc.Graph(id="graph-pareto", config=GRAPH_CONFIG)], className="card"),
        html.Div(id="pareto-config", className="card"),
    ])


def not_found(message: str) -> html.Div:
    """The page for a URL (or object) that does not exist, with a way back."""
    return html.Div([html.H1("Not found"), html.P(message), dcc.Link("Back to workloads", href="/")])


def dumps(value: object) -> str:
    """Compact JSON for table cells (audit before/after values)."""
    return json.dumps(value, separators=(", ", ": "))
