"""Page layouts. Pure functions of services' plain objects; callbacks fill the live parts."""

from __future__ import annotations

import json
import re

from dash import dash_table, dcc, html

from hopper.engine.catalog import ROSTER
from hopper.engine.procedure_guide import COMMON_OPTIONS, GUIDES
from hopper.engine.status import SuggestionStatus
from hopper.webui import sharing

REFRESH_MS = 2000
EXAMPLE_SPACE = """lr: {type: choice, values: [0.001, 0.003]}
units: {type: choice, values: [64, 128]}
batch_size: 32
"""

TABLE_STYLE = {
    "style_table": {"overflowX": "auto"},
    "style_cell": {"fontFamily": "system-ui, sans-serif", "fontSize": "13px", "padding": "6px 8px",
                   "textAlign": "left", "maxWidth": "340px", "overflow": "hidden", "textOverflow": "ellipsis"},
    "style_header": {"fontWeight": "600", "backgroundColor": "#f3f5f8", "borderBottom": "2px solid #d0d7de"},
    "style_data_conditional": [
        {"if": {"filter_query": "{status} = failed"}, "color": "#b42318"},
        {"if": {"filter_query": "{status} = stopped"}, "color": "#777"},
        {"if": {"filter_query": "{status} = running"}, "fontWeight": "600"},
        {"if": {"state": "selected"}, "backgroundColor": "#e8f0fe", "border": "1px solid #4c78a8"},
    ],
}


def field(label: str, control, hint: str | None = None, width: str = "100%") -> html.Div:  # noqa: ANN001
    """A labelled form control with an optional hint; one look for every form box."""
    children = [html.Label(label, className="field-label"), control]
    if hint:
        children.append(html.Div(hint, className="hint"))
    return html.Div(children, className="field", style={"width": width})


def shell(token_required: bool) -> html.Div:
    """The page frame: navigation, the URL and the refresh tick; pages render into ``#page``."""
    nav = [dcc.Link("Workloads", href="/", className="nav-link"),
           dcc.Link("Devices", href="/devices", className="nav-link"),
           dcc.Link("Audit log", href="/events", className="nav-link"),
           dcc.Link("TensorBoard", href="/tensorboard", className="nav-link"),
           html.A("REST API", href="/api/docs", className="nav-link", target="_blank")]
    if token_required:
        nav.append(html.A("Log out", href="/logout", className="nav-link right"))
    return html.Div([
        dcc.Location(id="url"),
        dcc.Interval(id="tick", interval=REFRESH_MS),
        html.Header([html.Span("Hopper", className="brand"),
                     html.Span("model selection you can steer", className="tagline"), html.Nav(nav)],
                    className="topbar"),
        html.Main(id="page", className="page"),
    ])


def workloads_page(datasets: list, scripts: list) -> html.Div:
    """The workloads list, the launch wizard and the dataset form."""
    model_options = [{"label": f"{name} (roster)", "value": name} for name in ROSTER]
    model_options += [{"label": f"script {s.id}: {s.name}", "value": f"script:{s.id}"} for s in scripts if s.valid]
    return html.Div([
        html.H1("Workloads"),
        dash_table.DataTable(
            id="workload-table", columns=[
                {"name": "id", "id": "id"}, {"name": "name", "id": "link", "presentation": "markdown"},
                {"name": "status", "id": "status"}, {"name": "procedure", "id": "procedure"},
                {"name": "model", "id": "model_ref"}, {"name": "progress", "id": "progress"},
                {"name": "best", "id": "best"}, {"name": "error", "id": "error"}],
            data=[], sort_action="native", page_size=20, markdown_options={"link_target": "_self"}, **TABLE_STYLE),
        html.H2("Launch a workload"),
        html.Div([
            html.Div([
                field("Name", dcc.Input(id="wiz-name", placeholder="e.g. digits grid", className="input")),
                field("Description", dcc.Textarea(id="wiz-description", className="textarea small")),
                field("Model", dcc.Dropdown(id="wiz-model", options=model_options, value="mlp", clearable=False),
                      "a roster model, or a script you uploaded and Hopper validated"),
                field("Dataset", dcc.Dropdown(id="wiz-dataset", options=[
                    {"label": f"{d.name} ({d.n_rows} rows, {d.task}, features {tuple(d.feature_shape)}, "
                              f"label {d.label_column})", "value": d.name} for d in datasets],
                    value=datasets[0].name if datasets else None)),
                html.Div([
                    field("Procedure", dcc.Dropdown(id="wiz-procedure", clearable=False, value="grid", options=[
                        {"label": g.name, "title": g.summary, "value": g.name} for g in GUIDES.values()]),
                        width="32%"),
                    field("Max epochs", dcc.Input(id="wiz-epochs", type="number", min=1, value=3,
                                                  className="input"), width="32%"),
                    field("Configs (all but grid/manual/PBT)", dcc.Input(id="wiz-configs", type="number", min=1,
                                                                         value=8, className="input"), width="32%"),
                ], className="row"),
                html.Div(procedure_fields("grid"), id="wiz-proc-fields"),
                dcc.Checklist(id="wiz-advisor", value=[], options=[
                    {"label": " Advisor mode: the procedure suggests stops, pauses, promotions and exploits; "
                              "people accept or reject each", "value": "advisor"}]),
                html.Div(id="wiz-proc-feedback", className="feedback"),
                html.Div([
                    field("Objective metric", dcc.Input(id="wiz-metric", value="val_accuracy", className="input"),
                          width="49%"),
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
                                                                 className="textarea code")),
                html.Div(id="wiz-space-feedback", className="feedback"),
                field("Script entry options (YAML: entry_args, bind_globals)", dcc.Textarea(
                    id="wiz-entry", placeholder="entry_args: {num_classes: 10}\nbind_globals: {x_train: x}",
                    className="textarea code")),
                html.Button("Launch", id="wiz-launch", className="button primary"),
                html.Div(id="wiz-notice", className="notice"),
            ], className="col"),
        ], className="two-col card"),
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


def detail_page(workload, parent) -> html.Div:  # noqa: ANN001
    """One workload: its configs, charts and the steering controls (stop, clone, drill down, edge)."""
    crumbs = [dcc.Link("Workloads", href="/"), " / "]
    if parent is not None:
        crumbs += [dcc.Link(f"{parent.name}", href=f"/workloads/{parent.id}", id="crumb-parent"), " / "]
    crumbs.append(html.Span(workload.name))
    crumbs += [" · ", dcc.Link("Pareto front (edge)", href=f"/workloads/{workload.id}/pareto", id="pareto-link")]
    metric = workload.objectives[0]["metric"]
    return html.Div([
        dcc.Store(id="wl-id", data=workload.id),
        html.Div(crumbs, className="crumbs"),
        html.H1(workload.name, id="wl-title"),
        html.Div(id="wl-summary", className="summary"),
        sharing.controls_card(workload),
        *([suggestions_card(workload)] if workload.advisor else []),
        dash_table.DataTable(
            id="cfg-table", columns=[
                {"name": "id", "id": "id"}, {"name": "status", "id": "status"},
                {"name": "priority", "id": "priority"}, {"name": "epochs", "id": "epochs_done"},
                {"name": "origin", "id": "origin"}, {"name": "hparams", "id": "hparams_text"},
                {"name": metric, "id": "objective"}, {"name": "val_loss", "id": "val_loss"},
                # epsilon only means something for a private workload; elsewhere it would be an empty column
                *([{"name": "epsilon", "id": "epsilon"}] if workload.privacy else []),
                {"name": "version", "id": "version"}],
            data=[], row_selectable="single", sort_action="native", page_size=15,
            tooltip_duration=None, **TABLE_STYLE),
        html.Div([
            html.Div([
                html.H3("Selected config"),
                html.Div([html.Button("Stop", id="btn-stop", className="button"),
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
                html.Div([field("procedure", dcc.Dropdown(id="drill-procedure", value="grid", clearable=False,
                                                          options=["grid", "random", "tpe"]), width="48%"),
                          field("epochs", dcc.Input(id="drill-epochs", type="number", min=1,
                                                    value=workload.max_epochs, className="input"), width="48%")],
                         className="row"),
                html.Button("Drill down", id="btn-drill", className="button primary"),
                html.Div(id="notice-drill", className="notice"),
            ], className="col card"),
        ], className="two-col"),
        html.Div([
            html.Div([field("Curve metric", dcc.Dropdown(
                id="curve-metric", value=metric, clearable=False,
                options=["val_accuracy", "val_loss", "train_accuracy", "train_loss", "epoch_seconds",
                         *(["epsilon"] if workload.privacy else [])]),
                width="30%")],
                className="row"),
            dcc.Graph(id="graph-curves", config={"displaylogo": False}),
        ], className="card"),
        html.Div([dcc.Graph(id="graph-gantt", config={"displaylogo": False})], className="card"),
        learnt_card(workload),
        html.Div([dcc.Graph(id="graph-parcoords", config={"displaylogo": False})], className="card"),
        html.Div(id="children-links", className="summary"),
    ])


def learnt_card(workload) -> html.Div:  # noqa: ANN001
    """What the search learnt: hyperparameter importance, the Pareto front and its hypervolume per epoch (two or
    more objectives), and PBT's lineage (which config took whose weights at which epoch)."""
    multi = len(workload.objectives) >= 2
    graphs = [dcc.Graph(id="graph-importance", config={"displaylogo": False})]
    if multi:
        graphs += [dcc.Graph(id="graph-front", config={"displaylogo": False}),
                   dcc.Graph(id="graph-hypervolume", config={"displaylogo": False})]
    return html.Div([
        html.H3("What the search learnt"), *graphs,
        html.H3("Lineage (clones and PBT exploits: parent, then the configs that started from its weights)"),
        html.Div(id="lineage", className="lineage"),
    ], className="card", id="learnt-card")


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
        html.Div([dcc.Graph(id="graph-pareto", config={"displaylogo": False})], className="card"),
        html.Div(id="pareto-config", className="card"),
    ])


def not_found(message: str) -> html.Div:
    """The page for a URL (or object) that does not exist, with a way back."""
    return html.Div([html.H1("Not found"), html.P(message), dcc.Link("Back to workloads", href="/")])


def dumps(value: object) -> str:
    """Compact JSON for table cells (audit before/after values)."""
    return json.dumps(value, separators=(", ", ": "))
