"""The ``Procedure`` interface: a search driver proposes configs and learns from results; it never trains."""

from __future__ import annotations

import statistics
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hopper.engine.errors import ValidationError
from hopper.engine.space import SearchSpace
from hopper.engine.status import RUNNABLE_CONFIG, ConfigStatus, DecisionKind


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
        finished: True once the config does not occupy a worker (stopped, done, failed, paused at a rung).
        config_id: the config's id (0 in tests that only propose).
        curve: the objective's value after each committed epoch, oldest first (None where it was not measured).
        status: the config's status.
        stopped_by_person: its latest stop was a person's, not a procedure's: it is never promoted again.
        parent_id: the config whose weights it started from (a clone, a PBT exploit), if any.
        epochs_done: epochs committed (a PBT clone starts at its source's).
        metrics: its latest value of every metric (the other objectives of a multi-objective search).
    """

    hparams: dict
    origin: str
    value: float | None = None
    finished: bool = False
    config_id: int = 0
    curve: tuple[float | None, ...] = ()
    status: str = ConfigStatus.QUEUED
    stopped_by_person: bool = False
    parent_id: int | None = None
    epochs_done: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def runnable(self) -> bool:
        return self.status in RUNNABLE_CONFIG

    def value_at(self, epoch: int) -> float | None:
        """The objective after ``epoch`` epochs (1-based), or None when it has not got there."""
        return self.curve[epoch - 1] if 0 < epoch <= len(self.curve) else None


@dataclass(frozen=True)
class Decision:
    """What a procedure decides about one config at an epoch boundary.

    Attributes:
        kind: stop, pause (wait at a rung), promote (continue past it), exploit (PBT).
        config_id: the config decided about (for exploit: the target that is replaced and stopped).
        reason: why, as people read it in the audit log ("asha: rung 2 (epoch 4), rank 3/4, ...").
        source_config_id: exploit only: whose weights and optimizer state the new config starts from.
        hparams: exploit only: the explored hyperparameters of the new config.
        key: identifies the decision ("asha:rung2:config7"): applying a key twice is a no-op, and the store
            refuses a duplicate, so a procedure rebuilt after a restart may repeat what it already decided.
    """

    kind: DecisionKind
    config_id: int
    reason: str
    source_config_id: int | None = None
    hparams: dict | None = None
    key: str = ""


def option_error(name: str, message: str) -> ValidationError:
    return ValidationError(f"procedure_options.{name} {message}", field=f"procedure_options.{name}")


def int_option(options: Mapping[str, Any], name: str, default: int, *, low: int, high: int = 1_000_000) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise option_error(name, f"must be an integer in [{low}, {high}], got {value!r}")
    return value


def float_option(options: Mapping[str, Any], name: str, default: float, *, low: float, high: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise option_error(name, f"must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class MedianStop:
    """The median stopping rule (Golovin et al., Google Vizier): after ``grace_epochs``, stop a config whose
    best objective so far is worse than the median of the other configs' running averages at the same epoch,
    once at least ``min_samples`` others got there."""

    grace_epochs: int = 1
    min_samples: int = 3

    @classmethod
    def parse(cls, raw: Any) -> MedianStop | None:
        if raw is None or raw is False:
            return None
        if raw is True:
            return cls()
        if not isinstance(raw, Mapping):
            raise option_error("median_stop", "must be a mapping {grace_epochs, min_samples} or true")
        unknown = set(raw) - {"grace_epochs", "min_samples"}
        if unknown:
            raise option_error(f"median_stop.{sorted(unknown)[0]}", "is not an option; use grace_epochs, min_samples")
        return cls(int_option(raw, "grace_epochs", 1, low=0, high=100_000),
                   int_option(raw, "min_samples", 3, low=1, high=100_000))

    def decide(self, objective: Objective, observations: list[Observation]) -> list[Decision]:
        out = []
        for obs in observations:
            epoch = obs.epochs_done
            if not obs.runnable or epoch <= self.grace_epochs or obs.value_at(epoch) is None:
                continue
            averages = []
            for other in observations:
                values = [v for v in other.curve[:epoch] if v is not None]
                if other.config_id != obs.config_id and len(other.curve) >= epoch and values:
                    averages.append(sum(values) / len(values))
            if len(averages) < self.min_samples:
                continue
            median = statistics.median(averages)
            mine = [v for v in obs.curve[:epoch] if v is not None]
            best = max(mine) if objective.direction == "max" else min(mine)
            if objective.better(median, best):
                out.append(Decision(
                    DecisionKind.STOP, obs.config_id, key=f"median:config{obs.config_id}",
                    reason=(f"median stopping rule: epoch {epoch}, best {objective.metric} {best:.4g} is worse than "
                            f"the median {median:.4g} of {len(averages)} other configs' running averages")))
        return out


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
    #: Options every procedure accepts; ``advisor`` is read by advisor mode, not by the procedure.
    COMMON_OPTIONS: frozenset[str] = frozenset({"median_stop", "advisor"})
    #: The procedure's own options (``procedure_options`` in the workload spec).
    OPTIONS: frozenset[str] = frozenset()
    #: Whether it needs a config budget (``max_configs``).
    needs_budget: bool = False

    def __init__(self, space: SearchSpace, objective: Objective, seed: int = 0, budget: int | None = None, *,
                 options: Mapping[str, Any] | None = None, max_epochs: int | None = None,
                 objectives: list[Objective] | None = None) -> None:
        self.space = space
        self.objective = objective
        self.objectives = list(objectives) if objectives else [objective]
        self.seed = seed
        self.budget = budget
        self.max_epochs = max_epochs
        self.observations: list[Observation] = []
        options = dict(options or {})
        unknown = sorted(set(options) - self.COMMON_OPTIONS - self.OPTIONS)
        if unknown:
            known = ", ".join(sorted(self.COMMON_OPTIONS | self.OPTIONS))
            raise option_error(unknown[0], f"is not an option of procedure {self.name!r}; it takes {known}")
        self.options = options
        self.median_stop = MedianStop.parse(options.get("median_stop"))
        self._configure()

    def _configure(self) -> None:
        """Read and check the procedure's own options (``self.options``) once the common state is set."""
        return  # grid, random, tpe and manual take no options of their own

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

    def decide(self) -> list[Decision]:
        """Stop, pause, promote or exploit configs, from the told observations only (pure: no store, no TF).

        Rebuilt procedures decide the same from the same observations; decisions already applied come back
        with the same keys and are no-ops. The median stopping rule, when set, applies to every procedure.
        """
        decisions = self._decide()
        if self.median_stop is not None:
            decided = {d.config_id for d in decisions}
            decisions += [d for d in self.median_stop.decide(self.objective, self.observations)
                          if d.config_id not in decided]
        return decisions

    def _decide(self) -> list[Decision]:
        """The procedure's own decisions; none for procedures that only propose."""
        return []
