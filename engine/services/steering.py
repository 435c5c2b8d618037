"""Steering: launching workloads and every change a person makes to one while it runs.

The scheduler picks each change up between sub-epochs: a stop takes effect after the running sub-epoch, a
new or resumed config starts at the next free slot, a priority orders the queue from the next decision on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import partial
from typing import Any

from hopper.engine import data as data_mod
from hopper.engine import privacy
from hopper.engine.catalog import check_hparam_value, check_hparams, get_entry
from hopper.engine.entities import ConfigInfo, ScriptInfo, SubEpochInfo, WorkloadInfo
from hopper.engine.errors import InvalidState, NotFound, ValidationError
from hopper.engine.procedures import Objective, make_procedure
from hopper.engine.search import propose, with_noise
from hopper.engine.services._base import ServiceContext, default_actor
from hopper.engine.space import Choice, Fixed, SearchSpace
from hopper.engine.specs import PrivacySpec, WorkloadSpec, parse_spec
from hopper.engine.status import FINISHED_CONFIG, ConfigStatus, WorkloadStatus
from hopper.engine.store.configs import check_version

log = logging.getLogger("hopper.engine.services.steering")


class SteeringServices(ServiceContext):
    """Workloads and their configs."""

    # -- workloads ----------------------------------------------------------------------------------------------
    def launch_workload(self, spec: dict | WorkloadSpec, *, actor: str | None = None,
                        parent_workload_id: int | None = None, parent_config_id: int | None = None,
                        warm_start_checkpoint_id: int | None = None) -> WorkloadInfo:
        """Validate a workload spec and create the workload with its procedure's first configs.

        Raises:
            ValidationError: the spec is invalid; ``field`` names the offending part (``space.lr.low``).
        """
        spec = spec if isinstance(spec, WorkloadSpec) else parse_spec(WorkloadSpec, spec)
        actor = actor or default_actor()
        if (spec.model is None) == (spec.script is None):
            raise ValidationError("give exactly one of model (a roster name) or script (an uploaded script id)",
                                  field="model")
        dataset = self.store.datasets.get(spec.dataset, referenced=True)
        if dataset.partition_count != self.settings.workers:
            raise ValidationError(
                f"dataset {dataset.name!r} is partitioned for {dataset.partition_count} workers but Hopper "
                f"runs {self.settings.workers}; register it again with HOPPER_WORKERS={self.settings.workers}",
                field="dataset",
            )
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
        if space_raw is None:
            if spec.procedure != "manual":
                raise ValidationError(f"procedure {spec.procedure!r} needs a search space", field="space")
            space_raw = {}
        space = SearchSpace.parse(space_raw)
        _check_space_for_model(model_ref, space)
        objective = Objective(spec.objectives[0].metric, spec.objectives[0].direction)
        procedure = make_procedure(spec.procedure, space, objective, seed=spec.seed, budget=spec.max_configs)
        if spec.procedure == "grid":
            procedure.capacity()  # raises if a range has no step
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
        return self.store.workloads.create(
            actor=actor, spec_record={**spec.model_dump(mode="json"), "warnings": warnings},
            privacy=privacy_options, warnings=warnings or None,
            propose=partial(propose, n_workers=self.settings.workers),
            name=spec.name, description=spec.description, procedure=spec.procedure, search_space=space.to_dict(),
            objectives=[o.model_dump() for o in spec.objectives], max_epochs=spec.max_epochs,
            max_configs=spec.max_configs, seed=spec.seed, dataset_id=dataset.id, model_ref=model_ref,
            script_id=script_id, parent_workload_id=parent_workload_id, parent_config_id=parent_config_id,
            warm_start_checkpoint_id=warm_start_checkpoint_id, export_top_k=spec.export_top_k,
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

    def list_workloads(self) -> list[WorkloadInfo]:
        """Every workload with its config counts by status and its best config so far."""
        return self.store.workloads.list()

    def get_workload(self, workload_id: int) -> WorkloadInfo:
        """One workload with its config counts and best config."""
        return self.store.workloads.get(workload_id)

    def child_workloads(self, workload_id: int) -> list[tuple[int, str]]:
        """(id, name) of the drill-downs launched from a workload."""
        return self.store.workloads.children(workload_id)

    def set_workload_status(self, workload_id: int, status: str, *, actor: str | None = None) -> WorkloadInfo:
        """Pause (no new sub-epochs start; running ones finish and commit) or resume a whole workload."""
        if status not in (WorkloadStatus.PAUSED, WorkloadStatus.RUNNING):
            raise ValidationError("status must be 'paused' or 'running'", field="status")
        target = WorkloadStatus(status)
        action = "pause_workload" if target == WorkloadStatus.PAUSED else "resume_workload"
        self.store.workloads.set_status(workload_id, target, action=action, actor=actor or default_actor())
        return self.get_workload(workload_id)

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
            objective = Objective(workload.objectives[0]["metric"], workload.objectives[0]["direction"])
            make_procedure(workload.procedure, space, objective, seed=workload.seed,
                           budget=workload.max_configs).capacity()
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
        """Continue a stopped (or failed) config from its last committed checkpoint."""
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
                     expected_version: int | None = None, actor: str | None = None) -> ConfigInfo:
        """A new config starting from the source's trained weights, with hparam overrides (lr, batch_size, ...)."""
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
        return self.store.configs.add(
            source.workload_id, hparams, priority=source.priority if priority is None else int(priority),
            origin="clone", actor=actor or default_actor(), action="clone_config", cloned_from=source.id,
            source_version=expected_version, warm_start_checkpoint_id=warm, notes=notes,
            event_before={"source": config_id}, event_after={"overrides": overrides, "warm_start_checkpoint_id": warm})

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
            "objectives": parent.objectives, "max_epochs": max_epochs or parent.max_epochs,
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
    def list_sub_epochs(self, workload_id: int | None = None, *, config_id: int | None = None,
                        limit: int = 10_000) -> list[SubEpochInfo]:
        """The schedule log (which worker trained which config on which partition, when), oldest first."""
        return self.store.schedule.list_sub_epochs(workload_id, config_id=config_id, limit=limit)


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
