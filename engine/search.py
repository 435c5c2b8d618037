"""Asking a workload's procedure for new configs: used at launch and by the scheduler between sub-epochs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hopper.engine.procedures import Objective, Observation, Procedure, make_procedure
from hopper.engine.space import SearchSpace
from hopper.engine.store import ConfigRow, WorkloadRow

RUNNABLE = ("queued", "running")


def procedure_for(session: Session, workload: WorkloadRow) -> Procedure:
    """The workload's procedure, rebuilt from the store: every config told, with its latest result."""
    objective = Objective(workload.objectives[0]["metric"], workload.objectives[0]["direction"])
    procedure = make_procedure(workload.procedure, SearchSpace.parse(workload.search_space), objective,
                               seed=workload.seed, budget=workload.max_configs)
    for c in session.scalars(select(ConfigRow).where(ConfigRow.workload_id == workload.id)):
        value = (c.latest_metrics or {}).get(objective.metric)
        procedure.tell(Observation(dict(c.hparams), c.origin, value, c.status not in RUNNABLE))
    return procedure


def top_up(session: Session, workload: WorkloadRow, n_workers: int) -> bool:
    """Add the configs the procedure wants now; returns True when it will propose nothing more."""
    procedure = procedure_for(session, workload)
    if procedure.is_done():
        return True
    want = procedure.remaining_budget()
    if procedure.max_outstanding is not None:
        outstanding = sum(1 for o in procedure.observations if o.origin == "procedure" and not o.finished)
        want = max(procedure.max_outstanding, n_workers) - outstanding
    if want and want > 0:
        for hparams in procedure.ask(want):
            session.add(ConfigRow(workload_id=workload.id, hparams=hparams, origin="procedure",
                                  warm_start_checkpoint_id=workload.warm_start_checkpoint_id))
        session.flush()
    return False
