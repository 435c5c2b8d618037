"""Search procedures: they propose configs and learn from results; they never train."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hopper.engine.errors import ValidationError
from hopper.engine.procedures._asha import ASHAProcedure, HyperbandProcedure
from hopper.engine.procedures._base import Decision, Objective, Observation, Procedure
from hopper.engine.procedures._bayesian import BayesianProcedure
from hopper.engine.procedures._evolution import EvolutionProcedure
from hopper.engine.procedures._multi import MOTPEProcedure, NSGA2Procedure
from hopper.engine.procedures._pbt import PBTProcedure
from hopper.engine.procedures._simple import GridProcedure, ManualProcedure, RandomProcedure
from hopper.engine.procedures._tpe import TPEProcedure
from hopper.engine.space import SearchSpace

PROCEDURES: dict[str, type[Procedure]] = {
    "grid": GridProcedure,
    "random": RandomProcedure,
    "tpe": TPEProcedure,
    "manual": ManualProcedure,
    "asha": ASHAProcedure,
    "hyperband": HyperbandProcedure,
    "pbt": PBTProcedure,
    "bayesian": BayesianProcedure,
    "evolution": EvolutionProcedure,
    "nsga2": NSGA2Procedure,
    "motpe": MOTPEProcedure,
}


def make_procedure(
    name: str, space: SearchSpace, objective: Objective, *, seed: int = 0, budget: int | None = None,
    options: Mapping[str, Any] | None = None, max_epochs: int | None = None,
    objectives: list[Objective] | None = None,
) -> Procedure:
    """Instantiate a procedure by name with its options; unknown names, missing budgets and invalid options
    are reported precisely (``field`` names the option: ``procedure_options.eta``)."""
    try:
        cls = PROCEDURES[name]
    except KeyError:
        raise ValidationError(
            f"unknown procedure {name!r}; choose one of {', '.join(PROCEDURES)}", field="procedure"
        ) from None
    if cls.needs_budget and budget is None:
        raise ValidationError(f"procedure {name!r} needs a budget: set max_configs", field="max_configs")
    return cls(space, objective, seed=seed, budget=budget, options=options, max_epochs=max_epochs,
               objectives=objectives)


__all__ = [
    "PROCEDURES",
    "ASHAProcedure",
    "BayesianProcedure",
    "EvolutionProcedure",
    "HyperbandProcedure",
    "MOTPEProcedure",
    "NSGA2Procedure",
    "PBTProcedure",
    "Decision",
    "GridProcedure",
    "ManualProcedure",
    "Objective",
    "Observation",
    "Procedure",
    "RandomProcedure",
    "TPEProcedure",
    "make_procedure",
]
