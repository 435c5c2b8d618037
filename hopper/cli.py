"""The ``hopper`` command: every user action, with tables, progress and one-line errors."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hopper.engine.errors import HopperError, ValidationError
from hopper.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)


def _settings() -> Settings:
    return click.get_current_context().obj["settings"]


def _services(check_schema: bool = True):  # noqa: ANN202
    from hopper.app import open_services

    return open_services(_settings(), check_schema=check_schema)


def _handle_errors(fn: Callable) -> Callable:
    """Turn Hopper errors into a one-line message and the error's exit code (no tracebacks)."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HopperError as exc:
            where = escape(f" [{exc.field}]") if exc.field else ""
            err_console.print(f"[bold red]error{where}:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            details = getattr(exc, "details", "")
            if details:
                err_console.print(details, highlight=False, markup=False)
            sys.exit(exc.exit_code)
    return wrapper


def _parse_assignments(pairs: tuple[str, ...], option: str = "--set") -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValidationError(f"{option} takes KEY=VALUE, got {pair!r}", field=option)
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def _load_json_or_file(text: str, what: str) -> dict:
    from hopper.engine.specs import load_spec_file, parse_mapping_text

    candidate = Path(text)
    if candidate.suffix.lower() in (".yaml", ".yml", ".json") or candidate.is_file():
        return load_spec_file(candidate)
    data = parse_mapping_text(text, what)
    if not data:
        raise ValidationError(f"{what} is empty", field=what)
    return data


def _fmt(value: Any) -> str:
    """Compact text for a table cell, escaped so user strings are never read as rich markup."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return " ".join(f"{escape(str(k))}={_fmt(v)}" for k, v in value.items())
    return "" if value is None else escape(str(value))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
@click.version_option(package_name="hopper-ms")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Hopper: steer deep-learning model selection while it runs.

    Settings come from hopper.toml and HOPPER_* variables (HOPPER_HOME, HOPPER_DATABASE_URL,
    HOPPER_DATA_ROOTS, HOPPER_WORKERS, ...).

    \b
    Exit codes: 0 ok, 1 other error, 2 invalid input, 3 not found, 4 version conflict,
    5 wrong state, 6 store not migrated, 7 store unreachable, 10 another scheduler holds
    this store (the message names its host, pid and start), 11 too busy (a queue or
    per-actor limit is full; retry later); `submit --wait`: 12 the workload failed,
    13 it ended otherwise (budget spent).
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ctx.obj = {"settings": load_settings()}


# -- database -----------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Create and migrate the config store."""


@db.command("upgrade")
@click.argument("revision", default="head")
@_handle_errors
def db_upgrade(revision: str) -> None:
    """Migrate the store to REVISION (default: the newest)."""
    services = _services(check_schema=False)
    services.store.upgrade(revision)
    console.print(f"config store at revision {services.store.current_revision()} ({services.store._safe_url()})")


@db.command("downgrade")
@click.argument("revision", default="base")
@_handle_errors
def db_downgrade(revision: str) -> None:
    """Migrate the store down to REVISION (default: empty)."""
    services = _services(check_schema=False)
    services.store.downgrade(revision)
    console.print(f"config store at revision {services.store.current_revision()}")


@db.command("current")
@_handle_errors
def db_current() -> None:
    """Show the store's revision and whether it is up to date."""
    services = _services(check_schema=False)
    current, head = services.store.current_revision(), services.store.head_revision()
    console.print(f"current: {current}  head: {head}  {'up to date' if current == head else 'run hopper db upgrade'}")


# -- datasets -----------------------------------------------------------------------------------
@main.group()
def dataset() -> None:
    """Register and list datasets."""


@dataset.command("register")
@click.argument("name")
@click.argument("path")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "npz", "image_folder"]), default=None)
@click.option("--features", default=None, help="Comma-separated feature columns (default: all but the label).")
@click.option("--label", default=None, help="Label column (default: the last column / 'y'); comma-separated columns "
              "for k values per row (one-hot, multi-label, multi-output regression).")
@click.option("--task", type=click.Choice(["classification", "regression"]), default=None)
@click.option("--label-kind", type=click.Choice(["sparse", "one_hot", "multi_label", "regression"]), default=None,
              help="How the labels are given (default: inferred from the values).")
@click.option("--validation-fraction", type=float, default=0.2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_handle_errors
def dataset_register(name: str, path: str, fmt: str | None, features: str | None, label: str | None,
                     task: str | None, label_kind: str | None, validation_fraction: float, seed: int) -> None:
    """Register the dataset at PATH (inside a data root) as NAME and partition it for the workers."""
    label_column = label.split(",") if label and "," in label else label
    spec = {"name": name, "path": path, "format": fmt, "label_column": label_column, "task": task, "label_kind": label_kind,
            "feature_columns": features.split(",") if features else None,
            "validation_fraction": validation_fraction, "seed": seed}
    with console.status(f"reading and partitioning {path} ..."):
        info = _services().register_dataset(spec)
    console.print(f"dataset {info.id} [bold]{escape(info.name)}[/]: {info.n_rows} rows ({info.task}, features "
                  f"{tuple(info.feature_shape)}), {info.partition_count} partitions of ~{info.n_train // info.partition_count}"
                  f" rows, {info.n_validation} validation rows")


@main.command("datasets")
@_handle_errors
def datasets_cmd() -> None:
    """List registered datasets."""
    table = Table("id", "name", "rows", "task", "features", "partitions", "source")
    for d in _services().list_datasets():
        table.add_row(str(d.id), _fmt(d.name), str(d.n_rows), d.task, str(tuple(d.feature_shape)), str(d.partition_count),
                      _fmt(d.source_path))
    console.print(table)


# -- scripts ------------------------------------------------------------------------------------
@main.group()
def script() -> None:
    """Upload custom Keras model scripts."""


@script.command("upload")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--entry", "entry_point", default="build_model", show_default=True,
              help="Function or HyperModel class to call.")
@click.option("--dataset", "dataset_ref", default=None, help="Validate against this dataset's shapes.")
@_handle_errors
def script_upload(file: str, entry_point: str, dataset_ref: str | None) -> None:
    """Validate FILE in a sandboxed process and store it for workloads."""
    path = Path(file)
    if not path.is_file():
        raise ValidationError(f"{file} does not exist", field="file")
    with console.status(f"validating {path.name} in a separate process ..."):
        info = _services().upload_script(path.name, path.read_bytes(), entry_point=entry_point, dataset=dataset_ref)
    console.print(f"script {info.id} accepted: {info.validation.get('message')}")
    for note in info.validation.get("notes") or []:
        console.print(f"  note: {note}")
    if info.validation.get("space"):
        console.print(f"  search space read from the script: {json.dumps(info.validation['space'])}")


# -- workloads ----------------------------------------------------------------------------------
@main.command("submit")
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("--procedure", default=None, help="Override the spec's procedure (see `hopper procedures`).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A procedure option (repeatable; median_stop.grace_epochs=2 nests), over the spec's.")
@click.option("--advisor", is_flag=True, default=False,
              help="Run the procedure as an advisor: its decisions wait for people as suggestions.")
@click.option("--plan", type=click.Choice(["auto", "mop", "replicated"]), default=None,
              help="Override the spec's execution plan: auto (the scheduler chooses), mop, replicated.")
@click.option("--wait", is_flag=True, default=False,
              help="Block until the workload ends, printing progress; exit 12 if it failed, 13 if its budget ran "
                   "out (for CI pipelines; a scheduler must be running).")
@click.option("--poll", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
              help="With --wait: seconds between looks at the workload.")
@_handle_errors
def submit(spec_file: str, procedure: str | None, options: tuple[str, ...], advisor: bool, plan: str | None,
           wait: bool, poll: float) -> None:
    """Launch a workload from a YAML/JSON spec file (for scripts and cron jobs)."""
    from hopper.engine.specs import load_spec_file

    spec = load_spec_file(spec_file)
    if procedure:
        spec["procedure"] = procedure
    if options:
        merged = dict(spec.get("procedure_options") or {})
        for key, value in _parse_assignments(options, "--option").items():
            head, _, tail = key.partition(".")
            if tail:
                merged[head] = {**(merged.get(head) if isinstance(merged.get(head), dict) else {}), tail: value}
            else:
                merged[key] = value
        spec["procedure_options"] = merged
    if advisor:
        spec["advisor"] = True
    if plan:
        spec["plan"] = plan
    services = _services()
    info = services.launch_workload(spec)
    console.print(f"workload {info.id} [bold]{escape(info.name)}[/] launched ({info.procedure}"
                  f"{', advisor' if info.advisor else ''}, {info.max_epochs} epochs, plan {info.plan}); "
                  "the scheduler picks it up at its next poll")
    if wait:
        sys.exit(_wait_for_workload(services, info.id, poll))


#: ``submit --wait`` exit codes for a workload that ended without success (distinct from Hopper's error codes).
EXIT_WORKLOAD_FAILED = 12
EXIT_WORKLOAD_ENDED_OTHERWISE = 13  # budget spent, or any other ending that is neither done nor failed


def _wait_for_workload(services: Any, workload_id: int, poll: float) -> int:
    """Print a line whenever the workload's progress changes, until it ends; the exit code its ending means."""
    from hopper.engine.errors import StoreUnavailable
    from hopper.engine.status import ENDED_WORKLOAD, RUNNABLE_CONFIG, WorkloadStatus

    shown = None
    while True:
        try:
            w = services.get_workload(workload_id)
        except StoreUnavailable as exc:  # a CI job should outlive a store restart, not fail with it
            err_console.print(f"store unavailable ({escape(exc.message)}); still waiting", highlight=False)
            time.sleep(max(poll, 5.0))
            continue
        finished = sum(n for status, n in w.config_counts.items() if status not in RUNNABLE_CONFIG)
        best = f", best {w.best['metric']}={w.best['value']:.4f} (config {w.best['config_id']})" if w.best else ""
        line = (f"workload {w.id}: {w.status}, {finished}/{sum(w.config_counts.values())} configs finished"
                f"{best}")
        if line != shown:
            console.print(line, highlight=False, markup=False)
            shown = line
        if w.status in ENDED_WORKLOAD:
            break
        time.sleep(poll)
    if w.status == WorkloadStatus.DONE:
        return 0
    if w.status == WorkloadStatus.FAILED:
        err_console.print(f"[bold red]workload {w.id} failed:[/] {escape(w.error or 'no error recorded')}",
                          highlight=False, soft_wrap=True)
        return EXIT_WORKLOAD_FAILED
    err_console.print(f"[bold red]workload {w.id} ended: {escape(str(w.status))}[/]", highlight=False)
    return EXIT_WORKLOAD_ENDED_OTHERWISE


@main.command("procedures")
@_handle_errors
def procedures_cmd() -> None:
    """The search procedures and their options (give them as procedure_options, or --option to submit)."""
    table = Table("procedure", "what it does", "options (default, bounds)")
    for g in _services().list_procedures():
        shown = [f"{o.name}={o.default}" + (f" [{o.low:g}, {o.high:g}]" if o.low is not None else "")
                 + (f" ({'|'.join(o.choices)})" if o.choices else "") for o in g.options]
        notes = [n for n, on in (("needs max_configs", g.needs_budget), ("decides: advisor mode", g.decides),
                                 ("2+ objectives", g.multi_objective)) if on]
        table.add_row(g.name, escape(g.summary + (f" ({'; '.join(notes)})" if notes else "")), escape(", ".join(shown)))
    console.print(table)
    console.print("every procedure also takes median_stop: {grace_epochs, min_samples} (the median stopping rule)")


@main.command("workloads")
@_handle_errors
def workloads_cmd() -> None:
    """List workloads with progress and best result."""
    table = Table("id", "name", "status", "procedure", "model", "configs", "best")
    for w in _services().list_workloads():
        best = f"{w.best['metric']}={w.best['value']:.4f} (config {w.best['config_id']})" if w.best else ""
        table.add_row(str(w.id), _fmt(w.name), w.status, w.procedure, w.model_ref, _fmt(w.config_counts), best)
    console.print(table)


@main.group()
def workload() -> None:
    """Show, pause, resume, stop or change one workload (its budgets, weight)."""


@workload.command("show")
@click.argument("workload_id", type=int)
@_handle_errors
def workload_show(workload_id: int) -> None:
    """Show a workload as JSON."""
    console.print_json(json.dumps(_services().get_workload(workload_id).to_dict()))


@workload.command("pause")
@click.argument("workload_id", type=int)
@_handle_errors
def workload_pause(workload_id: int) -> None:
    """Start no new sub-epochs for the workload (running ones finish)."""
    console.print(f"workload {workload_id}: {_services().set_workload_status(workload_id, 'paused').status}")


@workload.command("resume")
@click.argument("workload_id", type=int)
@_handle_errors
def workload_resume(workload_id: int) -> None:
    """Resume a paused or stopped workload (its configs continue from their checkpoints)."""
    console.print(f"workload {workload_id}: {_services().set_workload_status(workload_id, 'running').status}")


@workload.command("stop")
@click.argument("workload_id", type=int)
@_handle_errors
def workload_stop(workload_id: int) -> None:
    """Stop a whole workload: running sub-epochs finish and commit, none starts; configs keep checkpoints."""
    console.print(f"workload {workload_id}: {_services().stop_workload(workload_id).status}")


@workload.command("weight")
@click.argument("workload_id", type=int)
@click.argument("weight", type=float, required=False)
@_handle_errors
def workload_weight(workload_id: int, weight: float | None) -> None:
    """Show or set a workload's fair-share weight (its share of the workers against other running workloads)."""
    services = _services()
    info = services.get_workload(workload_id) if weight is None else services.set_workload_weight(workload_id, weight)
    console.print(f"workload {workload_id}: weight {info.weight:g}")


@workload.command("budget")
@click.argument("workload_id", type=int)
@_handle_errors
def workload_budget(workload_id: int) -> None:
    """A workload's spend, what remains of its budget and its ETA, as JSON."""
    console.print_json(json.dumps(_services().workload_budget(workload_id).to_dict()))


@workload.command("update")
@click.argument("workload_id", type=int)
@click.option("--max-epochs", type=int, default=None)
@click.option("--max-configs", type=int, default=None)
@_handle_errors
def workload_update(workload_id: int, max_epochs: int | None, max_configs: int | None) -> None:
    """Change a workload's epoch or config budget while it runs."""
    info = _services().update_workload(workload_id, max_epochs=max_epochs, max_configs=max_configs)
    console.print(f"workload {workload_id}: max_epochs={info.max_epochs} max_configs={info.max_configs}")


@main.group("suggestions")
def suggestions() -> None:
    """Advisor mode: list, accept or reject what a workload's procedure suggests."""


@suggestions.command("list")
@click.argument("workload_id", type=int)
@click.option("--status", type=click.Choice(["pending", "accepted", "rejected", "expired"]), default=None,
              help="Only suggestions in this state.")
@_handle_errors
def suggestions_list(workload_id: int, status: str | None) -> None:
    """A workload's suggestions with their reasons, pending first."""
    table = Table("id", "status", "suggestion", "reason", "decided by")
    for s in _services().list_suggestions(workload_id, status=status):
        table.add_row(str(s.id), s.status, escape(s.summary), escape(s.reason),
                      escape(f"{s.decided_by or ''}{f' ({s.detail})' if s.detail else ''}"))
    console.print(table)


@suggestions.command("accept")
@click.argument("workload_id", type=int)
@click.argument("suggestion_id", type=int)
@_handle_errors
def suggestions_accept(workload_id: int, suggestion_id: int) -> None:
    """Apply a suggestion as your own action (a moot one expires and says why)."""
    info = _services().accept_suggestion(workload_id, suggestion_id)
    console.print(f"suggestion {info.id} accepted: {escape(info.summary)}", highlight=False)


@suggestions.command("reject")
@click.argument("workload_id", type=int)
@click.argument("suggestion_id", type=int)
@_handle_errors
def suggestions_reject(workload_id: int, suggestion_id: int) -> None:
    """Reject a suggestion: it never takes effect."""
    info = _services().reject_suggestion(workload_id, suggestion_id)
    console.print(f"suggestion {info.id} rejected: {escape(info.summary)}", highlight=False)


@main.group("objective")
def objective() -> None:
    """Objectives added to a running workload (its trained checkpoints are re-evaluated, nothing retrains)."""


@objective.command("add")
@click.argument("workload_id", type=int)
@click.argument("metric")
@click.option("--direction", type=click.Choice(["max", "min"]), required=True)
@click.option("--cost-matrix", "cost_matrix", default=None,
              help="For val_cost: a JSON list of K rows of K costs (row = true class, column = predicted).")
@_handle_errors
def objective_add(workload_id: int, metric: str, direction: str, cost_matrix: str | None) -> None:
    """Add an objective; the export worker measures it on every kept epoch-end checkpoint."""
    spec: dict[str, Any] = {"metric": metric, "direction": direction}
    if cost_matrix:
        try:
            spec["cost_matrix"] = json.loads(cost_matrix)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"--cost-matrix is not JSON: {exc}", field="cost_matrix") from None
    info = _services().add_objective(workload_id, spec)
    console.print(f"workload {workload_id}: objective {escape(metric)} ({direction}) added; evaluation request "
                  f"{info.id}: {info.n_expected} checkpoint(s) to re-evaluate ({info.status})", highlight=False)


@objective.command("list")
@click.argument("workload_id", type=int)
@_handle_errors
def objective_list(workload_id: int) -> None:
    """A workload's objectives and the re-evaluations of those added after launch."""
    services = _services()
    for o in services.get_workload(workload_id).objectives:
        console.print(f"{escape(o['metric'])}: {o['direction']}", highlight=False)
    table = Table("request", "objective", "status", "evaluated", "by", "error")
    for e in services.list_evaluations(workload_id):
        table.add_row(str(e.id), escape(e.objective["metric"]), e.status, f"{e.n_done}/{e.n_expected}",
                      escape(e.actor), escape((e.error or "").splitlines()[0] if e.error else ""))
    console.print(table)


@objective.command("evaluate")
@click.argument("request_id", type=int)
@_handle_errors
def objective_evaluate(request_id: int) -> None:
    """Run one evaluation request here (the export worker runs each in such a child process)."""
    from hopper.engine.status import JobStatus
    from hopper.mop_scheduler.worker.reevaluate import run_evaluation

    services = _services()
    info = services.get_evaluation(request_id)
    # Run by hand, a queued request is claimed first, so the export worker does not take it too.
    if info.status == JobStatus.QUEUED and services.claim_evaluation(request_id) is None \
            or info.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise ValidationError(f"evaluation request {request_id} is already "
                              f"{services.get_evaluation(request_id).status}", field="request_id")
    done = run_evaluation(services.store, request_id)
    console.print(f"evaluation request {done.id}: {done.status}, {done.n_done}/{done.n_expected} checkpoints",
                  highlight=False)
    if done.error:
        raise ValidationError(f"evaluation request {done.id} failed: {done.error.splitlines()[0]}")


@main.command("configs")
@click.argument("workload_id", type=int)
@click.option("--status", default=None, help="Only configs in this state.")
@_handle_errors
def configs_cmd(workload_id: int, status: str | None) -> None:
    """List a workload's configs with their latest metrics."""
    table = Table("id", "status", "prio", "epochs", "origin", "hparams", "latest metrics", "version")
    for c in _services().list_configs(workload_id, status=status):
        table.add_row(str(c.id), c.status, str(c.priority), str(c.epochs_done), c.origin, _fmt(c.hparams),
                      _fmt({k: v for k, v in c.latest_metrics.items() if k != "epoch"}), str(c.version))
    console.print(table)


@main.command("show")
@click.argument("config_id", type=int)
@_handle_errors
def show_config(config_id: int) -> None:
    """Show one config with per-epoch metrics."""
    info = _services().get_config(config_id)
    console.print(f"config {info.id} (workload {info.workload_id}) {info.status}, {info.epochs_done} epochs, "
                  f"version {info.version}: {_fmt(info.hparams)}")
    if info.error:
        console.print(f"[red]error:[/] {info.error}", markup=True, highlight=False)
    if info.notes:
        console.print(f"notes: {info.notes}", highlight=False)
    by_epoch: dict[int, dict] = {}
    for m in info.metrics:
        by_epoch.setdefault(m["epoch"], {})[m["name"]] = m["value"]
    names = sorted({n for v in by_epoch.values() for n in v})
    table = Table("epoch", *names)
    for epoch, values in sorted(by_epoch.items()):
        table.add_row(str(epoch + 1), *(_fmt(values.get(n)) for n in names))
    console.print(table)


@main.command("add")
@click.argument("workload_id", type=int)
@click.option("--set", "assignments", multiple=True, help="KEY=VALUE hyperparameter (repeatable).")
@click.option("--priority", type=int, default=0)
@_handle_errors
def add(workload_id: int, assignments: tuple[str, ...], priority: int) -> None:
    """Add a config by hand; it starts at the next free worker slot."""
    info = _services().add_config(workload_id, _parse_assignments(assignments), priority=priority)
    console.print(f"config {info.id} queued: {_fmt(info.hparams)}")


@main.command("stop")
@click.argument("config_id", type=int)
@click.option("--version", "expected_version", type=int, default=None, help="Fail if the config changed since.")
@_handle_errors
def stop(config_id: int, expected_version: int | None) -> None:
    """Stop a config at the end of its running sub-epoch."""
    info = _services().stop_config(config_id, expected_version=expected_version)
    console.print(f"config {config_id}: {info.status}")


@main.command("resume")
@click.argument("config_id", type=int)
@click.option("--version", "expected_version", type=int, default=None)
@_handle_errors
def resume(config_id: int, expected_version: int | None) -> None:
    """Resume a stopped config from its last checkpoint."""
    info = _services().resume_config(config_id, expected_version=expected_version)
    console.print(f"config {config_id}: {info.status} (continues after epoch {info.epochs_done})")


@main.command("clone")
@click.argument("config_id", type=int)
@click.option("--set", "assignments", multiple=True, help="KEY=VALUE override, e.g. lr=0.0005 (repeatable).")
@click.option("--priority", type=int, default=None)
@_handle_errors
def clone(config_id: int, assignments: tuple[str, ...], priority: int | None) -> None:
    """Clone a config with its trained weights and new hyperparameters."""
    info = _services().clone_config(config_id, _parse_assignments(assignments), priority=priority)
    console.print(f"config {info.id} cloned from {config_id}: {_fmt(info.hparams)}")
    if info.notes:
        console.print(f"note: {info.notes}")


@main.command("priority")
@click.argument("config_id", type=int)
@click.argument("priority", type=int)
@click.option("--version", "expected_version", type=int, default=None)
@_handle_errors
def priority_cmd(config_id: int, priority: int, expected_version: int | None) -> None:
    """Set a config's priority (higher runs first)."""
    info = _services().set_priority(config_id, priority, expected_version=expected_version)
    console.print(f"config {config_id}: priority {info.priority}")


@main.command("drill-down")
@click.argument("config_id", type=int)
@click.option("--space", "space_text", required=True, help="Refined space: a YAML/JSON file or inline JSON.")
@click.option("--procedure", type=click.Choice(["grid", "random", "tpe"]), default="grid", show_default=True)
@click.option("--max-configs", type=int, default=None)
@click.option("--max-epochs", type=int, default=None)
@click.option("--name", default=None)
@_handle_errors
def drill_down(config_id: int, space_text: str, procedure: str, max_configs: int | None, max_epochs: int | None,
               name: str | None) -> None:
    """Launch a child workload on a narrower space, warm-started from CONFIG_ID."""
    info = _services().drill_down(config_id, _load_json_or_file(space_text, "space"), name=name,
                                  procedure=procedure, max_configs=max_configs, max_epochs=max_epochs)
    console.print(f"workload {info.id} [bold]{escape(info.name)}[/] launched (parent workload {info.parent_workload_id})")


@main.command("export")
@click.argument("config_id", type=int)
@click.option("--quantization", "quantizations", multiple=True, type=click.Choice(["float32", "int8"]),
              help="Repeatable; default: both.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for the .tflite files (default: the artefact dir).")
@click.option("--request-id", type=int, default=None, hidden=True,
              help="The export request this run fulfils (set by the export worker).")
@_handle_errors
def export_cmd(config_id: int, quantizations: tuple[str, ...], out_dir: str | None, request_id: int | None) -> None:
    """Export a trained config to TFLite and measure its accuracy on the interpreter."""
    from hopper.edge_deploy.export import QUANTIZATIONS, export_config

    services = _services()
    try:
        with console.status(f"converting config {config_id} to TFLite ..."):
            rows = export_config(services, config_id, quantizations or QUANTIZATIONS,
                                 Path(out_dir) if out_dir else None)
    except Exception as exc:
        if request_id is not None:
            services.finish_export_request(request_id, error=getattr(exc, "message", None) or repr(exc))
        raise
    if request_id is not None:
        services.finish_export_request(request_id, export_ids=[r.id for r in rows])
    table = Table("quantization", "bytes", "Keras accuracy", "TFLite accuracy", "convert s", "file")
    for r in rows:
        table.add_row(r.quantization, str(r.bytes), _fmt(r.keras_accuracy), _fmt(r.tflite_accuracy),
                      f"{r.convert_seconds:.2f}", _fmt(r.path))
    console.print(table)


@main.command("serve-model")
@click.argument("config_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["tflite", "keras"]), default="tflite", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default: a free port.")
@click.option("--name", default=None, help="Model name in the URL (default: config-ID).")
@click.option("--deployment-id", type=int, default=None, hidden=True, help="Set by REST deploy.")
@_handle_errors
def serve_model_cmd(config_id: int, fmt: str, host: str, port: int | None, name: str | None,
                    deployment_id: int | None) -> None:
    """Serve a trained config over HTTP: POST /v1/models/NAME:predict {"instances": [...]}."""
    from hopper.edge_deploy.serving import serve_model

    serve_model(_services(), config_id, fmt=fmt, host=host, port=port, name=name, deployment_id=deployment_id,
                announce=console.print)


@main.command("export-worker")
@click.option("--poll", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--once", is_flag=True, help="Run the queued requests, then exit.")
@_handle_errors
def export_worker_cmd(poll: float, once: bool) -> None:
    """Run export requests and start/stop deployments asked for from the REST API or UI (each export in a child
    process, each deployment a `hopper serve-model` process); `hopper serve` runs one too."""
    from hopper.edge_deploy.runner import ExportWorker

    worker = ExportWorker(_services(), poll=poll)
    if once:
        while (done := worker.run_once()) is not None:
            console.print(f"export request {done.id}: {done.status} {done.error or ''}", highlight=False)
        return
    stop_event = threading.Event()
    console.print("export worker: polling for export requests and deployments (Ctrl-C stops)")
    try:
        worker.run(stop_event)
    except KeyboardInterrupt:
        stop_event.set()


@main.command("edge-agent", add_help_option=False,
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def edge_agent_cmd(args: tuple[str, ...]) -> None:
    """Profile TFLite exports on this device for a Hopper server (--server URL --token T --name NAME; -h for all).

    Needs only requests, numpy and tflite-runtime or ai-edge-litert (pip install hopper-ms[edge]).
    """
    from hopper.edge_deploy.agent import main as agent_main

    sys.exit(agent_main(list(args)))


@main.command("events")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@_handle_errors
def events(limit: int) -> None:
    """Show the audit log: who did what, when."""
    table = Table("at", "actor", "action", "object", "before", "after")
    for e in _services().list_events(limit=limit):
        table.add_row(e.at.isoformat(timespec="seconds"), _fmt(e.actor), e.action, f"{e.object_type} {e.object_id}",
                      _fmt(e.before), _fmt(e.after))
    console.print(table)


# -- running ------------------------------------------------------------------------------------
def _print_epoch(report: Any) -> None:
    metrics = " ".join(f"{k}={int(v)}" if k == "params" else f"{k}={v:.4f}"
                       for k, v in report.metrics.items() if k != "epoch_seconds")
    console.print(f"workload {report.workload_id} config {report.config_id} epoch {report.epoch + 1}: {metrics}",
                  highlight=False)


def _run_scheduler(services: Any, *, epoch_barrier: bool, until_done: bool, timeout: float | None,
                   threads: int) -> None:
    from hopper.mop_scheduler import Scheduler

    scheduler = Scheduler(services, epoch_barrier=epoch_barrier, threads_per_worker=threads, on_epoch=_print_epoch)
    stop_event = threading.Event()
    settings = services.settings
    where = (f"{settings.workers} Spark tasks on {settings.spark_master}" if settings.backend == "spark"
             else f"{settings.workers} local workers")
    console.print(f"scheduler: {where}, polling {services.store._safe_url()} "
                  "(Ctrl-C stops after the running sub-epochs are abandoned; they re-run on restart)")
    try:
        scheduler.run(stop_event=stop_event, until_done=until_done, timeout=timeout)
    except KeyboardInterrupt:
        stop_event.set()
        console.print("scheduler stopped")
    except (TimeoutError, RuntimeError) as exc:
        raise HopperError(str(exc)) from exc
    console.print(f"scheduler: {scheduler.stats}")


@main.command("scheduler")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Override HOPPER_WORKERS.")
@click.option("--backend", type=click.Choice(["local", "spark"]), default=None,
              help="Where sub-epochs run (overrides HOPPER_BACKEND; default local).")
@click.option("--spark-master", default=None, metavar="URL",
              help="Spark master for --backend spark: spark://host:7077 or local[W] (HOPPER_SPARK_MASTER).")
@click.option("--spark-driver-host", default=None, metavar="HOST",
              help="Address Spark tasks reach this process at (HOPPER_SPARK_DRIVER_HOST).")
@click.option("--epoch-barrier", is_flag=True, help="Strict MOP template: epochs advance together.")
@click.option("--until-done", is_flag=True, help="Exit once no workload is running.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, help="Give up after this many seconds.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="TensorFlow threads per worker.")
@_handle_errors
def scheduler_cmd(workers: int | None, backend: str | None, spark_master: str | None, spark_driver_host: str | None,
                  epoch_barrier: bool, until_done: bool, timeout: float | None, threads: int) -> None:
    """Run the MOP scheduler: local worker processes, or long-lived tasks on a Spark cluster."""
    ctx = click.get_current_context()
    overrides = {"workers": workers, "backend": backend, "spark_master": spark_master,
                 "spark_driver_host": spark_driver_host}
    ctx.obj["settings"] = ctx.obj["settings"].with_overrides(**{k: v for k, v in overrides.items() if v is not None})
    _run_scheduler(_services(), epoch_barrier=epoch_barrier, until_done=until_done, timeout=timeout, threads=threads)


@main.command("spark-cluster")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Spark worker daemons to start.")
@click.option("--cores", type=click.IntRange(min=1), default=1, show_default=True, help="Cores each worker offers.")
@click.option("--memory", default="2g", show_default=True, help="Memory each worker offers to executors.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the daemons bind to.")
@click.option("--port", type=int, default=7077, show_default=True, help="Master port.")
@_handle_errors
def spark_cluster_cmd(workers: int, cores: int, memory: str, host: str, port: int) -> None:
    """Start a Spark standalone master and workers here (Java 17 needed) until Ctrl-C: a cluster to try
    `hopper scheduler --backend spark` on."""
    from hopper.mop_scheduler.backends.spark_cluster import StandaloneCluster

    cluster = StandaloneCluster(n_workers=workers, cores=cores, memory=memory, host=host, master_port=port)
    try:
        cluster.start()
    except (RuntimeError, TimeoutError) as exc:
        cluster.stop()
        raise HopperError(str(exc)) from exc
    # A supervisor may send SIGTERM as soon as it reads the URL: the handler goes in before the announcement,
    # and the announcement is inside the try, so an interrupt while it is still printing stops cleanly too.
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C
    try:
        console.print(f"Spark master {cluster.url} with {workers} worker(s) ({cores} core(s), {memory} each); "
                      f"logs in {cluster.workdir}. Run: hopper scheduler --backend spark --spark-master {cluster.url}")
        while all(p.poll() is None for p in [cluster.master, *cluster.workers]):
            time.sleep(1.0)
        console.print(f"a Spark daemon exited; see the logs in {cluster.workdir}")
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        console.print("Spark cluster stopped")


@main.command("spark-daemon", context_settings={"ignore_unknown_options": True})
@click.argument("role", type=click.Choice(["master", "worker"]))
@click.argument("spark_args", nargs=-1, type=click.UNPROCESSED)
def spark_daemon_cmd(role: str, spark_args: tuple[str, ...]) -> None:
    """Run a Spark master or worker daemon in the foreground (containers; see docker-compose.yml).

    Arguments after ROLE go to Spark, e.g. `hopper spark-daemon worker --cores 2 spark://spark-master:7077`.
    Workers launch executors whose Python is this one, so they can import Hopper and TensorFlow.
    """
    from hopper.mop_scheduler.backends.spark_cluster import daemon_command

    command, env = daemon_command(role, spark_args)
    os.execvpe(command[0], command, env)


@main.command("demo")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--model", default="mlp", show_default=True)
@click.option("--if-missing", is_flag=True, help="Do nothing when a workload already exists.")
@_handle_errors
def demo(epochs: int, model: str, if_missing: bool) -> None:
    """Register scikit-learn's digits and launch a small grid workload on it."""
    from hopper.engine.demo import create_demo

    services = _services()
    if if_missing and services.list_workloads():
        console.print("demo: workloads exist already; nothing to do")
        return
    info = create_demo(services, max_epochs=epochs, model=model)
    console.print(f"demo workload {info.id} [bold]{escape(info.name)}[/] launched")


@main.command("run")
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True,
              help="Epochs per config of the demo workload (40: about 2.5 minutes to steer on two workers).")
@click.option("--until-done", is_flag=True, help="No UI: exit when the demo workload finishes.")
@click.option("--port", type=int, default=8050, show_default=True)
@_handle_errors
def run(epochs: int, until_done: bool, port: int) -> None:
    """Migrate the store, create the demo workload if there is none, run the scheduler and the UI."""
    from hopper.engine.demo import create_demo

    services = _services(check_schema=False)
    services.store.upgrade()
    settings = services.settings
    for root in settings.data_roots:
        root.mkdir(parents=True, exist_ok=True)
    console.print(f"Hopper home: {settings.home}  store: {services.store._safe_url()}")
    if not services.list_workloads():
        info = create_demo(services, max_epochs=epochs, steerable=True)
        console.print(f"demo workload {info.id} [bold]{escape(info.name)}[/] launched")
    if until_done:
        _run_scheduler(services, epoch_barrier=False, until_done=True, timeout=None, threads=1)
        return
    from hopper.mop_scheduler import Scheduler
    from hopper.serve import serve

    scheduler = Scheduler(services, on_epoch=_print_epoch)
    serve(services, host="127.0.0.1", port=port, scheduler=scheduler, announce=console.print)


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0 for all).")
@click.option("--port", type=int, default=8050, show_default=True)
@click.option("--no-auth", is_flag=True, help="No token (refused unless --host is loopback).")
@click.option("--with-scheduler", is_flag=True, help="Also run the MOP scheduler in this process.")
@click.option("--no-tensorboard", is_flag=True, help="Do not start TensorBoard.")
@click.option("--no-export-worker", is_flag=True, help="Leave export requests and deployments to a separate `hopper export-worker`.")
@click.option("--tls-cert", default=None, help="Not served by waitress: use a reverse proxy and public_url (README).")
@click.option("--tls-key", default=None, help="See --tls-cert.")
@_handle_errors
def serve_cmd(host: str, port: int, no_auth: bool, with_scheduler: bool, no_tensorboard: bool,
              no_export_worker: bool, tls_cert: str | None, tls_key: str | None) -> None:
    """Serve the web UI and the REST API (waitress), with TensorBoard beside them."""
    from hopper.serve import TLS_HELP, serve

    if tls_cert or tls_key:  # before opening anything: the answer is the same whatever the store holds
        raise ValidationError(f"--tls-cert/--tls-key: {TLS_HELP}", field="tls-cert" if tls_cert else "tls-key")
    services = _services()
    scheduler = None
    if with_scheduler:
        from hopper.mop_scheduler import Scheduler

        scheduler = Scheduler(services, on_epoch=_print_epoch)
    serve(services, host=host, port=port, no_auth=no_auth, tensorboard=not no_tensorboard, scheduler=scheduler,
          announce=console.print, export_worker=not no_export_worker)


@main.command("token")
@click.option("--rotate", is_flag=True, help="Replace the admin token; sessions opened with the old one end.")
@_handle_errors
def token_cmd(rotate: bool) -> None:
    """Print the bootstrap admin token (created with 0600 permissions on first use)."""
    from hopper.rest.auth import api_token, rotate_api_token

    if not rotate:
        click.echo(api_token(_settings().home))
        return
    token = rotate_api_token(_settings().home)
    closed = _services().close_admin_sessions(keep_token=token)
    err_console.print(f"admin token rotated; {closed} web session(s) of the old one ended")
    click.echo(token)


@main.group("user")
def user() -> None:
    """People and their roles: viewer (reads), editor (also steers and launches), admin (also manages)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "editor", "admin"]), required=True)
@_handle_errors
def user_add(name: str, role: str) -> None:
    """Add a person; prints their token ONCE (only its hash is stored)."""
    info, token = _services().add_user(name, role)
    err_console.print(f"user {info.name} ({info.role}) added; their token (shown only now):")
    click.echo(token)


@user.command("list")
@_handle_errors
def user_list() -> None:
    """Everyone with a role, and whether they were revoked."""
    table = Table("id", "name", "role", "tokens", "created", "revoked")
    for u in _services().list_users():
        table.add_row(str(u.id), escape(u.name), u.role, str(u.active_tokens), _fmt(u.created_at),
                      _fmt(u.revoked_at) if u.revoked_at else "")
    console.print(table)


@user.command("revoke")
@click.argument("name")
@_handle_errors
def user_revoke(name: str) -> None:
    """Revoke a person: their tokens stop working and their web sessions end at once."""
    info = _services().revoke_user(name)
    console.print(f"user {escape(info.name)} revoked")


@user.command("rotate")
@click.argument("name")
@_handle_errors
def user_rotate(name: str) -> None:
    """Give a person a new token; the old one and its web sessions stop working. Prints it ONCE."""
    info, token = _services().rotate_user_token(name)
    err_console.print(f"new token for {info.name} (shown only now):")
    click.echo(token)


@main.group("device")
def device() -> None:
    """Edge devices' credentials."""


@device.command("enrol-token")
@_handle_errors
def device_enrol_token() -> None:
    """A one-time token for `hopper edge-agent --enrol-token`; the agent gets its own device token with it."""
    token = _services().create_enrolment_token()
    err_console.print("one-time enrolment token (the agent exchanges it for its own device token):")
    click.echo(token)


# -- schedules ----------------------------------------------------------------------------------
@main.group("schedule")
def schedule() -> None:
    """Workloads launched on a cron schedule (the scheduler fires each due run exactly once)."""


@schedule.command("add")
@click.argument("cron")
@click.argument("spec_file", type=click.Path(dir_okay=False))
@click.option("--tz", "timezone", default="UTC", show_default=True, help="IANA time zone the cron is read in.")
@click.option("--name", default=None, help="The schedule's name (default: the spec's name).")
@_handle_errors
def schedule_add(cron: str, spec_file: str, timezone: str, name: str | None) -> None:
    """Launch SPEC_FILE at every time CRON matches, e.g. "0 2 * * *" (02:00 daily); the spec is checked now."""
    from hopper.engine.cron import local_time
    from hopper.engine.specs import load_spec_file

    info = _services().add_schedule(cron, load_spec_file(spec_file), timezone=timezone, name=name)
    console.print(f"schedule {info.id} [bold]{escape(info.name)}[/] added: {escape(info.cron)} ({info.timezone}), "
                  f"next run {local_time(info.next_run_at, info.timezone):%Y-%m-%d %H:%M %Z}", highlight=False)


@schedule.command("list")
@_handle_errors
def schedule_list() -> None:
    """Every schedule with its cron, time zone and next run."""
    from hopper.engine.cron import local_time

    table = Table("id", "name", "cron", "time zone", "enabled", "next run (local)", "created by")
    for s in _services().list_schedules():
        table.add_row(str(s.id), _fmt(s.name), _fmt(s.cron), s.timezone, "yes" if s.enabled else "no",
                      f"{local_time(s.next_run_at, s.timezone):%Y-%m-%d %H:%M %Z}" if s.enabled else "",
                      _fmt(s.created_by))
    console.print(table)


@schedule.command("disable")
@click.argument("schedule_id", type=int)
@_handle_errors
def schedule_disable(schedule_id: int) -> None:
    """Stop launching a schedule's runs (its history stays)."""
    _services().set_schedule_enabled(schedule_id, False)
    console.print(f"schedule {schedule_id}: disabled")


@schedule.command("enable")
@click.argument("schedule_id", type=int)
@_handle_errors
def schedule_enable(schedule_id: int) -> None:
    """Launch a schedule's runs again, from its next cron time on (missed runs do not fire)."""
    from hopper.engine.cron import local_time

    info = _services().set_schedule_enabled(schedule_id, True)
    console.print(f"schedule {schedule_id}: enabled, next run "
                  f"{local_time(info.next_run_at, info.timezone):%Y-%m-%d %H:%M %Z}", highlight=False)


@schedule.command("runs")
@click.argument("schedule_id", type=int)
@_handle_errors
def schedule_runs(schedule_id: int) -> None:
    """A schedule's runs, newest first: due time, status, the workload launched or the error."""
    table = Table("run", "due (UTC)", "status", "workload", "claimed by", "error")
    for r in _services().list_schedule_runs(schedule_id):
        table.add_row(str(r.id), f"{r.due_at:%Y-%m-%d %H:%M}", r.status, _fmt(r.workload_id), _fmt(r.claimed_by),
                      _fmt((r.error or "").split("\n")[0][:200]))
    console.print(table)
# -- worker pool --------------------------------------------------------------------------------
@main.group()
def workers() -> None:
    """List the workers, or add and remove workers while workloads run (the scheduler applies it)."""


def _print_pool(pool) -> None:  # noqa: ANN001
    table = Table("id", "name", "state", "shards")
    for w in pool.workers:
        shards = "; ".join(f"{', '.join(map(str, owned)) or '-'} of {n}" for n, owned in w.get("shards", {}).items())
        table.add_row(str(w.get("id")), _fmt(w.get("name")), _fmt(w.get("state")), shards)
    console.print(table)
    asked = "the configured count" if pool.desired is None else str(pool.desired)
    reported = pool.reported_at.isoformat(timespec="seconds") if pool.reported_at else "never (no scheduler ran)"
    console.print(f"requested: {asked}; last reported by the scheduler: {reported}", highlight=False)


@workers.command("list")
@_handle_errors
def workers_list() -> None:
    """The workers the scheduler runs, with the data shards each owns."""
    _print_pool(_services().list_workers())


@workers.command("add")
@click.argument("n", type=click.IntRange(min=1))
@_handle_errors
def workers_add(n: int) -> None:
    """Start N more workers; they take a share of the data shards and load them on first use."""
    pool = _services().add_workers(n)
    console.print(f"requested {pool.desired} workers; the scheduler starts them at its next step", highlight=False)


@workers.command("remove")
@click.argument("n", type=click.IntRange(min=1))
@click.option("--now", is_flag=True, help="Stop them at once; their running sub-epochs are re-run elsewhere.")
@_handle_errors
def workers_remove(n: int, now: bool) -> None:
    """Stop N workers once their running sub-epochs finish (--now: at once); their shards go to the others."""
    pool = _services().remove_workers(n, now=now)
    console.print(f"requested {pool.desired} workers; the scheduler drains the others at its next step",
                  highlight=False)


if os.environ.get("HOPPER_TEST_INVENTORY"):  # the test suite's record of which commands ran (hopper/inventory.py)
    from hopper.inventory import instrument_cli

    instrument_cli(main)


if __name__ == "__main__":
    main()
