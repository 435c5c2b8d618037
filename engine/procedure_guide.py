"""What each search procedure does and which options it takes, for people: the wizard's option fields, the
``GET /api/v1/procedures`` document, ``hopper procedures`` and the README.

The procedures themselves validate their options (``engine.procedures``, errors name ``procedure_options.<name>``);
this guide describes them, and a test holds the two together (every procedure has a guide, every option in a guide
is one the procedure takes, its default is accepted and a value past its bounds refused).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class OptionGuide:
    """One option of a procedure (``procedure_options.<name>`` in a workload spec)."""

    name: str
    kind: str  # "int" | "float" | "choice"
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProcedureGuide:
    name: str
    summary: str
    options: tuple[OptionGuide, ...] = ()
    needs_budget: bool = False  # max_configs is required
    decides: bool = False  # stops, pauses, promotes or exploits configs at epoch ends (advisor mode applies)
    multi_objective: bool = False  # needs two or more objectives

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "options": [asdict(o) for o in self.options]}


_EPOCHS = OptionGuide("min_epochs", "int", 1, "epochs before the first rung (rungs at min_epochs x eta^k)", 1, 100_000)
_ETA = OptionGuide("eta", "int", 3, "reduction factor: the top 1/eta of a rung is promoted", 2, 100)
_SAMPLER = OptionGuide("sampler", "choice", "random", "what proposes the configs (tpe: BOHB-style)",
                       choices=("random", "tpe", "bayesian"))

#: Options every procedure takes.
COMMON_OPTIONS: tuple[OptionGuide, ...] = (
    OptionGuide("median_stop.grace_epochs", "int", 1, "median stopping rule: epochs before a config may be stopped",
                0, 100_000),
    OptionGuide("median_stop.min_samples", "int", 3, "median stopping rule: other configs needed at that epoch",
                1, 100_000),
)

GUIDES: dict[str, ProcedureGuide] = {g.name: g for g in (
    ProcedureGuide("grid", "every combination of the space's values (ranges need a step)"),
    ProcedureGuide("random", "max_configs configs drawn at random, each parameter from its own stream",
                   needs_budget=True),
    ProcedureGuide("tpe", "Tree-structured Parzen Estimator (hyperopt), told every result", needs_budget=True),
    ProcedureGuide("manual", "no configs of its own: people add them"),
    ProcedureGuide("asha", "asynchronous successive halving: a config pauses at each rung until it ranks in the top "
                   "1/eta there (promoted) or loses", (_EPOCHS, _ETA, _SAMPLER), needs_budget=True, decides=True),
    ProcedureGuide("hyperband", "asynchronous Hyperband: ASHA in brackets of growing first rungs, configs dealt "
                   "round-robin", (_EPOCHS, _ETA, _SAMPLER), needs_budget=True, decides=True),
    ProcedureGuide("pbt", "population based training: every interval epochs the bottom quantile copies a top "
                   "config's weights and optimizer state (exploit) and perturbs its hparams (explore)", (
                       OptionGuide("population", "int", 4, "configs trained at once", 2, 10_000),
                       OptionGuide("interval", "int", 1, "epochs between exploit/explore steps", 1, 100_000),
                       OptionGuide("quantile", "float", 0.25, "bottom (and top) share of the population", 0.01, 0.5),
                       OptionGuide("resample_probability", "float", 0.25,
                                   "chance to resample an hparam instead of multiplying it by 0.8 or 1.2", 0.0, 1.0)),
                   decides=True),
    ProcedureGuide("bayesian", "Gaussian-process Bayesian optimisation (KerasTuner's oracle), asked and told", (
        OptionGuide("initial_points", "int", 3, "random configs before the model guides the search", 1, 10_000),
        OptionGuide("alpha", "float", 1e-4, "noise added to the kernel's diagonal (> 0)"),
        OptionGuide("beta", "float", 2.6, "exploration weight of the upper confidence bound (> 0)"),
        OptionGuide("restarts", "int", 8, "restarts of the acquisition optimiser per ask", 1, 1000)),
        needs_budget=True),
    ProcedureGuide("evolution", "regularised evolution: mutate the best of a random tournament of the last "
                   "population configs", (
                       OptionGuide("population", "int", 8, "configs the tournament draws from (the latest)", 2, 100_000),
                       OptionGuide("sample_size", "int", 3, "tournament size (at most population)", 1, 100_000)),
                   needs_budget=True),
    ProcedureGuide("nsga2", "NSGA-II over two or more objectives (Optuna's sampler, asked and told)", (
        OptionGuide("population_size", "int", 8, "configs per generation", 2, 100_000),),
        needs_budget=True, multi_objective=True),
    ProcedureGuide("motpe", "multi-objective TPE over two or more objectives (Optuna's sampler)", (
        OptionGuide("n_startup_trials", "int", 5, "random configs before the model guides the search", 1, 100_000),),
        needs_budget=True, multi_objective=True),
)}


def guide(name: str) -> ProcedureGuide | None:
    """The guide of a procedure, None for an unknown name (the procedure's own check says what exists)."""
    return GUIDES.get(name)


def options_from_fields(values: dict[str, Any]) -> dict[str, Any]:
    """``procedure_options`` from the wizard's fields (empty fields left out, so the procedure's default applies);
    dotted names (``median_stop.grace_epochs``) become nested mappings."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value in (None, ""):
            continue
        head, _, tail = name.partition(".")
        if tail:
            out.setdefault(head, {})[tail] = value
        else:
            out[name] = value
    return out


#: The procedures a drill-down may use (a refined space around one config: no rungs, no population).
DRILL_DOWN_PROCEDURES = ("grid", "random", "tpe")


def drill_down_procedure(parent_procedure: str, space: dict) -> str:
    """The procedure a drill-down starts with: the parent's when it is one a drill-down can use and fits the space,
    random otherwise (grid cannot enumerate a continuous range, which random and TPE parents usually have)."""
    from hopper.engine.errors import ValidationError
    from hopper.engine.space import SearchSpace

    chosen = parent_procedure if parent_procedure in DRILL_DOWN_PROCEDURES else "random"
    if chosen == "grid":
        try:
            SearchSpace.parse(space).grid_size()
        except ValidationError:
            return "random"
    return chosen
