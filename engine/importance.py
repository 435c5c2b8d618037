"""Hyperparameter importance: fANOVA (Hutter et al. 2014) through Optuna's ``FanovaImportanceEvaluator``, over
a workload's configs and their objective, on an in-memory study (Optuna keeps no state of its own)."""

from __future__ import annotations

from collections.abc import Sequence

from hopper.engine.errors import Conflict
from hopper.engine.space import SearchSpace

#: fANOVA's random forest says nothing useful about fewer configs than this.
MIN_RESULTS = 4


def fanova(space: SearchSpace, results: Sequence[tuple[dict, float]], *, direction: str, seed: int,
           metric: str) -> dict[str, float]:
    """Each searched parameter's share of the objective's variance (they sum to 1), largest first.

    Raises:
        Conflict: fewer than ``MIN_RESULTS`` configs in the space have the objective, or none varies.
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    from hopper.engine.procedures._multi import distributions

    usable = [(h, v) for h, v in results if space.contains(h)]
    if len(usable) < MIN_RESULTS:
        raise Conflict(f"hyperparameter importance needs at least {MIN_RESULTS} configs with {metric} inside the "
                       f"workload's space; it has {len(usable)} so far: ask again when more epochs finished",
                       field="workload_id")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if direction == "max" else "minimize")
    for hparams, value in usable:
        dists = distributions(space, hparams)
        study.add_trial(optuna.trial.create_trial(params={n: hparams[n] for n in dists}, distributions=dists,
                                                  value=value))
    # fANOVA compares configs on the parameters they all have (a conditional one may be inactive in some).
    varied = {n for n in distributions(space, usable[0][0])
              if all(n in h for h, _ in usable) and len({repr(h[n]) for h, _ in usable}) > 1}
    if not varied:
        raise Conflict("hyperparameter importance needs configs that differ in a searched parameter; these "
                       "all share the same values", field="workload_id")
    importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed),
                                        params=sorted(varied))
    return {name: float(value) for name, value in importances.items()}
