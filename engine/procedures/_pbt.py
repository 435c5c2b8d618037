"""Population-based training (Jaderberg et al. 2017), on Hopper's clone path.

A population of ``population`` configs trains; every ``interval`` epochs a config in the bottom ``quantile``
*exploits* a config of the top quantile (a new config starts from that source's trained weights and optimizer
state: the clone path, continuing at the source's epoch count) and *explores* (numeric hparams ×0.8 or ×1.2,
or resampled with ``resample_probability``, clipped to the space); the exploited config is stopped. The new
config's ``cloned_from`` is its PBT parent, so the lineage is a tree in the store.
"""

from __future__ import annotations

import math

from hopper.engine.procedures._base import (
    Decision,
    Observation,
    Procedure,
    float_option,
    int_option,
)
from hopper.engine.procedures._explore import key_rng, perturb
from hopper.engine.status import ConfigStatus, DecisionKind

#: Configs that no longer take part: stopped (exploited, or by a person) or failed.
_OUT = frozenset({ConfigStatus.STOPPED, ConfigStatus.FAILED})


class PBTProcedure(Procedure):
    name = "pbt"
    OPTIONS = frozenset({"population", "interval", "quantile", "resample_probability"})

    def _configure(self) -> None:
        self.population = int_option(self.options, "population", 4, low=2, high=10_000)
        self.interval = int_option(self.options, "interval", 1, low=1, high=100_000)
        self.quantile = float_option(self.options, "quantile", 0.25, low=0.01, high=0.5)
        self.resample_probability = float_option(self.options, "resample_probability", 0.25, low=0.0, high=1.0)

    def capacity(self) -> int:
        return self.population  # the first generation; the rest are exploits, made by decisions

    def _propose(self, n: int) -> list[dict]:
        start = self.n_proposed
        return [self.space.sample(self.seed, start + i) for i in range(n)]

    def _score(self, obs: Observation, epoch: int) -> float | None:
        """A member's objective at ``epoch``, or its latest before it when it is behind (as Ray Tune ranks)."""
        for e in range(min(epoch, len(obs.curve)), 0, -1):
            if obs.curve[e - 1] is not None:
                return obs.curve[e - 1]
        return None

    def _decide(self) -> list[Decision]:
        members = [o for o in self.observations if o.status not in _OUT]
        out: list[Decision] = []
        exploited_sources: set[int] = set()
        for target in sorted(members, key=lambda o: o.config_id):
            epoch = target.epochs_done
            if (not target.runnable or epoch == 0 or epoch % self.interval
                    or (self.max_epochs is not None and epoch >= self.max_epochs)
                    or target.value_at(epoch) is None):
                continue  # not at an exploit point (a fresh clone waits until it has trained an interval)
            scored = [(s, o) for o in members if (s := self._score(o, epoch)) is not None]
            if len(scored) < 2:
                continue
            ranked = sorted(scored, key=lambda t: (self.objective.loss(t[0]), t[1].config_id))
            n_q = max(1, min(len(ranked) // 2, math.ceil(len(ranked) * self.quantile)))
            bottom = {o.config_id for _, o in ranked[-n_q:]}
            if target.config_id not in bottom or target.config_id in exploited_sources:
                continue
            # A source that has trained every epoch cannot donate: the clone continues from the source's epoch
            # count and would have nothing left to train (it stayed queued forever and the workload never ended).
            donors = [(s, o) for s, o in ranked[:n_q]
                      if self.max_epochs is None or o.epochs_done < self.max_epochs]
            if not donors:
                continue  # the top has finished: the target trains on as it is
            rng = key_rng(self.seed, "pbt", target.config_id, epoch)
            source_score, source = donors[rng.randrange(len(donors))]
            hparams, changes = perturb(self.space, source.hparams, rng,
                                       resample_probability=self.resample_probability)
            rank = next(i for i, (_, o) in enumerate(ranked, start=1) if o.config_id == target.config_id)
            metric = self.objective.metric
            reason = (f"pbt: epoch {epoch}, rank {rank}/{len(ranked)} (bottom {n_q}), {metric} "
                      f"{target.value_at(epoch):.4g}; exploits config {source.config_id} ({metric} {source_score:.4g}),"
                      f" explores {', '.join(changes) or 'no change'}")
            exploited_sources.add(source.config_id)
            out.append(Decision(DecisionKind.EXPLOIT, target.config_id, reason, source_config_id=source.config_id,
                                hparams=hparams, key=f"pbt:exploit:config{target.config_id}@epoch{epoch}"))
        return out
