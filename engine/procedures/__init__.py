"""Search procedures: they propose configs and learn from results; they never train."""

from __future__ import annotations

from hopper.engine.errors import ValidationError
from hopper.engine.procedures._base import Objective, Observation, Procedure
from hopper.engine.procedures._simple import GridProcedure, ManualProcedure, RandomProcedure
from hopper.engine.procedures._tpe import TPEProcedure
from hopper.engine.space import SearchSpace

PROCEDURES: dict[str, type[Procedure]] = {
    "grid": GridProcedure,
    "random": RandomProcedure,
    "tpe": TPEProcedure,
    "manual": ManualProcedure,
}


def make_procedure(
    name: str, space: SearchSpace, objective: Objective, *, seed: int = 0, budget: int | None = None
) -> Procedure:
    """Instantiate a procedure by name; unknown names and missing budgets are reported precisely."""
    try:
        cls = PROCEDURES[name]
    except KeyError:
        raise ValidationError(
            f"unknown procedure {name!r}; choose one of {', '.join(PROCEDURES)}", field="procedure"
        ) from None
    if cls in (RandomProcedure, TPEProcedure) and budget is None:
        raise ValidationError(f"procedure {name!r} needs a budget: set max_configs", field="max_configs")
    return cls(space, objective, seed=seed, budget=budget)


__all__ = [
    "PROCEDURES",
    "GridProcedure",
    "ManualProcedure",
    "Objective",
    "Observation",
    "Procedure",
    "RandomProcedure",
    "TPEProcedure",
    "make_procedure",
]
