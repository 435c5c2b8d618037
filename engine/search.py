"""Asking a workload's procedure for new configs: at launch and by the scheduler between sub-epochs.

Pure functions over entities: the store rebuilds the inputs and writes the proposals in one transaction
(``WorkloadStore.create`` / ``WorkloadStore.top_up``), so a restarted scheduler proposes the same.
"""

from __future__ import annotations

from hopper.engine import privacy
from hopper.engine.entities import ConfigObservation, Proposal, WorkloadInfo
from hopper.engine.errors import ValidationError
from hopper.engine.procedures import PROCEDURES, Decision, Objective, Observation, Procedure, make_procedure
from hopper.engine.space import SearchSpace
from hopper.engine.status import RUNNABLE_CONFIG


def procedure_for(workload: WorkloadInfo, configs: list[ConfigObservation]) -> Procedure:
    """The workload's procedure, rebuilt: every config told, with its latest result and objective curve."""
    objectives = [Objective(o["metric"], o["direction"]) for o in workload.objectives]
    procedure = make_procedure(workload.procedure, SearchSpace.parse(workload.search_space), objectives[0],
                               seed=workload.seed, budget=workload.max_configs, options=workload.procedure_options,
                               max_epochs=workload.max_epochs, objectives=objectives)
    for c in configs:
        procedure.tell(Observation(
            dict(c.hparams), c.origin, c.latest_metrics.get(objectives[0].metric), c.status not in RUNNABLE_CONFIG,
            config_id=c.id, curve=tuple(c.curve), status=c.status, stopped_by_person=c.stopped_by_person,
            parent_id=c.parent_id, epochs_done=c.epochs_done, metrics=dict(c.latest_metrics)))
    return procedure


def decides(workload: WorkloadInfo) -> bool:
    """Whether the workload's procedure can decide anything (stop, pause, promote, exploit): grid, random, TPE
    and the other proposers cannot unless the median stopping rule is on, and then nothing is read for them."""
    cls = PROCEDURES.get(workload.procedure)
    if cls is None:
        return False
    return cls._decide is not Procedure._decide or bool((workload.procedure_options or {}).get("median_stop"))


def decisions_for(workload: WorkloadInfo, configs: list[ConfigObservation]) -> list[Decision]:
    """What the workload's procedure decides now (stop, pause, promote, exploit), rebuilt from the store: the
    same configs give the same decisions, with the same keys, before and after a scheduler restart."""
    return procedure_for(workload, configs).decide()


def propose(workload: WorkloadInfo, configs: list[ConfigObservation], *, n_workers: int) -> Proposal:
    """The configs the procedure wants now (enough to keep ``n_workers`` busy), and whether it is exhausted."""
    procedure = procedure_for(workload, configs)
    if procedure.is_done():
        return Proposal(exhausted=True)
    want = procedure.remaining_budget()
    if procedure.max_outstanding is not None:
        outstanding = sum(1 for o in procedure.observations if o.origin == "procedure" and not o.finished)
        want = max(procedure.max_outstanding, n_workers) - outstanding
    return Proposal([with_noise(workload, h) for h in procedure.ask(want)] if want and want > 0 else [])


def with_noise(workload: WorkloadInfo, hparams: dict) -> dict:
    """A config's hparams with the noise its workload's ``target_epsilon`` needs, resolved here once per config
    (stored with the config) so that no worker ever searches for it; unchanged for other workloads."""
    if not workload.privacy:
        return dict(hparams)
    try:
        return privacy.resolve_noise(workload.privacy, hparams, partition_rows=workload.privacy["partition_rows"],
                                     max_epochs=workload.max_epochs)
    except ValueError as exc:
        raise ValidationError(f"privacy.target_epsilon: {exc}", field="privacy.target_epsilon") from None
