"""Dash callbacks: each reads the inputs, makes one services call, and shows the result or the error."""

from __future__ import annotations

import json
from typing import Any

import yaml
from dash import Dash, Input, Output, State, ctx, html, no_update

from hopper.engine.errors import HopperError, NotFound, ValidationError
from hopper.engine.services import Services
from hopper.engine.space import SearchSpace
from hopper.engine.specs import parse_mapping_text as parse_mapping
from hopper.webui import figures, layout


def ok(message: str) -> html.Span:
    return html.Span(message, className="ok")


def error(exc: Exception) -> html.Span:
    if isinstance(exc, HopperError):
        where = f" [{exc.field}]" if exc.field else ""
        return html.Span(f"Error{where}: {exc.message}", className="error")
    return html.Span(f"Error: {exc}", className="error")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def register(app: Dash, services: Services, tensorboard_url: Any) -> None:  # noqa: C901 - one place for all wiring
    @app.callback(Output("page", "children"), Input("url", "pathname"), State("url", "search"))
    def route(pathname: str | None, search: str | None = None):  # noqa: ANN202
        path = (pathname or "/").rstrip("/") or "/"
        if path == "/":
            return layout.workloads_page(services.list_datasets(), services.list_scripts(valid_only=True))
        if path == "/events":
            return layout.events_page()
        if path == "/devices":
            return layout.devices_page()
        if path.startswith("/workloads/") and path.endswith("/pareto") and path.split("/")[2].isdigit():
            try:
                from urllib.parse import parse_qs

                query = {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items()}
                return layout.pareto_page(services.get_workload(int(path.split("/")[2])), device=query.get("device"),
                                          x=query.get("x") if query.get("x") in ("latency", "bytes") else "latency")
            except NotFound as exc:
                return layout.not_found(exc.message)
        if path == "/tensorboard":
            return layout.tensorboard_page(tensorboard_url())
        if path.startswith("/workloads/") and path.rsplit("/", 1)[-1].isdigit():
            try:
                workload = services.get_workload(int(path.rsplit("/", 1)[-1]))
            except NotFound as exc:
                return layout.not_found(exc.message)
            parent = services.get_workload(workload.parent_workload_id) if workload.parent_workload_id else None
            return layout.detail_page(workload, parent)
        return layout.not_found(f"There is no page at {path}.")

    # -- workloads page ----------------------------------------------------------------------------------
    @app.callback(Output("workload-table", "data"), Input("tick", "n_intervals"), Input("url", "pathname"))
    def refresh_workloads(_n, _path):  # noqa: ANN001, ANN202
        rows = []
        for w in services.list_workloads():
            counts = w.config_counts
            total = sum(counts.values())
            finished = counts.get("done", 0) + counts.get("failed", 0) + counts.get("stopped", 0)
            best = f"{w.best['metric']} {w.best['value']:.4f} (config {w.best['config_id']})" if w.best else ""
            rows.append({"id": w.id, "link": f"[{_md(w.name)}](/workloads/{w.id})", "status": w.status,
                         "procedure": w.procedure, "model_ref": w.model_ref,
                         "progress": f"{finished}/{total} configs finished", "best": best})
        return rows

    @app.callback(Output("wiz-space", "value"), Input("row-add", "n_clicks"),
                  State("row-name", "value"), State("row-type", "value"), State("row-values", "value"),
                  State("wiz-space", "value"), prevent_initial_call=True)
    def add_space_row(n_clicks, name, kind, values, text):  # noqa: ANN001, ANN202
        if not n_clicks or not name or values in (None, ""):
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

    @app.callback(Output("wiz-space-feedback", "children"), Input("wiz-space", "value"),
                  Input("wiz-procedure", "value"))
    def validate_space(text, procedure):  # noqa: ANN001, ANN202
        try:
            space = SearchSpace.parse(parse_mapping(text, "space"))
            if procedure == "grid":
                return ok(f"valid: {space.grid_size()} grid points")
            return ok(f"valid: {len(space.names())} parameters")
        except HopperError as exc:
            return error(exc)

    @app.callback(Output("wiz-notice", "children"), Output("url", "pathname", allow_duplicate=True),
                  Input("wiz-launch", "n_clicks"),
                  State("wiz-name", "value"), State("wiz-description", "value"), State("wiz-model", "value"),
                  State("wiz-dataset", "value"), State("wiz-procedure", "value"), State("wiz-space", "value"),
                  State("wiz-epochs", "value"), State("wiz-configs", "value"), State("wiz-metric", "value"),
                  State("wiz-direction", "value"), prevent_initial_call=True)
    def launch(n_clicks, name, description, model, dataset, procedure, space, epochs, configs, metric, direction):  # noqa: ANN001, ANN202, PLR0913
        if not n_clicks:
            return no_update, no_update
        try:
            spec: dict[str, Any] = {
                "name": name or "", "description": description or "", "dataset": dataset or "",
                "procedure": procedure, "space": parse_mapping(space, "space") or None,
                "objectives": [{"metric": metric or "", "direction": direction}], "max_epochs": epochs or 0,
            }
            if procedure in ("random", "tpe") or (procedure == "grid" and configs and configs < 1):
                spec["max_configs"] = configs
            if model and model.startswith("script:"):
                spec["script"] = int(model.split(":", 1)[1])
            else:
                spec["model"] = model
            workload = services.launch_workload(spec, actor="web")
            return ok(f"workload {workload.id} launched"), f"/workloads/{workload.id}"
        except HopperError as exc:
            return error(exc), no_update

    @app.callback(Output("ds-notice", "children"), Input("ds-register", "n_clicks"),
                  State("ds-name", "value"), State("ds-path", "value"), State("ds-features", "value"),
                  State("ds-label", "value"), prevent_initial_call=True)
    def register_dataset(n_clicks, name, path, features, label):  # noqa: ANN001, ANN202
        if not n_clicks:
            return no_update
        try:
            info = services.register_dataset({
                "name": name or "", "path": path or "", "label_column": label or None,
                "feature_columns": [f.strip() for f in features.split(",")] if features else None}, actor="web")
            return ok(f"dataset {info.name}: {info.n_rows} rows, {info.partition_count} partitions "
                      "(reload to pick it in the wizard)")
        except HopperError as exc:
            return error(exc)

    # -- workload detail -----------------------------------------------------------------------------------
    @app.callback(Output("cfg-table", "data"), Output("wl-summary", "children"), Output("graph-gantt", "figure"),
                  Output("graph-parcoords", "figure"), Output("children-links", "children"),
                  Input("tick", "n_intervals"), Input("wl-id", "data"))
    def refresh_detail(_n, workload_id):  # noqa: ANN001, ANN202
        workload = services.get_workload(workload_id)
        configs = [c.to_dict() for c in services.list_configs(workload_id)]
        metric = workload.objectives[0]["metric"]
        rows = [{"id": c["id"], "status": c["status"], "priority": c["priority"], "epochs_done": c["epochs_done"],
                 "origin": c["origin"], "version": c["version"],
                 "hparams_text": ", ".join(f"{k}={_fmt(v)}" for k, v in c["hparams"].items()),
                 "objective": _fmt(c["latest_metrics"].get(metric, "")),
                 "val_loss": _fmt(c["latest_metrics"].get("val_loss", ""))} for c in configs]
        counts = ", ".join(f"{n} {s}" for s, n in sorted(workload.config_counts.items()))
        best = (f"best {metric} {workload.best['value']:.4f} (config {workload.best['config_id']})"
                if workload.best else "no results yet")
        summary = (f"{workload.status} · {workload.procedure} · model {workload.model_ref} · "
                   f"{workload.max_epochs} epochs · {counts or 'no configs yet'} · {best}")
        children = services.child_workloads(workload_id)
        links = [html.Span("Drill-downs: ")] + [html.A(f"{name} ", href=f"/workloads/{child_id}",
                                                       className="child-link") for child_id, name in children] \
            if children else []
        sub_epochs = [s.to_dict() for s in services.list_sub_epochs(workload_id, limit=5000)]
        return (rows, summary, figures.gantt(sub_epochs),
                figures.parallel_coordinates(configs, metric, workload.objectives[0]["direction"]), links)

    @app.callback(Output("graph-curves", "figure"), Input("tick", "n_intervals"), Input("wl-id", "data"),
                  Input("curve-metric", "value"), Input("cfg-table", "selected_row_ids"))
    def refresh_curves(_n, workload_id, metric, selected):  # noqa: ANN001, ANN202
        metrics = services.workload_metrics(workload_id, metric)
        series = {cid: [(m["epoch"], m["value"]) for m in rows] for cid, rows in metrics.items()}
        if selected:
            series = {cid: pts for cid, pts in series.items() if cid in selected} or series
        return figures.learning_curves(series, metric)

    def _selected(selected: list | None) -> int:
        if not selected:
            raise ValidationError("select a config in the table first", field="config")
        return int(selected[0])

    @app.callback(Output("notice-actions", "children"), Input("btn-stop", "n_clicks"),
                  Input("btn-resume", "n_clicks"), Input("btn-prio", "n_clicks"),
                  State("cfg-table", "selected_row_ids"), State("prio-value", "value"), prevent_initial_call=True)
    def config_action(stops, resumes, priorities, selected, priority):  # noqa: ANN001, ANN202
        if not (stops or resumes or priorities):
            return no_update
        try:
            config_id = _selected(selected)
            if ctx.triggered_id == "btn-stop":
                info = services.stop_config(config_id, actor="web")
                return ok(f"config {config_id}: {info.status} (takes effect after its running sub-epoch)")
            if ctx.triggered_id == "btn-resume":
                info = services.resume_config(config_id, actor="web")
                return ok(f"config {config_id}: {info.status}, continues after epoch {info.epochs_done}")
            info = services.set_priority(config_id, int(priority or 0), actor="web")
            return ok(f"config {config_id}: priority {info.priority}")
        except HopperError as exc:
            return error(exc)

    @app.callback(Output("notice-clone", "children"), Input("btn-clone", "n_clicks"),
                  State("cfg-table", "selected_row_ids"), State("clone-lr", "value"), State("clone-bs", "value"),
                  State("clone-extra", "value"), prevent_initial_call=True)
    def clone(n_clicks, selected, lr, batch_size, extra):  # noqa: ANN001, ANN202
        if not n_clicks:
            return no_update
        try:
            config_id = _selected(selected)
            overrides = parse_mapping(extra, "overrides")
            if lr not in (None, ""):
                overrides["lr"] = float(lr)
            if batch_size not in (None, ""):
                overrides["batch_size"] = int(batch_size)
            info = services.clone_config(config_id, overrides, actor="web")
            return ok(f"config {info.id} cloned from {config_id} with its weights"
                      + (f" ({', '.join(f'{k}={v}' for k, v in overrides.items())})" if overrides else ""))
        except HopperError as exc:
            return error(exc)

    @app.callback(Output("notice-edge", "children"), Input("btn-export", "n_clicks"), Input("btn-deploy", "n_clicks"),
                  State("cfg-table", "selected_row_ids"), State("export-profile", "value"), prevent_initial_call=True)
    def edge_action(exports, deploys, selected, profile):  # noqa: ANN001, ANN202
        if not (exports or deploys):
            return no_update
        try:
            config_id = _selected(selected)
            if ctx.triggered_id == "btn-export":
                # Only a request row: the export worker converts it in a child process (no TensorFlow here).
                request = services.request_export(config_id, profile="profile" in (profile or []), actor="web")
                text = (f"export request {request['id']} for config {config_id} queued (float32 + int8); "
                        "the exports appear on the Pareto page (size axis) once converted")
                if request["profile"]:
                    online = any(d["status"] == "online" for d in services.list_devices())
                    text += (", and on the latency axis once profiled by the online edge devices" if online else
                             "; no edge device is online, so nothing will profile them: start `hopper edge-agent`")
                return ok(text)
            from hopper.edge_deploy.launch import launch_deployment

            row = launch_deployment(services, config_id, actor="web")
            return ok(f"deployment {row['id']} ({row['name']}) starting: POST /v1/models/{row['name']}:predict "
                      f"on the port listed by GET /api/v1/deployments/{row['id']}")
        except HopperError as exc:
            return error(exc)

    @app.callback(Output("notice-add", "children"), Input("btn-add", "n_clicks"), State("wl-id", "data"),
                  State("add-hparams", "value"), prevent_initial_call=True)
    def add_config(n_clicks, workload_id, text):  # noqa: ANN001, ANN202
        if not n_clicks:
            return no_update
        try:
            info = services.add_config(workload_id, parse_mapping(text, "hparams"), actor="web")
            return ok(f"config {info.id} queued")
        except HopperError as exc:
            return error(exc)

    @app.callback(Output("notice-drill", "children"), Input("btn-drill", "n_clicks"),
                  State("cfg-table", "selected_row_ids"), State("drill-space", "value"),
                  State("drill-procedure", "value"), State("drill-epochs", "value"), prevent_initial_call=True)
    def drill_down(n_clicks, selected, space, procedure, epochs):  # noqa: ANN001, ANN202
        if not n_clicks:
            return no_update
        try:
            config_id = _selected(selected)
            child = services.drill_down(config_id, parse_mapping(space, "space"), procedure=procedure,
                                        max_epochs=int(epochs) if epochs else None, actor="web")
            return html.Span(["child workload ", html.A(f"{child.id}: {child.name}", href=f"/workloads/{child.id}",
                                                        id="child-link"), " launched"], className="ok")
        except HopperError as exc:
            return error(exc)

    # -- edge: devices and the Pareto front ----------------------------------------------------------------
    @app.callback(Output("device-table", "data"), Output("profile-table", "data"), Output("job-table", "data"),
                  Output("deployment-table", "data"), Input("tick", "n_intervals"), Input("url", "pathname"),
                  Input("notice-deployment", "children"))
    def refresh_devices(_n, _path, _stopped):  # noqa: ANN001, ANN202 - the last input: redraw right after a stop
        profiles = services.list_profiles(limit=500)
        devices = []
        for d in services.list_devices():
            hw = d["hardware"]
            memory = hw.get("memory_bytes")
            devices.append({"id": d["id"], "name": d["name"], "status": d["status"], "interpreter":
                            f"{d['interpreter']} {hw.get('interpreter_version') or ''}".strip(),
                            "cpu": hw.get("cpu", ""), "cores": hw.get("cores", ""),
                            "memory": f"{memory / 2**30:.1f} GiB" if memory else "",
                            "last seen": f"{d['seconds_since_seen']:.0f} s ago",
                            "profiles": sum(p["device_id"] == d["id"] for p in profiles)})
        rows = [{"id": p["id"], "device": p["device"], "workload": p["workload_id"], "config": p["config_id"],
                 "export": p["export_id"], "quantization": p["quantization"], "p50 ms": _fmt(p["latency_p50_ms"]),
                 "p95 ms": _fmt(p["latency_p95_ms"]), "bytes": p["size_bytes"],
                 "peak memory": p["peak_memory_bytes"] if p["peak_memory_bytes"] is not None else "",
                 "energy mJ": _fmt(p["energy_mj"]) if p["energy_mj"] is not None else "n/a", "runs": p["runs"],
                 "at": p["created_at"][:19]} for p in profiles]
        names = {d["id"]: d["name"] for d in devices}
        jobs = [{"id": j["id"], "export": j["export_id"], "device": names.get(j["device_id"], "any"),
                 "status": j["status"], "attempts": f"{j['attempts']}/{j['max_attempts']}",
                 "claimed by": names.get(j["claimed_by"], ""), "error": j["error"] or ""}
                for j in services.list_jobs(limit=200)]
        deployments = [{"id": d["id"], "name": d["name"], "config": d["config_id"], "format": d["format"],
                        "status": d["status"], "url": f"{d['url']}:predict" if d["url"] else "",
                        "started": d["started_at"][:19], "stopped": (d["stopped_at"] or "")[:19],
                        "error": d["error"] or ""} for d in services.list_deployments()]
        return devices, rows, jobs, deployments

    @app.callback(Output("notice-deployment", "children"), Input("btn-stop-deployment", "n_clicks"),
                  State("deployment-table", "selected_row_ids"), prevent_initial_call=True)
    def stop_deployment(n_clicks, selected):  # noqa: ANN001, ANN202
        from hopper.edge_deploy.launch import stop_deployment as stop

        if not n_clicks:
            return no_update
        try:
            if not selected:
                raise ValidationError("select a deployment in the table first", field="deployment")
            row = stop(services, int(selected[0]))
            return ok(f"deployment {row['id']} ({row['name']}): {row['status']}")
        except HopperError as exc:
            return error(exc)

    @app.callback(Output("graph-pareto", "figure"), Output("pareto-device", "options"),
                  Input("tick", "n_intervals"), Input("pareto-wl-id", "data"), Input("pareto-x", "value"),
                  Input("pareto-device", "value"))
    def refresh_pareto(_n, workload_id, x, device):  # noqa: ANN001, ANN202
        document = services.pareto(workload_id, x=x or "latency", device=device or None)
        return figures.pareto(document), document["devices"]

    @app.callback(Output("pareto-config", "children"), Input("graph-pareto", "clickData"),
                  State("pareto-wl-id", "data"), prevent_initial_call=True)
    def show_pareto_config(click, workload_id):  # noqa: ANN001, ANN202
        if not click or not click.get("points") or "customdata" not in click["points"][0]:
            return no_update
        config_id, export_id, quantization = click["points"][0]["customdata"]
        try:
            config = services.get_config(int(config_id))
        except HopperError as exc:
            return error(exc)
        edge = {k: v for k, v in config.latest_metrics.items() if "@" in k or k.startswith("model_bytes")}
        profiles = [p for p in services.list_profiles(config_id=config.id) if p["export_id"] == export_id]
        return html.Div([
            html.H3(["Config ", html.A(str(config.id), href=f"/workloads/{workload_id}", id="pareto-config-link"),
                     f" · export {export_id} ({quantization})"]),
            html.P(f"{config.status}, {config.epochs_done} epochs · " +
                   ", ".join(f"{k}={_fmt(v)}" for k, v in config.hparams.items())),
            html.P("metrics: " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(config.latest_metrics.items())
                                           if k not in edge)),
            html.P("edge: " + (", ".join(f"{k}={_fmt(v)}" for k, v in sorted(edge.items())) or "not profiled")),
            html.Ul([html.Li(f"{p['device']}: p50 {p['latency_p50_ms']:.4f} ms, p95 {p['latency_p95_ms']:.4f} ms, "
                             f"{p['size_bytes']} bytes") for p in profiles]),
        ], id="pareto-config-detail")

    # -- audit log -----------------------------------------------------------------------------------------
    @app.callback(Output("event-table", "data"), Input("tick", "n_intervals"), Input("url", "pathname"))
    def refresh_events(_n, _path):  # noqa: ANN001, ANN202
        return [{"at": e.at.isoformat(timespec="seconds"), "actor": e.actor, "action": e.action,
                 "object": f"{e.object_type} {e.object_id}", "before": layout.dumps(e.before) if e.before else "",
                 "after": layout.dumps(e.after) if e.after else ""} for e in services.list_events(limit=500)]


def _md(text: str) -> str:
    return "".join("\\" + ch if ch in "[]()*_`\\" else ch for ch in text)
