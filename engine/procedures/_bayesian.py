"""Bayesian optimisation with KerasTuner's ``BayesianOptimizationOracle`` (a Gaussian process with an upper
confidence bound), driven ask/tell like TPE: the oracle is rebuilt from the store's configs at every ask, its
trials filled in memory (no project directory, no JSON state), and ``populate_space`` asked for the next values.

The first ``initial_points`` configs are random draws from the space's own seeded streams (as random search
draws them), so launching a workload never imports KerasTuner (nor TensorFlow) in the web process.
"""

from __future__ import annotations

from hopper.engine.procedures._base import Procedure, int_option, option_error
from hopper.engine.procedures._explore import snap
from hopper.engine.space import Choice, Range


class BayesianProcedure(Procedure):
    name = "bayesian"
    OPTIONS = frozenset({"initial_points", "alpha", "beta", "restarts"})
    needs_budget = True
    max_outstanding = 2

    def _configure(self) -> None:
        self.initial_points = int_option(self.options, "initial_points", 3, low=1, high=10_000)
        # KerasTuner restarts L-BFGS-B 50 times per ask: a minute on a busy 2-core machine, and the scheduler
        # waits for every ask. 8 restarts of the same acquisition find the same optimum on small spaces.
        self.restarts = int_option(self.options, "restarts", 8, low=1, high=1000)
        for name in ("alpha", "beta"):
            value = self.options.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise option_error(name, f"must be a positive number, got {value!r}")
        for name, p in self.space.params.items():
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
        oracle = _oracle_class()(
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
        oracle.num_restarts = self.restarts
        values = oracle.populate_space(f"new{index}")["values"] or self.space.sample(self.seed, index)
        active = self.space.active_params(values)
        hparams = {}
        for name, p in active.items():
            value = values.get(name)
            if isinstance(p, Range) and value is not None:
                value = snap(p, float(value))
            hparams[name] = value
        return hparams


def _oracle_class() -> type:
    """KerasTuner's oracle with its number of acquisition restarts made a parameter (it is fixed at 50 there);
    the Gaussian process, the trials' encoding and the upper confidence bound are KerasTuner's own."""
    import numpy as np
    import scipy.optimize
    from keras_tuner.src.engine import trial as trial_module
    from keras_tuner.src.tuners.bayesian import BayesianOptimizationOracle

    class RestartsOracle(BayesianOptimizationOracle):
        num_restarts = 50

        def populate_space(self, trial_id: str) -> dict:
            completed = [t for t in self.trials.values() if t.status == "COMPLETED"]
            if len(completed) < (self.num_initial_points or max(3 * len(self.hyperparameters.space), 3)):
                return self._random_populate_space()
            x, y = self._vectorize_trials()
            x = np.nan_to_num(x, posinf=0, neginf=0)
            y = np.nan_to_num(y, posinf=0, neginf=0)
            self.gpr.fit(x, y)

            def upper_confidence_bound(point: np.ndarray) -> float:
                mu, sigma = self.gpr.predict(point.reshape(1, -1), return_std=True)
                return float(np.ravel(mu - self.beta * sigma)[0])

            bounds = self._get_hp_bounds()
            best_value, best_x = float("inf"), None
            for x_try in self._random_state.uniform(bounds[:, 0], bounds[:, 1],
                                                    size=(self.num_restarts, bounds.shape[0])):
                result = scipy.optimize.minimize(upper_confidence_bound, x0=x_try, bounds=bounds, method="L-BFGS-B")
                value = float(np.ravel(result.fun)[0])
                if value < best_value:
                    best_value, best_x = value, result.x
            return {"status": trial_module.TrialStatus.RUNNING, "values": self._vector_to_values(best_x)}

    return RestartsOracle
