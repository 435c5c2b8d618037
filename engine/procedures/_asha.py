"""ASHA (asynchronous successive halving, Li et al. 2020) and asynchronous Hyperband over it.

Rungs are epochs: ``min_epochs``, ``min_epochs * eta``, ... below the workload's ``max_epochs``. A config that
reaches a rung continues at once if it ranks in the top 1/eta of every config that reached that rung so far,
else it pauses there; a paused config is promoted later, when configs arriving after it leave it in the top.
Any sampler proposes the configs: ``random``, ``tpe`` (BOHB-style) or ``bayesian``.

Hyperband here is the asynchronous variant (Li et al. 2020, section 4): configs are dealt round-robin to
brackets, bracket ``b`` runs ASHA from ``min_epochs * eta**b``, and the last bracket trains every config fully.
"""

from __future__ import annotations

from hopper.engine.procedures._base import (
    Decision,
    Objective,
    Observation,
    Procedure,
    int_option,
    option_error,
)
from hopper.engine.space import SearchSpace
from hopper.engine.status import ConfigStatus, DecisionKind

SAMPLERS = ("random", "tpe", "bayesian")


def _sampler(name: str, space: SearchSpace, objective: Objective, seed: int, budget: int | None) -> Procedure:
    from hopper.engine.procedures._bayesian import BayesianProcedure
    from hopper.engine.procedures._simple import RandomProcedure
    from hopper.engine.procedures._tpe import TPEProcedure

    cls = {"random": RandomProcedure, "tpe": TPEProcedure, "bayesian": BayesianProcedure}[name]
    return cls(space, objective, seed=seed, budget=budget)


class ASHAProcedure(Procedure):
    """Asynchronous successive halving; proposes through its sampler, decides at rungs."""

    name = "asha"
    OPTIONS = frozenset({"min_epochs", "eta", "sampler"})
    needs_budget = True
    # Few fresh configs at a time: a free worker goes to a promoted config before a new one, as in ASHA.
    max_outstanding = 2

    def _configure(self) -> None:
        self.eta = int_option(self.options, "eta", 3, low=2, high=100)
        self.min_epochs = int_option(self.options, "min_epochs", 1, low=1, high=100_000)
        if self.max_epochs is not None and self.min_epochs >= self.max_epochs:
            raise option_error("min_epochs", f"must be below the workload's max_epochs ({self.max_epochs}), got "
                                             f"{self.min_epochs}: the first rung must come before the last epoch")
        sampler = self.options.get("sampler", "random")
        if sampler not in SAMPLERS:
            raise option_error("sampler", f"must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        self.sampler = _sampler(sampler, self.space, self.objective, self.seed, self.budget)

    # -- proposing: the sampler's job -------------------------------------------------------------------------
    def tell(self, observation: Observation) -> None:
        super().tell(observation)
        self.sampler.tell(observation)

    def capacity(self) -> int | None:
        return self.sampler.capacity()

    def _propose(self, n: int) -> list[dict]:
        return self.sampler.ask(n)

    # -- deciding at rungs --------------------------------------------------------------------------------------
    def n_brackets(self) -> int:
        return 1

    def bracket_of(self, ordinal: int) -> int:
        """The bracket of the ``ordinal``-th config (0-based, in id order)."""
        return 0

    def rungs(self, bracket: int) -> list[int]:
        """The epochs at which configs of ``bracket`` are ranked (none at or past max_epochs)."""
        if self.max_epochs is None:
            raise option_error("max_epochs", "is needed to place the rungs")
        out, epoch = [], self.min_epochs * self.eta ** bracket
        while epoch < self.max_epochs:
            out.append(epoch)
            epoch *= self.eta
        return out

    def _decide(self) -> list[Decision]:
        brackets: dict[int, list[Observation]] = {}
        for ordinal, obs in enumerate(sorted(self.observations, key=lambda o: o.config_id)):
            brackets.setdefault(self.bracket_of(ordinal), []).append(obs)
        out: list[Decision] = []
        for bracket, members in sorted(brackets.items()):
            for level, rung in enumerate(self.rungs(bracket), start=1):
                out.extend(self._rung_decisions(bracket, level, rung, members))
        return out

    def _rung_decisions(self, bracket: int, level: int, rung: int, members: list[Observation]) -> list[Decision]:
        reached = [(o.value_at(rung), o) for o in members if o.value_at(rung) is not None]
        ranked = sorted(reached, key=lambda t: (self.objective.loss(t[0]), t[1].config_id))
        n_top = len(ranked) // self.eta
        cutoff = ranked[n_top - 1][0] if n_top else None
        where = f"bracket {bracket}, rung {level}" if self.n_brackets() > 1 else f"rung {level}"
        out = []
        for rank, (value, obs) in enumerate(ranked, start=1):
            if obs.epochs_done != rung:
                continue  # only configs waiting at this rung are decided about here
            top = rank <= n_top
            metric = self.objective.metric
            if top:
                verdict = f"{metric} {value:.4g} in the top {n_top} (cutoff {cutoff:.4g})"
            elif cutoff is not None:
                verdict = f"{metric} {value:.4g} {'<' if self.objective.direction == 'max' else '>'} cutoff {cutoff:.4g}"
            else:
                verdict = f"{metric} {value:.4g}; the top 1/{self.eta} is empty until {self.eta} configs reach it"
            reason = f"{self.name}: {where} (epoch {rung}), rank {rank}/{len(ranked)}, {verdict}"
            key = f"{self.name}:b{bracket}:rung{level}:config{obs.config_id}" if self.n_brackets() > 1 \
                else f"{self.name}:rung{level}:config{obs.config_id}"
            if obs.status == ConfigStatus.PAUSED:
                if top and not obs.stopped_by_person:
                    out.append(Decision(DecisionKind.PROMOTE, obs.config_id, reason, key=f"{key}:promote"))
            elif obs.runnable:
                # The first verdict at a rung is final for a config that continued: the same key for both
                # kinds means a later, worse ranking can never pause a config already past the rung.
                out.append(Decision(DecisionKind.PROMOTE if top else DecisionKind.PAUSE, obs.config_id, reason,
                                    key=key))
        return out


class HyperbandProcedure(ASHAProcedure):
    """Asynchronous Hyperband: ASHA in brackets of growing first rungs, configs dealt round-robin."""

    name = "hyperband"

    def n_brackets(self) -> int:
        if self.max_epochs is None:
            return 1
        n, epoch = 1, self.min_epochs
        while epoch * self.eta < self.max_epochs:
            epoch *= self.eta
            n += 1
        return n + 1  # the last bracket has no rung: its configs train every epoch

    def bracket_of(self, ordinal: int) -> int:
        return ordinal % self.n_brackets()
