"""Multi-objective search through Optuna's samplers: NSGA-II and multi-objective TPE, driven ask/tell on an
in-memory study rebuilt from the store at every ask (``create_study(directions=...)``, every finished config
added with ``create_trial``), so a restarted scheduler proposes the same and Optuna keeps no state of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hopper.engine.procedures._base import Procedure, int_option, option_error
from hopper.engine.space import Choice, Fixed, Range, SearchSpace, _choice_key


def distributions(space: SearchSpace, hparams: Mapping[str, Any]) -> dict:
    """Optuna distributions of the parameters active in ``hparams`` (fixed ones are not searched)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict = {}
    for name, p in space.active_params(hparams).items():
        if isinstance(p, Fixed):
            continue
        if isinstance(p, Choice):
            out[name] = CategoricalDistribution(list(p.values))
        elif p.is_int:
            out[name] = IntDistribution(int(p.low), int(p.high), step=int(p.step or 1))
        else:
            out[name] = FloatDistribution(p.low, p.high, log=p.is_log, step=None if p.is_log else p.step)
    return out


def suggest(space: SearchSpace, trial: Any) -> dict:
    """Walk the space define-by-run on an Optuna trial: a choice's conditional parameters only under it."""
    out: dict = {}
    for name, p in space.params.items():
        if isinstance(p, Fixed):
            out[name] = p.value
        elif isinstance(p, Choice):
            out[name] = trial.suggest_categorical(name, list(p.values))
            sub = p.when.get(_choice_key(out[name]))
            if sub is not None:
                out.update(suggest(sub, trial))
        elif isinstance(p, Range) and p.is_int:
            out[name] = trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1))
        else:
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.is_log, step=None if p.is_log else p.step)
    return out


class _OptunaMultiObjective(Procedure):
    needs_budget = True
    max_outstanding = 2

    def _configure(self) -> None:
        if len(self.objectives) < 2:
            raise option_error("objectives", f"procedure {self.name!r} searches two or more objectives "
                                             "(e.g. val_accuracy: max, params: min); this workload declares one")

    def remaining_budget(self) -> int | None:
        if self.budget is None:
            return 0
        return super().remaining_budget()

    def _sampler(self, seed: int) -> Any:
        raise NotImplementedError

    def _study(self, seed: int) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(directions=["maximize" if o.direction == "max" else "minimize"
                                                for o in self.objectives], sampler=self._sampler(seed))
        generation_key = f"{type(study.sampler).__name__}:generation"
        population = int(getattr(study.sampler, "_population_size", 0) or 0)
        k = 0
        for obs in self.observations:
            values = [obs.metrics.get(o.metric) for o in self.objectives]
            if not obs.finished or any(v is None for v in values) or not self.space.contains(obs.hparams):
                continue
            params = {n: obs.hparams[n] for n in distributions(self.space, obs.hparams)}
            # NSGA-II keeps its generations in trial attributes: configs are dealt into them in id order.
            attrs = {generation_key: k // population} if population else {}
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions(self.space, params),
                                                      values=values, system_attrs=attrs))
            k += 1
        return study

    def _propose(self, n: int) -> list[dict]:
        seed = (self.seed * 1_000_003 + self.n_proposed) % (2**31 - 1)
        study = self._study(seed)
        return [suggest(self.space, study.ask()) for _ in range(n)]


class NSGA2Procedure(_OptunaMultiObjective):
    """NSGA-II (Deb et al. 2002) via ``optuna.samplers.NSGAIISampler``."""

    name = "nsga2"
    OPTIONS = frozenset({"population_size", "mutation_prob", "crossover_prob"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.population_size = int_option(self.options, "population_size", 8, low=2, high=100_000)

    def _sampler(self, seed: int) -> Any:
        from optuna.samplers import NSGAIISampler

        return NSGAIISampler(population_size=self.population_size, seed=seed,
                             mutation_prob=self.options.get("mutation_prob"),
                             crossover_prob=float(self.options.get("crossover_prob", 0.9)))


class MOTPEProcedure(_OptunaMultiObjective):
    """Multi-objective TPE (Ozaki et al. 2020) via ``optuna.samplers.TPESampler`` on several directions."""

    name = "motpe"
    OPTIONS = frozenset({"n_startup_trials"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.n_startup_trials = int_option(self.options, "n_startup_trials", 5, low=1, high=100_000)

    def _sampler(self, seed: int) -> Any:
        from optuna.samplers import TPESampler

        return TPESampler(n_startup_trials=self.n_startup_trials, seed=seed, constant_liar=True)
