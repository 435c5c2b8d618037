"""The Schedules page: workloads launched on a cron schedule, their next runs and run history, and a form to add
one. Layout and callbacks live together here (one page, one module); the callbacks are plain functions of a
``Services`` handle and their inputs, so tests call them directly, and ``register_schedule_callbacks`` wires them.
"""

from __future__ import annotations

from dash import Dash, Input, Output, State, dash_table, dcc, html, no_update

from hopper.engine.cron import local_time
from hopper.engine.errors import HopperError, ValidationError
from hopper.engine.services import Services
from hopper.engine.specs import parse_mapping_text
from hopper.rest.gate import require_editor
from hopper.webui.layout import TABLE_STYLE, field

ACTOR = "web"
EXAMPLE_SPEC = """name: nightly digits
model: mlp
dataset: digits
procedure: grid
space:
  lr: {type: choice, values: [0.001, 0.003]}
  units: 32
max_epochs: 2
# notify: {webhook: https://ci.example.com/hooks/hopper}
"""


def schedules_page() -> html.Div:
    """The schedules table (filled by ``schedule_rows``), the selected schedule's runs, and the add form."""
    return html.Div([
        html.H1("Schedules"),
        html.P(["Each schedule launches its workload spec whenever its cron expression matches, read in its time "
                "zone. The scheduler fires every due run exactly once; a run missed while it was down fires once "
                "when it is back. Same as ", html.Code('hopper schedule add "0 2 * * *" spec.yaml'), "."],
               className="summary"),
        dash_table.DataTable(id="schedule-table", columns=[
            {"name": c, "id": c} for c in ("id", "name", "cron", "time zone", "enabled", "next run", "created by")],
            data=[], row_selectable="single", sort_action="native", page_size=20, **TABLE_STYLE),
        html.Button("Enable / disable the selected schedule", id="btn-schedule-toggle", className="button"),
        html.Div(id="notice-schedule-toggle", className="notice"),
        html.H2("Runs of the selected schedule"),
        dash_table.DataTable(id="schedule-runs-table", columns=[
            {"name": c, "id": c, **({"presentation": "markdown"} if c == "workload" else {})}
            for c in ("run", "due", "status", "workload", "claimed by", "error")],
            data=[], sort_action="native", page_size=15, markdown_options={"link_target": "_self"},
            **{**TABLE_STYLE, "style_data_conditional": [{"if": {"filter_query": "{status} = failed"},
                                                          "color": "#b42318"}]}),
        html.H2("Add a schedule"),
        html.Div([
            field("Name", dcc.Input(id="sch-name", placeholder="default: the spec's name", className="input")),
            field("Cron expression", dcc.Input(id="sch-cron", value="0 2 * * *", className="input"),
                  "minute hour day month weekday: 0 2 * * * is every day at 02:00"),
            field("Time zone", dcc.Input(id="sch-tz", value="UTC", className="input"),
                  "an IANA name: UTC, Europe/Berlin, America/New_York"),
            field("Workload spec (YAML)", dcc.Textarea(id="sch-spec", value=EXAMPLE_SPEC, className="textarea"),
                  "checked now exactly as a launch would check it; notify.webhook gets a summary when it ends"),
            html.Button("Add schedule", id="sch-add", className="button primary"),
            html.Div(id="sch-notice", className="notice"),
        ], className="card"),
    ])


def _notice(exc: Exception) -> html.Span:
    if isinstance(exc, HopperError):
        where = f" [{exc.field}]" if exc.field else ""
        return html.Span(f"Error{where}: {exc.message}", className="error")
    return html.Span(f"Error: {exc}", className="error")


def schedule_rows(services: Services) -> list[dict]:
    """The schedules table: next run in the schedule's own time zone."""
    return [{"id": s.id, "name": s.name, "cron": s.cron, "time zone": s.timezone, "enabled": "yes" if s.enabled else "no",
             "next run": f"{local_time(s.next_run_at, s.timezone):%Y-%m-%d %H:%M %Z}" if s.enabled else "",
             "created by": s.created_by} for s in services.list_schedules()]


def schedule_run_rows(services: Services, selected: list | None) -> list[dict]:
    """The selected schedule's runs, newest first, each linking to the workload it launched."""
    if not selected:
        return []
    try:
        runs = services.list_schedule_runs(int(selected[0]))
    except HopperError:
        return []  # the schedule went away between the table's refresh and this one
    return [{"run": r.id, "due": f"{r.due_at:%Y-%m-%d %H:%M} UTC", "status": r.status,
             "workload": f"[{r.workload_id}](/workloads/{r.workload_id})" if r.workload_id else "",
             "claimed by": r.claimed_by, "error": (r.error or "").split("\n")[0][:300]} for r in runs]


def add_schedule(services: Services, name: str | None, cron: str | None, timezone: str | None,
                 spec_text: str | None) -> html.Span:
    """Add a schedule from the form; a bad cron, time zone or spec is a notice naming the field, and adds nothing."""
    try:
        spec = parse_mapping_text(spec_text, "spec")
        if not spec:
            raise ValidationError("the workload spec is empty", field="spec")
        info = services.add_schedule(cron or "", spec, timezone=(timezone or "UTC").strip(),
                                     name=(name or "").strip() or None, actor=require_editor(ACTOR))
    except HopperError as exc:
        return _notice(exc)
    return html.Span(f"schedule {info.id} ({info.name}) added: next run "
                     f"{local_time(info.next_run_at, info.timezone):%Y-%m-%d %H:%M %Z}", className="ok")


def toggle_schedule(services: Services, selected: list | None) -> html.Span:
    """Enable the selected schedule if it is disabled, disable it otherwise."""
    try:
        if not selected:
            raise ValidationError("select a schedule in the table first", field="schedule")
        schedule = services.get_schedule(int(selected[0]))
        info = services.set_schedule_enabled(schedule.id, not schedule.enabled, actor=require_editor(ACTOR))
    except HopperError as exc:
        return _notice(exc)
    return html.Span(f"schedule {info.id} ({info.name}): {'enabled' if info.enabled else 'disabled'}", className="ok")


def register_schedule_callbacks(app: Dash, services: Services) -> None:
    """Wire the page's functions to Dash; the notices as inputs redraw the tables right after a change."""
    app.callback(Output("schedule-table", "data"), Input("tick", "n_intervals"), Input("url", "pathname"),
                 Input("sch-notice", "children"), Input("notice-schedule-toggle", "children"))(
        lambda *_: schedule_rows(services))
    app.callback(Output("schedule-runs-table", "data"), Input("tick", "n_intervals"),
                 Input("schedule-table", "selected_row_ids"))(
        lambda _n, selected: schedule_run_rows(services, selected))
    app.callback(Output("sch-notice", "children"), Input("sch-add", "n_clicks"), State("sch-name", "value"),
                 State("sch-cron", "value"), State("sch-tz", "value"), State("sch-spec", "value"),
                 prevent_initial_call=True)(
        lambda n, *form: add_schedule(services, *form) if n else no_update)
    app.callback(Output("notice-schedule-toggle", "children"), Input("btn-schedule-toggle", "n_clicks"),
                 State("schedule-table", "selected_row_ids"), prevent_initial_call=True)(
        lambda n, selected: toggle_schedule(services, selected) if n else no_update)
