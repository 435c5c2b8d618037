"""Bayesian optimisation with KerasTuner's ``BayesianOptimizationOracle`` (a Gaussian process with an upper
confidence bound), driven ask/tell like TPE: the oracle is rebuilt from the store's configs at every ask, its
trials filled in memory (no project directory, no JSON state), and ``populate_space`` asked for the next values.

The first ``initial_points`` configs are random draws from the space's own seeded streams (as random search
draws them), so launching a workload never imports KerasTuner (nor TensorFlow) in the web process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hopper.engine.procedures._base import Objective, Procedure, int_option, option_error
from hopper.engine.procedures._explore import snap
from hopper.engine.space import Choice, Range, SearchSpace


class BayesianProcedure(Procedure):
    name = "bayesian"
    OPTIONS = frozenset({"initial_points", "alpha", "beta"})
    needs_budget = True
    max_outstanding = 2

    def __init__(self, space: SearchSpace, objective: Objective, seed: int = 0, budget: int | None = None, *,
                 options: Mapping[str, Any] | None = None, max_epochs: int | None = None,
                 objectives: list[Objective] | None = None) -> None:
        super().__init__(space, objective, seed, budget, options=options, max_epochs=max_epochs,
                         objectives=objectives)
        self.initial_points = int_option(self.options, "initial_points", 3, low=1, high=10_000)
        for name in ("alpha", "beta"):
            value = self.options.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise option_error(name, f"must be a positive number, got {value!r}")
        for name, p in space.params.items():
            if isinstance(p, Choice) and len({type(v) for v in p.values}) > 1:
                raise option_error("space", f"{name}: a choice searched by the bayesian procedure must hold "
                                            f"values of one type, got {list(p.values)!r}")

    def remaining_budget(self) -> int | None:
        if self.budget is None:
            return 0
        return super().remaining_budget()

    def _completed(self) -> list:
        return [o for o in self.observations if o.finished and o.value is not None and self.space.contains(o.hparams)]

    def _propose(self, n: int) -> list[dict]:
        out = []
        completed = self._completed()
        pending = [o.hparams for o in self.observations if not o.finished and self.space.contains(o.hparams)]
        for i in range(n):
            index = self.n_proposed + i
            if len(completed) < self.initial_points:
                out.append(self.space.sample(self.seed, index))
            else:
                out.append(self._suggest(completed, pending + out, index))
        return out

    def _suggest(self, completed: list, pending: list[dict], index: int) -> dict:
        import keras_tuner as kt
        from keras_tuner.src.engine.trial import Trial, TrialStatus

        hps = self.space.to_keras_tuner()
        oracle = kt.oracles.BayesianOptimizationOracle(
            objective=kt.Objective(self.objective.metric, self.objective.direction),
            max_trials=max(self.budget or 0, index + 1), num_initial_points=self.initial_points,
            alpha=float(self.options.get("alpha", 1e-4)), beta=float(self.options.get("beta", 2.6)),
            seed=(self.seed * 1_000_003 + index) % (2**31 - 1), hyperparameters=hps)

        def trial(tid: str, values: dict, status: str, score: float | None = None) -> Trial:
            trial_hps = hps.copy()
            for name, value in values.items():
                if name in trial_hps.values:
                    trial_hps.values[name] = value
            t = Trial(trial_hps, trial_id=tid, status=status)
            t.score = score
            return t

        oracle.trials = {f"c{k}": trial(f"c{k}", o.hparams, TrialStatus.COMPLETED, o.value)
                         for k, o in enumerate(completed)}
        # Configs still training are "hallucinated" pessimistically by the oracle, so two asks differ.
        for k, values in enumerate(pending):
            t = trial(f"p{k}", values, TrialStatus.RUNNING)
            oracle.trials[t.trial_id] = t
            oracle.ongoing_trials[f"tuner{k}"] = t
        values = oracle.populate_space(f"new{index}")["values"] or self.space.sample(self.seed, index)
        active = self.space.active_params(values)
        hparams = {}
        for name, p in active.items():
            value = values.get(name)
            if isinstance(p, Range) and value is not None:
                value = snap(p, float(value))
            hparams[name] = value
        return hparams
