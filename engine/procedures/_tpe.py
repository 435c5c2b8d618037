"""TPE through hyperopt, driven ask/tell (its ``Trials`` + ``Domain``), never its blocking ``fmin``."""

from __future__ import annotations

from typing import Any

from hopper.engine.procedures._base import Procedure
from hopper.engine.space import Choice, Fixed, SearchSpace, _choice_key


def _hyperopt_vals(space: SearchSpace, hparams: dict, prefix: str = "") -> dict[str, list]:
    """hyperopt's ``misc.vals`` for a config: choice labels hold indices, ranges hold values."""
    vals: dict[str, list] = {}
    for name, p in space.params.items():
        label = prefix + name
        if isinstance(p, Fixed):
            continue
        value = hparams.get(name)
        if isinstance(p, Choice):
            keys = [_choice_key(v) for v in p.values]
            idx = keys.index(_choice_key(value)) if _choice_key(value) in keys else None
            vals[label] = [] if idx is None else [idx]
            for value_key, sub in p.when.items():
                inner = _hyperopt_vals(sub, hparams, prefix=f"{label}={value_key}/")
                active = idx is not None and keys[idx] == value_key
                vals.update({k: (v if active else []) for k, v in inner.items()})
        else:
            vals[label] = [] if value is None else [value]
    return vals


class TPEProcedure(Procedure):
    """Tree-structured Parzen estimators (hyperopt); sees user-added configs as observations."""

    name = "tpe"
    needs_budget = True
    max_outstanding = 2  # the scheduler raises it to the worker count

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from hyperopt import Domain

        self._expr = self.space.to_hyperopt()
        self._domain = Domain(lambda _: 0.0, self._expr)

    def remaining_budget(self) -> int | None:
        if self.budget is None:
            return 0
        return super().remaining_budget()

    def _trials(self):  # noqa: ANN202
        from hyperopt import STATUS_OK, Trials

        trials = Trials()
        docs = []
        for tid, obs in enumerate(o for o in self.observations if o.value is not None):
            if not self.space.contains(obs.hparams):
                continue  # a person's config outside the space cannot inform the model
            vals = _hyperopt_vals(self.space, obs.hparams)
            idxs = {k: ([tid] if v else []) for k, v in vals.items()}
            misc = {"tid": tid, "cmd": ("domain_attachment", "FMinIter_Domain"), "idxs": idxs, "vals": vals}
            result = {"status": STATUS_OK, "loss": self.objective.loss(obs.value)}
            docs.extend(trials.new_trial_docs([tid], [None], [result], [misc]))
        for doc in docs:
            doc["state"] = 2  # JOB_STATE_DONE
        if docs:
            trials.insert_trial_docs(docs)
        trials.refresh()
        return trials

    def _propose(self, n: int) -> list[dict]:
        from hyperopt import space_eval, tpe
        from hyperopt.base import spec_from_misc

        trials = self._trials()
        out = []
        base_id = len(trials.trials) + 10_000
        for i in range(n):
            seed = (self.seed * 1_000_003 + self.n_proposed + i) % (2**31 - 1)
            docs = tpe.suggest([base_id + i], self._domain, trials, seed)
            spec = spec_from_misc(docs[0]["misc"])
            sample = space_eval(self._expr, spec)
            out.append(self.space.from_hyperopt_sample(sample))
        return out
