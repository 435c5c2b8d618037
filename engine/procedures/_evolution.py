"""Regularised evolution (Real et al. 2019): the first ``population`` configs are random; each later one
mutates the best of a tournament of ``sample_size`` drawn from the ``population`` most recent finished configs,
so old configs age out however good they were."""

from __future__ import annotations

from hopper.engine.procedures._base import Procedure, int_option, option_error
from hopper.engine.procedures._explore import key_rng, mutate


class EvolutionProcedure(Procedure):
    name = "evolution"
    OPTIONS = frozenset({"population", "sample_size"})
    needs_budget = True
    max_outstanding = 2  # the scheduler raises it to the worker count

    def _configure(self) -> None:
        self.population = int_option(self.options, "population", 8, low=2, high=100_000)
        self.sample_size = int_option(self.options, "sample_size", 3, low=1, high=100_000)
        if self.sample_size > self.population:
            raise option_error("sample_size", f"must not exceed population ({self.population}), "
                                              f"got {self.sample_size}")
        #: What each proposal of this round descends from: (index, parent config id, mutation) for explanations.
        self.lineage: list[tuple[int, int | None, str]] = []

    def _propose(self, n: int) -> list[dict]:
        finished = [o for o in self.observations if o.finished and o.value is not None]
        out = []
        for i in range(n):
            index = self.n_proposed + i
            if index < self.population or not finished:
                out.append(self.space.sample(self.seed, index))
                self.lineage.append((index, None, "random"))
                continue
            rng = key_rng(self.seed, "evolution", index)
            window = finished[-self.population:]
            contenders = rng.sample(window, min(self.sample_size, len(window)))
            parent = min(contenders, key=lambda o: (self.objective.loss(o.value), o.config_id))
            child, change = mutate(self.space, parent.hparams, rng)
            out.append(child)
            self.lineage.append((index, parent.config_id, change))
        return out

    def remaining_budget(self) -> int | None:
        if self.budget is None:
            return 0
        return super().remaining_budget()
