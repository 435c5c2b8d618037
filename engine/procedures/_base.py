"""The ``Procedure`` interface: a search driver proposes configs and learns from results; it never trains."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from hopper.engine.space import SearchSpace


@dataclass(frozen=True)
class Objective:
    """A metric and the explicit direction in which it improves."""

    metric: str
    direction: str  # "max" | "min"

    def loss(self, value: float) -> float:
        """The value as a loss (lower is better), for minimising drivers."""
        return -value if self.direction == "max" else value

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "max" else a < b


@dataclass(frozen=True)
class Observation:
    """One config as a procedure sees it.

    Attributes:
        hparams: the config's hyperparameters.
        origin: ``procedure`` for the procedure's own suggestions; ``user``/``clone``/... otherwise.
        value: the objective's latest value, or None while no epoch has finished.
        finished: True once the config will train no further.
    """

    hparams: dict
    origin: str
    value: float | None = None
    finished: bool = False


class Procedure(ABC):
    """Base of all search procedures.

    A procedure is rebuilt from the store whenever the scheduler needs suggestions: every
    existing config is told first (user-added ones included), then ``ask`` proposes new ones.
    Rebuilding keeps the store the only state, so a restarted scheduler suggests the same.

    Args:
        space: the workload's search space.
        objective: the primary objective.
        seed: the workload's seed.
        budget: most configs the procedure may propose (None = as many as it has).
    """

    name: str = "base"
    #: How many unfinished own suggestions it wants at once; None = propose everything at once.
    max_outstanding: int | None = None

    def __init__(self, space: SearchSpace, objective: Objective, seed: int = 0, budget: int | None = None) -> None:
        self.space = space
        self.objective = objective
        self.seed = seed
        self.budget = budget
        self.observations: list[Observation] = []

    def tell(self, observation: Observation) -> None:
        """Record a config: its own suggestion or one a person added, with its result if any."""
        self.observations.append(observation)

    @property
    def n_proposed(self) -> int:
        return sum(1 for o in self.observations if o.origin == "procedure")

    def remaining_budget(self) -> int | None:
        capacity = self.capacity()
        limits = [x for x in (capacity, self.budget) if x is not None]
        return None if not limits else max(0, min(limits) - self.n_proposed)

    def capacity(self) -> int | None:
        """How many configs the procedure could ever propose (None = unbounded)."""
        return None

    def is_done(self) -> bool:
        """True when the procedure will propose nothing more."""
        remaining = self.remaining_budget()
        return remaining is not None and remaining <= 0

    def ask(self, n: int) -> list[dict]:
        """Propose up to ``n`` new configs (fewer when the budget runs out)."""
        remaining = self.remaining_budget()
        if remaining is not None:
            n = min(n, remaining)
        return self._propose(n) if n > 0 else []

    @abstractmethod
    def _propose(self, n: int) -> list[dict]:
        """Propose exactly ``n`` configs (the budget is already applied)."""
