"""Steering: launching workloads and every change a person makes to one while it runs.

The scheduler picks each change up between sub-epochs: a stop takes effect after the running sub-epoch, a
new or resumed config starts at the next free slot, a priority orders the queue from the next decision on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any

from hopper.engine import budget as budget_math
from hopper.engine import data as data_mod
from hopper.engine import fronts, privacy
from hopper.engine import importance as importance_mod
from hopper.engine import objectives as objective_math
from hopper.engine.catalog import check_hparam_value, check_hparams, get_entry
from hopper.engine.entities import (
    AppliedDecision,
    BudgetStatus,
    CheckpointInfo,
    ConfigInfo,
    Importance,
    ObjectiveFront,
    ScriptInfo,
    SubEpochInfo,
    WorkloadInfo,
    WorkloadProgress,
)
from hopper.engine.errors import Conflict, HopperError, InvalidState, NotFound, Unprocessable, ValidationError
from hopper.engine.procedure_guide import GUIDES, ProcedureGuide
from hopper.engine.procedures import PROCEDURES, Decision, Objective, make_procedure
from hopper.engine.search import decides, decisions_for, propose, with_noise
from hopper.engine.services._base import ServiceContext, default_actor
from hopper.engine.space import Choice, Fixed, SearchSpace
from hopper.engine.specs import ObjectiveSpec, PrivacySpec, WorkloadSpec, parse_spec, spec_problems
from hopper.engine.status import (
    FINISHED_CONFIG,
    RUNNABLE_CONFIG,
    ConfigStatus,
    DecisionKind,
    WorkloadStatus,
    can_transition,
)
from hopper.engine.store.configs import check_version

log = logging.getLogger("hopper.engine.services.steering")


# Stand-ins for a faulty part of a workload spec that let ``launch_problems`` check the others.
_NEUTRAL_SPEC_PARTS: dict[str, Any] = {"space": {}, "objectives": [{"metric": "val_loss", "direction": "min"}],
                                       "procedure_options": {}, "advisor": False, "privacy": None}


class SteeringServices(ServiceContext):
    """Workloads and their configs."""

    def __init__(self, store: Any, settings: Any) -> None:
        super().__init__(store, settings)
        # workload id -> (what it was computed from, the result): fANOVA fits forests, pages poll it.
        self._importance_cache: dict[int, tuple[object, Importance]] = {}

    # -- workloads ----------------------------------------------------------------------------------------------
    def launch_workload(self, spec: dict | WorkloadSpec, *, actor: str | None = None,
                        parent_workload_id: int | None = None, parent_config_id: int | None = None,
                        warm_start_checkpoint_id: int | None = None, check_only: bool = False) -> WorkloadInfo | None:
        """Validate a workload spec and create the workload with its procedure's first configs.

        ``check_only`` validates exactly as a launch would and creates nothing (None): a schedule's spec is
        refused when the schedule is added, not when it fires.

        Raises:
            ValidationError: the spec is invalid; ``field`` names the offending part (``space.lr.low``).
        """
        spec = spec if isinstance(spec, WorkloadSpec) else parse_spec(WorkloadSpec, spec)
        actor = actor or default_actor()
        if (spec.model is None) == (spec.script is None):
            raise ValidationError("give exactly one of model (a roster name) or script (an uploaded script id)",
                                  field="model")
        dataset = self.store.datasets.get(spec.dataset, referenced=True)
        if dataset.partition_count < self.settings.workers:
            # Fewer shards than workers would leave workers with nothing of this dataset to train on.
            raise ValidationError(
                f"dataset {dataset.name!r} has {dataset.partition_count} shards but Hopper runs "
                f"{self.settings.workers} workers; register it again (it is cut into {self.settings.dataset_shards})",
                field="dataset",
            )
        _check_data_fits_workers(dataset, self.settings)
        plan = spec.plan or str(getattr(self.settings, "default_plan", "auto") or "auto")
        _check_plan(plan, spec, dataset, self.settings)
        budget = _budget_record(spec, self.settings)
        space_raw = spec.space
        script_id = None
        if spec.script is not None:
            try:
                script = self.store.scripts.get(spec.script)
            except NotFound:
                raise ValidationError(f"script {spec.script} does not exist", field="script") from None
            if not script.valid:
                raise ValidationError(f"script {script.id} failed validation: {script.validation.get('message')}",
                                      field="script")
            if space_raw is None:
                space_raw = script.validation.get("space")
            _check_entry_options(spec, script)
            model_ref, script_id = f"script:{script.id}", script.id
        else:
            if spec.entry_args or spec.bind_globals:
                raise ValidationError("entry_args and bind_globals apply to a script's entry, not to a roster model",
                                      field="entry_args" if spec.entry_args else "bind_globals")
            entry = get_entry(spec.model)
            feature_dtype = dataset.schema.get("feature_dtype")
            if feature_dtype == "string":
                strings = [c["name"] for c in dataset.schema.get("columns", []) if c["type"] in ("string", "text")]
                raise ValidationError(f"{spec.model} takes one numeric matrix but dataset {dataset.name!r} has string "
                                      f"columns ({', '.join(strings)}); upload a script whose keras.Inputs are named "
                                      "after the columns, or register the dataset without them", field="model")
            if entry.input_kind == "tokens" and feature_dtype != "int32":
                raise ValidationError(f"{spec.model} needs token ids (integer features); dataset "
                                      f"{dataset.name!r} has {feature_dtype}", field="model")
            model_ref = spec.model
        if spec.procedure_options.get("advisor"):  # the procedures accept it among their options too
            spec = spec.model_copy(update={"advisor": True, "procedure_options": {
                k: v for k, v in spec.procedure_options.items() if k != "advisor"}})
        if spec.advisor and spec.procedure == "manual":
            raise ValidationError("advisor mode needs an automatic procedure (asha, hyperband, pbt, ... or any with "
                                  "median_stop): with manual there is nothing to suggest", field="advisor")
        if spec.model is not None:
            objective_math.check_known_metrics(
                [o.stored() for o in spec.objectives],
                objective_math.roster_metrics(dataset.task, dataset.label_kind, private=spec.privacy is not None))
        objectives = [Objective(o.metric, o.direction) for o in spec.objectives]
        space = _checked_space(space_raw, model_ref, spec.procedure, objectives, seed=spec.seed,
                               max_configs=spec.max_configs, options=spec.procedure_options,
                               max_epochs=spec.max_epochs)
        if "weights_path" in space.names():
            for value in _possible_values(space, "weights_path"):
                if value:
                    data_mod.confine_path(value, self.settings.data_roots, field="space.weights_path")
        privacy_options, warnings = None, []
        if spec.privacy is not None:
            warnings = spec.privacy.warnings(dataset.n_train)
            # The partition sizes travel with the options: sigma for a target epsilon is calibrated on them
            # whenever a config is proposed (at launch and by the scheduler), without reading the dataset.
            privacy_options = {**spec.privacy.model_dump(mode="json"),
                               "partition_rows": list(privacy.partition_sizes(dataset.n_train,
                                                                              dataset.partition_count))}
            for warning in warnings:
                log.warning("workload %r: %s", spec.name, warning)
        if check_only:
            return None
        return self.store.workloads.create(
            actor=actor, spec_record={**spec.model_dump(mode="json"), "warnings": warnings},
            privacy=privacy_options, warnings=warnings or None,
            propose=partial(propose, n_workers=self.settings.workers),
            name=spec.name, description=spec.description, procedure=spec.procedure, search_space=space.to_dict(),
            objectives=objective_math.resolve([o.stored() for o in spec.objectives], task=dataset.task,
                                              classes=dataset.classes), max_epochs=spec.max_epochs,
            max_configs=spec.max_configs, seed=spec.seed, dataset_id=dataset.id, model_ref=model_ref,
            script_id=script_id, parent_workload_id=parent_workload_id, parent_config_id=parent_config_id,
            warm_start_checkpoint_id=warm_start_checkpoint_id, export_top_k=spec.export_top_k,
            procedure_options=spec.procedure_options or None,
            advisor=spec.advisor, notify=spec.notify.model_dump(mode="json") if spec.notify else None,
            weight=spec.weight, budget=budget, plan=plan,
            entry_options=({"entry_args": spec.entry_args or {}, "bind_globals": spec.bind_globals or {}}
                           if spec.entry_args or spec.bind_globals else None),
        )

    def check_privacy(self, options: dict, dataset: str | int | None = None) -> list[str]:
        """Validate a workload's ``privacy`` section on its own (the launch form checks it as people type).

        Returns the warnings a launch would record (delta not below 1/N for the dataset's training rows, no
        noise at all); raises ``ValidationError`` naming the field (``privacy.delta``) when it is invalid.
        """
        try:
            parsed = parse_spec(PrivacySpec, options)
        except ValidationError as exc:
            field = f"privacy.{exc.field}" if exc.field else "privacy"
            message = exc.message.removeprefix(": ")  # a rule over several fields has no location
            if not message.startswith("privacy") and not message.startswith("set exactly"):
                message = f"privacy.{message}"
            raise ValidationError(message, field=field) from None
        n_rows = self.store.datasets.get(dataset).n_train if dataset not in (None, "") else 0
        return parsed.warnings(n_rows)

    def launch_problems(self, spec: dict) -> list[HopperError]:
        """What launching ``spec`` would refuse, as many problems as can be told apart at once (a form shows each
        next to its field; ``launch_workload`` and REST still stop at the first): every field the spec's schema
        refuses; else the launch's own check, run again with a stand-in for each faulty part it can stand in for
        (space, objectives, procedure options, advisor, privacy) so the next part is checked too; plus the
        space's own check when the space was not reached."""
        problems: list[HopperError] = list(spec_problems(WorkloadSpec, spec))
        named = {(p.field or "").split(".")[0] for p in problems}
        checked = dict(spec)
        for _ in range(0 if problems else len(_NEUTRAL_SPEC_PARTS) + 1):
            try:
                self.launch_workload(checked, check_only=True)
                break
            except HopperError as exc:
                part = (exc.field or "").split(".")[0]
                if part in named:
                    break
                problems.append(exc)
                named.add(part)
                if part not in _NEUTRAL_SPEC_PARTS:
                    break
                # check the rest with a part known to pass in place of the faulty one
                checked[part] = _NEUTRAL_SPEC_PARTS[part]
        model = spec.get("model") or (f"script:{spec['script']}" if spec.get("script") is not None else None)
        if "space" not in named and isinstance(spec.get("space"), dict) and isinstance(model, str):
            try:
                self.check_space(spec["space"], model=model, procedure=str(spec.get("procedure") or "grid"))
            except HopperError as exc:
                if (exc.field or "").split(".")[0] not in named:
                    problems.append(exc)
        return problems

    def check_space(self, space: dict | None, *, model: str, procedure: str = "grid") -> str:
        """Check a search space exactly as a launch would (the wizard checks it as people type): empty for a
        procedure that needs one, a hyperparameter the roster model does not have, a value it refuses (an unknown
        optimizer, ``lr`` <= 0), a grid range without a step. ``model`` is a roster name or ``script:ID``.

        Returns:
            What the space holds: "2 grid points" for grid, "3 parameters" for the other procedures.

        Raises:
            ValidationError: ``field`` names the part at fault (``space.optimizer``).
        """
        space_raw = space or None
        if model.startswith("script:"):
            script_id = model.split(":", 1)[1]
            try:
                script = self.store.scripts.get(int(script_id))
            except (NotFound, ValueError):
                raise ValidationError(f"script {script_id} does not exist", field="script") from None
            space_raw = space_raw if space_raw is not None else script.validation.get("space")
        else:
            get_entry(model)
        if procedure not in PROCEDURES:
            raise ValidationError(f"unknown procedure {procedure!r}; choose one of {', '.join(PROCEDURES)}",
                                  field="procedure")
        objectives = [Objective("val_accuracy", "max"), Objective("val_loss", "min")]
        chosen = GUIDES[procedure]
        # the budget is checked with the procedure's options (check_procedure); here any budget will do
        checked = _checked_space(space_raw, model, procedure, objectives[:2 if chosen.multi_objective else 1],
                                 max_configs=1 if chosen.needs_budget else None)
        if procedure == "grid":
            return f"{checked.grid_size()} grid points"
        return f"{len(checked.names())} parameters"

    def list_procedures(self) -> list[ProcedureGuide]:
        """Every search procedure with what it does and the options it takes (defaults and bounds)."""
        return [GUIDES[name] for name in PROCEDURES]

    def check_procedure(self, procedure: str, options: dict, *, space: dict | None = None,
                        max_epochs: int | None = None, max_configs: int | None = None,
                        objectives: list[dict] | None = None) -> str:
        """Validate a procedure's options as a launch would (the wizard checks them as people type); returns a
        one-line description of the search, or raises ``ValidationError`` naming the option
        (``procedure_options.eta``)."""
        parsed = [Objective(o["metric"], o["direction"]) for o in objectives or [{"metric": "val_accuracy",
                                                                                  "direction": "max"}]]
        procedure_obj = make_procedure(procedure, SearchSpace.parse(space or {}), parsed[0],
                                       budget=max_configs, options=options, max_epochs=max_epochs, objectives=parsed)
        shown = ", ".join(f"{k}={v}" for k, v in sorted(options.items())) or "defaults"
        return f"{procedure_obj.name} with {shown}"

    def list_workloads(self) -> list[WorkloadInfo]:
        """Every workload with its config counts by status and its best config so far."""
        return self.store.workloads.list()

    def workload_progress(self, workload_ids: Iterable[int] | None = None) -> dict[int, WorkloadProgress]:
        """Per workload (all: None): epochs trained of those planned, and the configs on a worker now."""
        return {p.workload_id: p for p in self.store.workloads.progress(workload_ids)}

    def get_workload(self, workload_id: int) -> WorkloadInfo:
        """One workload with its config counts and best config."""
        return self.store.workloads.get(workload_id)

    def child_workloads(self, workload_id: int) -> list[tuple[int, str]]:
        """(id, name) of the drill-downs launched from a workload."""
        return self.store.workloads.children(workload_id)

    def set_workload_status(self, workload_id: int, status: str, *, actor: str | None = None) -> WorkloadInfo:
        """Pause (no new sub-epochs start; running ones finish and commit), stop or resume a whole workload."""
        actions = {WorkloadStatus.PAUSED: "pause_workload", WorkloadStatus.RUNNING: "resume_workload",
                   WorkloadStatus.STOPPED: "stop_workload"}
        if status not in actions:
            raise ValidationError("status must be 'paused', 'running' or 'stopped'", field="status")
        target = WorkloadStatus(status)
        return self._move_workload(workload_id, target, actions[target], actor)

    def pause_workload(self, workload_id: int, *, actor: str | None = None) -> WorkloadInfo:
        """No new sub-epoch of the workload starts; running ones finish and commit; resume continues it.

        Raises:
            NotFound: no such workload. InvalidState: it is not running.
        """
        return self._move_workload(workload_id, WorkloadStatus.PAUSED, "pause_workload", actor)

    def resume_workload(self, workload_id: int, *, actor: str | None = None) -> WorkloadInfo:
        """A paused or stopped workload runs again from its configs' checkpoints, at the next free slot.

        Raises:
            NotFound: no such workload. InvalidState: it is neither paused nor stopped.
        """
        return self._move_workload(workload_id, WorkloadStatus.RUNNING, "resume_workload", actor)

    def stop_workload(self, workload_id: int, *, actor: str | None = None) -> WorkloadInfo:
        """Stop a whole workload: running sub-epochs finish and commit, none starts; its configs keep their
        checkpoints (a resume continues them).

        Raises:
            NotFound: no such workload. InvalidState: it is not running or paused.
        """
        return self._move_workload(workload_id, WorkloadStatus.STOPPED, "stop_workload", actor)

    def _move_workload(self, workload_id: int, target: WorkloadStatus, action: str, actor: str | None) -> WorkloadInfo:
        self.store.workloads.set_status(workload_id, target, action=action, actor=actor or default_actor())
        return self.get_workload(workload_id)

    def set_workload_weight(self, workload_id: int, weight: float, *, actor: str | None = None) -> WorkloadInfo:
        """Change a workload's fair-share weight (its share of the workers against the other runnable
        workloads); the scheduler uses it from its next decision.

        Raises:
            Unprocessable: the weight is not a number in (0, 10000]. NotFound: no such workload.
            InvalidState: the workload failed or spent its budget.
        """
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 10_000:
            raise Unprocessable(f"weight must be a number above 0 and at most 10000, not {weight!r}", field="weight")
        self.store.workloads.set_weight(workload_id, float(weight), actor=actor or default_actor())
        return self.get_workload(workload_id)

    def workload_budget(self, workload_id: int) -> BudgetStatus:
        """What a workload spent of its budget, what remains, and its ETA (measured mean sub-epoch time x
        sub-epochs left / the workers its weight gives it against the running workloads).

        Raises:
            NotFound: no such workload.
        """
        workload = self.get_workload(workload_id)
        usage = self.store.workloads.usage(workload_id)
        budget = workload.budget or {}
        wall = max(0.0, (budget_math.utc_now() - workload.created_at).total_seconds())
        others = [w.weight for w in self.store.workloads.list()
                  if w.status == WorkloadStatus.RUNNING and w.id != workload_id]
        share = budget_math.worker_share(workload.weight, [workload.weight, *others], self.settings.workers)
        mean = usage.committed_seconds / usage.sub_epochs_done if usage.sub_epochs_done else None
        left = usage.sub_epochs_left  # counted per partition, as MOP dispatches them
        if (workload.plan_choice or {}).get("plan") == "replicated":
            # one dispatch trains a whole epoch, and the measured mean is such a dispatch's
            left = -(-left // max(1, self.store.datasets.get(workload.dataset_id).partition_count))
        return BudgetStatus(
            workload_id=workload_id, status=workload.status, weight=workload.weight, wall_seconds=wall,
            worker_seconds=usage.worker_seconds, money=budget_math.money_spent(budget, usage.worker_seconds),
            limits={name: budget.get(name) for name in budget_math.LIMITS},
            remaining=budget_math.remaining(budget, wall_seconds=wall, worker_seconds=usage.worker_seconds),
            spent=workload.status == WorkloadStatus.BUDGET_SPENT, sub_epochs_done=usage.sub_epochs_done,
            sub_epochs_left=left, mean_sub_epoch_seconds=mean, worker_share=share,
            eta_seconds=budget_math.eta_seconds(mean, left, share))

    def update_workload(self, workload_id: int, *, max_epochs: int | None = None, max_configs: int | None = None,
                        search_space: dict | None = None, actor: str | None = None) -> WorkloadInfo:
        """Change the epoch or config budget, or the search space, of a workload while it runs.

        A new space applies to configs proposed from now on; running configs keep their hparams. Configs done
        under a lower ``max_epochs`` continue under a higher one.
        """
        workload = self.get_workload(workload_id)
        new_space = None
        if search_space is not None:
            space = SearchSpace.parse(search_space)
            _check_space_for_model(workload.model_ref, space)
            objectives = [Objective(o["metric"], o["direction"]) for o in workload.objectives]
            make_procedure(workload.procedure, space, objectives[0], seed=workload.seed,
                           budget=workload.max_configs, options=workload.procedure_options,
                           max_epochs=workload.max_epochs, objectives=objectives).capacity()
            new_space = space.to_dict()
        if max_epochs is not None and max_epochs < 1:
            raise ValidationError("max_epochs must be at least 1", field="max_epochs")
        if max_configs is not None and max_configs < 1:
            raise ValidationError("max_configs must be at least 1", field="max_configs")
        self.store.workloads.update_budget(workload_id, actor=actor or default_actor(), max_epochs=max_epochs,
                                           max_configs=max_configs, search_space=new_space)
        return self.get_workload(workload_id)

    # -- configs ------------------------------------------------------------------------------------------------
    def list_configs(self, workload_id: int, *, status: str | None = None) -> list[ConfigInfo]:
        """All of a workload's configs with their latest metrics."""
        return self.page_configs(workload_id, status=status, limit=None)[0]

    def page_configs(self, workload_id: int, *, status: str | None = None, limit: int | None = 100,
                     offset: int = 0) -> tuple[list[ConfigInfo], int]:
        """One page of a workload's configs (by id) and the total count."""
        return self.store.configs.page(workload_id, status=status, limit=limit, offset=offset)

    def get_config(self, config_id: int) -> ConfigInfo:
        """A config with every per-epoch metric, oldest first."""
        return self.store.configs.get(config_id)

    def latest_checkpoint(self, config_id: int) -> CheckpointInfo | None:
        """A config's newest committed checkpoint (None before its first sub-epoch commits)."""
        return self.store.configs.latest_checkpoint(config_id)

    def workload_metrics(self, workload_id: int, name: str | None = None) -> dict[int, list[dict]]:
        """Every per-epoch metric of a workload's configs (optionally one metric): config id -> rows."""
        return self.store.configs.workload_metrics(workload_id, name)

    def _check_hparams(self, workload: WorkloadInfo, hparams: dict, field_prefix: str = "hparams") -> None:
        if not isinstance(hparams, dict) or not hparams and workload.procedure != "manual":
            raise ValidationError("hparams must be a non-empty mapping", field=field_prefix)
        for key, value in hparams.items():
            if not (isinstance(value, int | float | str | bool) or value is None):
                raise ValidationError(f"{field_prefix}.{key} must be a scalar", field=f"{field_prefix}.{key}")
        _check_model_hparams(workload.model_ref, list(hparams), hparams.items(), field_prefix)
        space = SearchSpace.parse(workload.search_space)
        for name in space.active_params(hparams):
            if name not in hparams:
                raise ValidationError(f"{field_prefix}.{name} is required (it is in the workload's space)",
                                      field=f"{field_prefix}.{name}")
        if hparams.get("weights_path"):
            data_mod.confine_path(hparams["weights_path"], self.settings.data_roots,
                                  field=f"{field_prefix}.weights_path")

    def add_config(self, workload_id: int, hparams: dict, *, priority: int = 0, actor: str | None = None) -> ConfigInfo:
        """A person's config: queued at once and told to the procedure like its own suggestions."""
        workload = self.get_workload(workload_id)
        if workload.status == WorkloadStatus.FAILED:
            raise InvalidState(f"workload {workload_id} has failed: {workload.error}")
        self._check_hparams(workload, hparams)
        hparams = with_noise(workload, hparams)
        return self.store.configs.add(workload_id, hparams, priority=priority, origin="user",
                                      actor=actor or default_actor(), action="add_config",
                                      event_after={"workload_id": workload_id, "hparams": hparams,
                                                   "priority": priority})

    def stop_config(self, config_id: int, *, expected_version: int | None = None,
                    actor: str | None = None) -> ConfigInfo:
        """Stop after the running sub-epoch (its work is committed, nothing more is scheduled)."""
        return self.store.configs.transition(config_id, ConfigStatus.STOPPED, action="stop",
                                             actor=actor or default_actor(), expected_version=expected_version)

    def resume_config(self, config_id: int, *, expected_version: int | None = None,
                      actor: str | None = None) -> ConfigInfo:
        """Continue a stopped (or failed) config from its last committed checkpoint; for a config paused at a
        rung by its procedure, this is a person's promotion past the rung (the procedure does not pause it there
        again: its decision for that rung is already applied)."""
        config = self.store.configs.get(config_id, with_metrics=False)
        workload = self.get_workload(config.workload_id)
        if config.status == ConfigStatus.PRIVACY_SPENT:
            raise InvalidState(
                f"config {config_id} cannot be resumed: it spent its privacy budget (epsilon "
                f"{config.latest_metrics.get('epsilon', float('nan')):.4g}; one more epoch would exceed "
                f"privacy.target_epsilon {(workload.privacy or {}).get('target_epsilon')}). Its checkpoints stay "
                "usable for export; to train further, launch a workload with a larger target_epsilon")
        if config.status in FINISHED_CONFIG and config.epochs_done >= workload.max_epochs:
            raise InvalidState(f"config {config_id} has trained all {workload.max_epochs} epochs; "
                               "raise the workload's max_epochs to train it further")
        return self.store.configs.transition(config_id, ConfigStatus.QUEUED, action="resume",
                                             actor=actor or default_actor(), expected_version=expected_version,
                                             clear_error=True)

    def set_priority(self, config_id: int, priority: int, *, expected_version: int | None = None,
                     actor: str | None = None) -> ConfigInfo:
        """Higher priority configs get the next free worker first."""
        if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 1_000_000:
            raise ValidationError("priority must be an integer in [-1000000, 1000000]", field="priority")
        return self.store.configs.set_priority(config_id, priority, actor=actor or default_actor(),
                                               expected_version=expected_version)

    def clone_config(self, config_id: int, overrides: dict | None = None, *, priority: int | None = None,
                     expected_version: int | None = None, actor: str | None = None,
                     decision: dict | None = None, replaces: int | None = None) -> ConfigInfo | None:
        """A new config starting from the source's trained weights, with hparam overrides (lr, batch_size, ...).

        With a PBT ``decision`` (exploit) the clone continues from its source's epoch count, the config it
        ``replaces`` is stopped and the decision recorded, in one transaction; None when it was applied before.
        """
        overrides = dict(overrides or {})
        source = self.store.configs.get(config_id, with_metrics=False)
        check_version(source, expected_version)  # a stale version is a 409 before any override is judged
        workload = self.get_workload(source.workload_id)
        hparams = {**source.hparams, **overrides}
        self._check_hparams(workload, hparams, field_prefix="overrides")
        checkpoint = self.store.configs.latest_checkpoint(config_id)
        if checkpoint is not None and (workload.privacy or {}).get("target_epsilon") is not None:
            # The stop rule only runs at epoch ends: refuse a clone whose very first epoch would overspend.
            inherited = self.store.schedule.inherited_dp_events(checkpoint.id)
            upcoming = privacy.next_epoch_epsilon(inherited, workload.privacy, hparams, max_epochs=workload.max_epochs)
            if upcoming > workload.privacy["target_epsilon"]:
                raise InvalidState(
                    f"a clone of config {config_id} would spend epsilon {upcoming:.4g} in its first epoch (it "
                    f"inherits what config {config_id} spent), past privacy.target_epsilon "
                    f"{workload.privacy['target_epsilon']:g}; raise noise_multiplier in the overrides")
        notes = None if checkpoint else f"config {config_id} had no checkpoint yet: the clone starts untrained"
        warm = checkpoint.id if checkpoint else None
        # PBT: the exploited weights have trained epoch+1 epochs; the clone goes on from there, not from zero.
        epochs_done = checkpoint.epoch + 1 if decision is not None and checkpoint is not None else 0
        if epochs_done >= workload.max_epochs:
            raise InvalidState(f"an exploit of config {config_id} would continue from its epoch {epochs_done} of "
                               f"{workload.max_epochs}, with nothing left to train")
        if decision is not None:
            notes = f"{decision['reason']} (replaces config {replaces})"
        return self.store.configs.add(
            source.workload_id, hparams, priority=source.priority if priority is None else int(priority),
            origin="clone", actor=actor or default_actor(), action="clone_config", cloned_from=source.id,
            source_version=expected_version, warm_start_checkpoint_id=warm, notes=notes,
            event_before={"source": config_id}, event_after={"overrides": overrides, "warm_start_checkpoint_id": warm},
            epochs_done=epochs_done, replaces=replaces, decision=decision)

    # -- procedures' decisions ----------------------------------------------------------------------------------
    def procedure_decisions(self, workload_id: int) -> list[Decision]:
        """What the workload's procedure decides now, not yet applied (rebuilt from the store: pure)."""
        if not decides(self.get_workload(workload_id)):
            return []
        decisions = self.store.workloads.decide(workload_id, decisions_for) or []
        applied = self.store.configs.applied_decision_keys(workload_id) if decisions else set()
        return [d for d in decisions if d.key not in applied]

    def run_procedure(self, workload_id: int) -> int:
        """Ask the workload's procedure for decisions and route each one; how many took effect.

        The scheduler calls this after epoch ends and once at start, before it dispatches.
        """
        applied = 0
        workload = self.get_workload(workload_id)
        if workload.advisor:  # suggestions this epoch made moot expire now, not at the procedure's next decision
            self.store.suggestions.record(workload_id, workload.procedure, [])
        for decision in self.procedure_decisions(workload_id):
            try:
                applied += bool(self.route_decision(workload_id, decision))
            except (ValidationError, InvalidState) as exc:
                # One decision the services refuse (an explored value the model rejects, a clone that would
                # overspend privacy) is skipped and logged; the others still apply.
                log.warning("workload %d: decision %s not applied: %s", workload_id, decision.key, exc.message)
        return applied

    def route_decision(self, workload_id: int, decision: Decision) -> bool:
        """Where a procedure's decision goes: applied at once, or, when the workload runs its procedure as an
        advisor, kept as a suggestion for people (once per key: a rejected one is not suggested again). True when
        it took effect."""
        workload = self.get_workload(workload_id)
        if workload.advisor:
            self.store.suggestions.record(workload_id, workload.procedure, [decision])
            return False
        return self.apply_decision(workload_id, decision, actor=f"procedure:{workload.procedure}") is not None

    def apply_decision(self, workload_id: int, decision: Decision, actor: str) -> ConfigInfo | None:
        """Apply a procedure's decision through the same services as a person's stop, resume and clone, audited
        with the decision's key and reason. Idempotent by ``decision.key``: a second application (after a
        restart, or an advisor suggestion accepted twice) is a no-op returning None, as is a decision the
        config outgrew (a pause for a config that finished, a promotion of a config a person stopped).

        Returns:
            The config changed (for an exploit: the new config), or None when nothing was applied.
        """
        if not decision.key:
            raise ValidationError("a procedure's decision needs a key", field="key")
        config = self.store.configs.get(decision.config_id, with_metrics=False)
        if config.workload_id != workload_id:
            raise ValidationError(f"config {config.id} is not in workload {workload_id}", field="config_id")
        record = {"workload_id": workload_id, "key": decision.key, "kind": DecisionKind(decision.kind).value,
                  "config_id": decision.config_id, "source_config_id": decision.source_config_id,
                  "reason": decision.reason[:5000], "actor": actor}
        try:
            return self._apply_decision(config, decision, record, actor)
        except Conflict:
            # Two appliers raced on the same key (the store's uniqueness refused the second): already done.
            if decision.key in self.store.configs.applied_decision_keys(workload_id):
                return None
            raise

    def _apply_decision(self, config: ConfigInfo, decision: Decision, record: dict, actor: str) -> ConfigInfo | None:
        kind = DecisionKind(decision.kind)
        status = ConfigStatus(config.status)
        if kind == DecisionKind.STOP:
            if not can_transition(status, ConfigStatus.STOPPED):
                return None
            return self.store.configs.transition(config.id, ConfigStatus.STOPPED, action="stop", actor=actor,
                                                 decision=record)
        if kind == DecisionKind.PAUSE:
            if status not in RUNNABLE_CONFIG:
                return None
            return self.store.configs.transition(config.id, ConfigStatus.PAUSED, action="pause", actor=actor,
                                                 decision=record)
        if kind == DecisionKind.PROMOTE:
            if status == ConfigStatus.PAUSED:
                return self.store.configs.transition(config.id, ConfigStatus.QUEUED, action="promote", actor=actor,
                                                     decision=record)
            if status in RUNNABLE_CONFIG:  # promoted on arrival at the rung: it just goes on, audited
                return config if self.store.configs.record_decision(record, actor=actor) else None
            return None  # stopped (by a person or a rule), done or failed: never resurrected
        if decision.source_config_id is None:
            raise ValidationError("an exploit decision needs source_config_id", field="source_config_id")
        if status not in RUNNABLE_CONFIG:
            return None  # a person stopped the target meanwhile: nothing to replace
        return self.clone_config(decision.source_config_id, decision.hparams or {}, actor=actor, decision=record,
                                 replaces=config.id)

    def list_decisions(self, workload_id: int) -> list[AppliedDecision]:
        """Every decision a workload's procedure applied (or a person accepted), oldest first."""
        return self.store.configs.decisions(workload_id)

    # -- what the search learnt ---------------------------------------------------------------------------------
    def objective_front(self, workload_id: int) -> ObjectiveFront:
        """The Pareto set of a workload's configs on its declared objectives, and its hypervolume per epoch.

        Raises:
            ValidationError: the workload declares a single objective (it has a best config, not a front).
        """
        workload = self.get_workload(workload_id)
        if len(workload.objectives) < 2:
            raise ValidationError(f"workload {workload_id} declares one objective ({workload.objectives[0]['metric']});"
                                  " a Pareto front needs two or more", field="x")
        metrics = [o["metric"] for o in workload.objectives]
        signs = [-1.0 if o["direction"] == "max" else 1.0 for o in workload.objectives]
        history: dict[int, dict[int, dict[str, float]]] = {}  # config -> epoch -> metric -> value
        for config_id, rows in self.store.configs.workload_metrics(workload_id).items():
            for row in rows:
                if row["name"] in metrics:
                    history.setdefault(config_id, {}).setdefault(row["epoch"] + 1, {})[row["name"]] = row["value"]

        def state_after(config_id: int, epoch: int) -> list[float] | None:
            known: dict[str, float] = {}
            for e in sorted(x for x in history[config_id] if x <= epoch):
                known.update(history[config_id][e])
            return [known[m] for m in metrics] if all(m in known for m in metrics) else None

        last_epoch = max((max(h) for h in history.values()), default=0)
        per_epoch = {e: {c: v for c in history if (v := state_after(c, e)) is not None}
                     for e in range(1, last_epoch + 1)}
        every = [[s * x for s, x in zip(signs, v, strict=True)] for pts in per_epoch.values() for v in pts.values()]
        if not every:
            return ObjectiveFront(workload_id, workload.objectives, {}, [], [])
        reference = fronts.reference_point(every)
        epochs = []
        for epoch, pts in per_epoch.items():
            ids = list(pts)
            losses = [[s * x for s, x in zip(signs, pts[c], strict=True)] for c in ids]
            epochs.append({"epoch": epoch, "hypervolume": fronts.hypervolume(losses, reference),
                           "front": [ids[i] for i in fronts.pareto_indices(losses)]})
        latest = per_epoch[last_epoch]
        ids = list(latest)
        on_front = {ids[i] for i in fronts.pareto_indices(
            [[s * x for s, x in zip(signs, latest[c], strict=True)] for c in ids])}
        points = [{"config_id": c, "values": dict(zip(metrics, latest[c], strict=True)), "on_front": c in on_front}
                  for c in ids]
        return ObjectiveFront(workload_id, workload.objectives,
                              {m: s * r for m, s, r in zip(metrics, signs, reference, strict=True)}, points, epochs)

    def importance(self, workload_id: int) -> Importance:
        """fANOVA importance of the searched hyperparameters for the primary objective, computed on demand and
        cached until a config of the workload changes (a new epoch, a new config, a status).

        Raises:
            Conflict: too few configs have a result yet (or none differ in a searched parameter).
        """
        workload = self.get_workload(workload_id)
        objective = workload.objectives[0]
        configs = self.list_configs(workload_id)
        stamp = (workload.updated_at, tuple((c.id, c.version, c.epochs_done) for c in configs))
        cached = self._importance_cache.get(workload_id)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        results = [(dict(c.hparams), c.latest_metrics[objective["metric"]]) for c in configs
                   if c.latest_metrics.get(objective["metric"]) is not None]
        shares = importance_mod.fanova(SearchSpace.parse(workload.search_space), results,
                                       direction=objective["direction"], seed=workload.seed, metric=objective["metric"])
        result = Importance(workload_id, objective["metric"], "fanova", len(results), shares)
        self._importance_cache[workload_id] = (stamp, result)
        return result

    def drill_down(self, config_id: int, space: dict, *, name: str | None = None, procedure: str = "grid",
                   max_configs: int | None = None, max_epochs: int | None = None,
                   actor: str | None = None) -> WorkloadInfo:
        """Launch a child workload on a refined space, warm-started from ``config_id``'s weights."""
        config = self.store.configs.get(config_id, with_metrics=False)
        parent = self.get_workload(config.workload_id)
        refined = SearchSpace.parse(space)
        refined.check_subset_of(SearchSpace.parse(parent.search_space))
        checkpoint = self.store.configs.latest_checkpoint(config_id)
        if checkpoint is None:
            raise InvalidState(f"config {config_id} has no trained checkpoint yet; drill down after its first epoch")
        spec = {
            "name": name or f"{parent.name} / drill-down from config {config_id}",
            "description": f"Drill-down from workload {parent.id}, config {config_id}",
            "dataset": parent.dataset_id, "procedure": procedure, "space": refined.to_dict(),
            "objectives": [{k: v for k, v in o.items() if k in ObjectiveSpec.model_fields} for o in parent.objectives],
            "max_epochs": max_epochs or parent.max_epochs,
            "max_configs": max_configs, "seed": parent.seed + 1,
        }
        if parent.privacy is not None:
            # The child trains on the same data from the parent's weights: same guarantee, same account.
            spec["privacy"] = {k: v for k, v in parent.privacy.items() if k in PrivacySpec.model_fields}
        if parent.script_id is not None:
            spec["script"] = parent.script_id
        else:
            spec["model"] = parent.model_ref
        return self.launch_workload(spec, actor=actor, parent_workload_id=parent.id, parent_config_id=config_id,
                                    warm_start_checkpoint_id=checkpoint.id)

    # -- the schedule log ---------------------------------------------------------------------------------------
    def content_revision(self, workload_id: int) -> tuple:
        """Changes whenever the workload's configs or schedule log do (what a reader may cache them by).

        Raises:
            NotFound: no workload ``workload_id``.
        """
        return self.store.schedule.content_revision(workload_id)

    def list_sub_epochs(self, workload_id: int | None = None, *, config_id: int | None = None,
                        limit: int = 10_000, offset: int = 0) -> list[SubEpochInfo]:
        """The schedule log (which worker trained which config on which partition, when), oldest first.

        Raises:
            NotFound: no workload ``workload_id``.
        """
        return self.store.schedule.list_sub_epochs(workload_id, config_id=config_id, limit=limit, offset=offset)


def _check_model_hparams(model_ref: str, names: list[str], values: Iterable[tuple[str, Any]], prefix: str) -> None:
    """A roster model must know every hyperparameter named and accept every value given for it."""
    if model_ref.startswith("script:"):
        return  # a script reads what it wants from its config
    check_hparams(model_ref, names, field_prefix=prefix)
    for key, value in values:
        check_hparam_value(model_ref, key, value, field=f"{prefix}.{key}")


def _check_entry_options(spec: WorkloadSpec, script: ScriptInfo) -> None:
    """entry_args only for a HyperModel class entry, and all the constructor arguments it needs."""
    needs = list(script.validation.get("needs_entry_args") or [])
    entry = script.validation.get("entry") or script.entry_point
    if spec.entry_args and script.kind != "hypermodel":
        raise ValidationError(f"entry_args: script {script.id}'s entry {entry} is a {script.kind}, not a HyperModel "
                              "class; constructor arguments apply to a HyperModel class only", field="entry_args")
    missing = [name for name in needs if name not in (spec.entry_args or {})]
    if missing:
        raise ValidationError(
            f"entry_args: script {script.id}'s {entry}.__init__ needs {', '.join(missing)}: give them as entry_args: "
            f"{{{', '.join(f'{a}: ...' for a in missing)}}}, or upload a script whose entry is an instance "
            f"(hypermodel = {entry}(...))", field="entry_args")
    unbound = [name for name in script.validation.get("needs_bind_globals") or [] if name not in
               (spec.bind_globals or {})]
    if unbound:
        raise ValidationError(
            f"bind_globals: script {script.id} reads module globals it does not define ({', '.join(unbound)}): bind "
            f"them to the training sample, e.g. bind_globals: {{{', '.join(f'{n}: x' for n in unbound)}}} "
            "(x features, y labels, frame the typed table)", field="bind_globals")


def _checked_space(space_raw: dict | None, model_ref: str, procedure: str, objectives: list[Objective], *,
                   seed: int = 0, max_configs: int | None = None, options: dict | None = None,
                   max_epochs: int = 3) -> SearchSpace:
    """The one check of a workload's space, shared by the launch and the wizard's live feedback."""
    if space_raw is None:  # an empty mapping is a space (a script whose search space is all fixed)
        if procedure != "manual":
            raise ValidationError(f"procedure {procedure!r} needs a search space", field="space")
        space_raw = {}
    space = SearchSpace.parse(space_raw)
    _check_space_for_model(model_ref, space)
    built = make_procedure(procedure, space, objectives[0], seed=seed, budget=max_configs, options=options or {},
                           max_epochs=max_epochs, objectives=objectives)
    if procedure == "grid":
        built.capacity()  # raises if a range has no step
    return space


def _check_space_for_model(model_ref: str, space: SearchSpace) -> None:
    _check_model_hparams(model_ref, space.names(), _space_values(space), "space")


def _space_values(space: SearchSpace) -> list[tuple[str, Any]]:
    """Every concrete value a space names (fixed values, choices, range bounds), with its parameter."""
    out: list[tuple[str, Any]] = []
    for name, p in space.params.items():
        if isinstance(p, Fixed):
            out.append((name, p.value))
        elif isinstance(p, Choice):
            out.extend((name, v) for v in p.values)
            for sub in p.when.values():
                out.extend(_space_values(sub))
        else:
            out.extend([(name, p.low), (name, p.high)])
    return out


def _possible_values(space: SearchSpace, name: str) -> list:
    p = space.params.get(name)
    if isinstance(p, Fixed):
        return [p.value]
    if isinstance(p, Choice):
        return list(p.values)
    return []


def _budget_record(spec: WorkloadSpec, settings: Any) -> dict | None:
    """The spec's budget as stored, with the price in force at launch (a later price change does not rewrite
    what a running workload has spent)."""
    if spec.budget is None or spec.budget.model_dump(exclude_none=True) == {}:
        return None
    record = spec.budget.model_dump(exclude_none=True)
    price = float(getattr(settings, "price_per_worker_hour", 0.0) or 0.0)
    if "money" in record:
        if price <= 0:
            raise Unprocessable("budget.money needs a price: set price_per_worker_hour in hopper.toml or "
                                "HOPPER_PRICE_PER_WORKER_HOUR (what one worker-hour costs), or give "
                                "budget.worker_seconds instead", field="budget.money")
        record["price_per_worker_hour"] = price
    return record


#: Bytes per value of a partition's arrays as workers hold them (features float32/int32, sparse labels int64).
_FEATURE_BYTES, _LABEL_BYTES = 4, 8


def largest_partition_bytes(dataset: Any) -> int:
    """Estimated memory of a dataset's largest partition on a worker: rows x (features + label) bytes."""
    return -(-int(dataset.n_train) // max(1, int(dataset.partition_count))) * _row_bytes(dataset)


def replicated_bytes(dataset: Any) -> int:
    """Estimated memory of a whole dataset on one worker (every training row and the validation split): what
    the replicated execution plan holds on every worker."""
    return (int(dataset.n_train) + int(dataset.n_validation)) * _row_bytes(dataset)


def _row_bytes(dataset: Any) -> int:
    features = 1
    for size in dataset.feature_shape or [1]:
        features *= int(size)
    columns = dataset.schema.get("columns") or []
    # typed tables hold string columns as Python objects: count a pointer plus a short string each
    strings = sum(1 for c in columns if c.get("type") in ("string", "text"))
    label = _LABEL_BYTES if dataset.label_kind == "sparse" else 4 * max(1, dataset.n_outputs)
    return features * _FEATURE_BYTES + strings * 64 + label


def _check_plan(plan: str, spec: Any, dataset: Any, settings: Any) -> None:
    """Refuse a forced replicated plan that cannot hold: DP-SGD's noise is calibrated on the partitions' sizes,
    and a dataset larger than a worker's data memory budget cannot sit whole on every worker."""
    if plan not in ("auto", "mop", "replicated"):
        raise ValidationError(f"the default_plan setting (HOPPER_DEFAULT_PLAN) must be auto, mop or replicated, not "
                              f"{plan!r}; or give the spec a plan", field="plan")
    if plan != "replicated":
        return
    if spec.privacy is not None:
        raise Unprocessable("plan: replicated cannot train with DP-SGD: its noise is calibrated on each partition's "
                            "size; use plan: mop or auto", field="plan")
    budget_mb = int(getattr(settings, "worker_data_memory_mb", 0) or 0)
    needed = replicated_bytes(dataset)
    if budget_mb > 0 and needed > budget_mb * 2**20:
        raise Unprocessable(
            f"plan: replicated puts all of dataset {dataset.name!r} on every worker, about {needed / 2**20:.1f} MiB, "
            f"more than the worker data memory budget of {budget_mb} MiB (worker_data_memory_mb); use plan: mop "
            "or auto, or raise HOPPER_WORKER_DATA_MEMORY_MB", field="plan")


def _check_data_fits_workers(dataset: Any, settings: Any) -> None:
    """Refuse at launch a dataset whose partition alone exceeds a worker's data memory budget (an OOM later
    would fail every config of the workload)."""
    budget_mb = int(getattr(settings, "worker_data_memory_mb", 0) or 0)
    if budget_mb <= 0:
        return
    needed = largest_partition_bytes(dataset)
    if needed > budget_mb * 2**20:
        raise Unprocessable(
            f"dataset {dataset.name!r}: its largest partition needs about {needed / 2**20:.1f} MiB on a worker, "
            f"more than the worker data memory budget of {budget_mb} MiB (worker_data_memory_mb); raise "
            "HOPPER_WORKER_DATA_MEMORY_MB, or register the dataset for more workers", field="dataset")
