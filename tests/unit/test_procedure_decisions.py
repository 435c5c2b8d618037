"""What the pruning and learning procedures decide, on synthetic learning curves (no TensorFlow, no store):
rungs, brackets, the median rule, PBT's exploit/explore, evolution's mutations, restart equivalence and
human interventions, and the options' validation."""

import pytest

from hopper.engine.errors import ValidationError
from hopper.engine.procedures import Decision, Objective, Observation, make_procedure
from hopper.engine.space import SearchSpace
from hopper.engine.status import ConfigStatus, DecisionKind

SPACE = SearchSpace.parse({"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
                           "units": {"type": "choice", "values": [16, 32, 64, 128]},
                           "dropout": {"type": "uniform", "low": 0.0, "high": 0.5, "step": 0.1},
                           "act": {"type": "choice", "values": ["relu", "tanh"]}})
ACC = Objective("val_accuracy", "max")
R, Q, P, S = ConfigStatus.RUNNING, ConfigStatus.QUEUED, ConfigStatus.PAUSED, ConfigStatus.STOPPED


def obs(config_id, curve, status=R, *, hparams=None, person=False, parent=None, epochs=None, origin="procedure"):
    curve = tuple(curve)
    status = ConfigStatus(status)
    return Observation(hparams or SPACE.sample(7, config_id), origin, next((v for v in reversed(curve) if v), None),
                       status not in (R, Q), config_id=config_id, curve=curve, status=status,
                       stopped_by_person=person, parent_id=parent, epochs_done=len(curve) if epochs is None else epochs)


def build(name, observations, *, max_epochs=9, options=None, objectives=None, seed=0, budget=27):
    proc = make_procedure(name, SPACE, (objectives or [ACC])[0], seed=seed, budget=budget, options=options,
                          max_epochs=max_epochs, objectives=objectives)
    for o in observations:
        proc.tell(o)
    return proc


def by_config(decisions):
    return {d.config_id: d for d in decisions}


def pending(decisions, applied):
    return [d for d in decisions if d.key not in applied]


# -- ASHA ---------------------------------------------------------------------------------------------------------
def test_asha_rungs_promote_the_top_third_and_pause_the_rest():
    proc = build("asha", [obs(1, [0.5]), obs(2, [0.7]), obs(3, [0.9]), obs(4, [])], options={"eta": 3})
    assert proc.rungs(0) == [1, 3]
    got = by_config(proc.decide())
    assert set(got) == {1, 2, 3}, "a config that has not reached the rung is not decided about"
    assert got[3].kind == DecisionKind.PROMOTE and got[1].kind == got[2].kind == DecisionKind.PAUSE
    assert got[1].key == "asha:rung1:config1"
    assert got[1].reason == "asha: rung 1 (epoch 1), rank 3/3, val_accuracy 0.5 < cutoff 0.9"
    assert "in the top 1" in got[3].reason


def test_asha_pauses_the_first_arrivals_and_promotes_them_when_later_ones_rank_below():
    applied = set()
    first = build("asha", [obs(1, [0.8]), obs(2, [])]).decide()
    assert [(d.kind, d.config_id) for d in first] == [(DecisionKind.PAUSE, 1)]
    assert "empty until 3 configs reach it" in first[0].reason
    applied |= {d.key for d in first}
    later = build("asha", [obs(1, [0.8], P), obs(2, [0.6]), obs(3, [0.7])]).decide()
    todo = pending(later, applied)
    assert {(d.kind, d.config_id) for d in todo} == {(DecisionKind.PROMOTE, 1), (DecisionKind.PAUSE, 2),
                                                     (DecisionKind.PAUSE, 3)}
    assert by_config(todo)[1].key == "asha:rung1:config1:promote"


def test_asha_never_demotes_a_config_that_went_past_its_rung():
    applied = {"asha:rung1:config1"}  # promoted on arrival, now training epoch 2
    proc = build("asha", [obs(1, [0.6]), obs(2, [0.9]), obs(3, [0.95])])
    assert by_config(proc.decide())[1].kind == DecisionKind.PAUSE  # what it would say on arrival now ...
    assert 1 not in by_config(pending(proc.decide(), applied))  # ... is the same key: a no-op


def test_asha_second_rung_and_done_configs():
    proc = build("asha", [obs(1, [0.5, 0.6, 0.7]), obs(2, [0.6, 0.7, 0.9]), obs(3, [0.7, 0.8, 0.8]),
                          obs(4, [0.1, 0.2, 0.3, 0.4], ConfigStatus.DONE)], options={"eta": 3}, max_epochs=4)
    got = [d for d in proc.decide() if ":rung2:" in d.key]
    assert {(d.kind, d.config_id) for d in got} == {(DecisionKind.PROMOTE, 2), (DecisionKind.PAUSE, 1),
                                                    (DecisionKind.PAUSE, 3)}
    assert all("rung 2 (epoch 3)" in d.reason for d in got)


def test_asha_minimises_when_the_objective_says_so():
    loss = Objective("val_loss", "min")
    proc = build("asha", [obs(1, [0.3]), obs(2, [0.2]), obs(3, [0.9])], objectives=[loss])
    got = by_config(proc.decide())
    assert got[2].kind == DecisionKind.PROMOTE and "val_loss 0.9 > cutoff 0.2" in got[3].reason


def test_human_interventions_win_over_the_rungs():
    applied = {"asha:rung1:config1", "asha:rung1:config2", "asha:rung1:config3"}
    # A person stopped paused config 1 (never promoted again, however it ranks) and promoted config 2 by hand
    # (resume: queued at its rung, continues; its rung decision is already applied, so nothing pauses it again).
    proc = build("asha", [obs(1, [0.9], S, person=True), obs(2, [0.2], Q), obs(3, [0.5], P), obs(4, [0.1]),
                          obs(5, [0.15]), obs(6, [0.12])])
    todo = pending(proc.decide(), applied)
    assert {d.config_id for d in todo} == {3, 4, 5, 6}
    assert by_config(todo)[3].kind == DecisionKind.PROMOTE, "with config 1 out, paused config 3 is now top"


def test_hyperband_deals_configs_to_brackets_of_growing_first_rungs():
    proc = build("hyperband", [obs(i, [0.1 * i]) for i in range(1, 7)], options={"eta": 3}, max_epochs=9)
    assert proc.n_brackets() == 3 and [proc.rungs(b) for b in range(3)] == [[1, 3], [3], []]
    assert [proc.bracket_of(k) for k in range(6)] == [0, 1, 2, 0, 1, 2]
    got = by_config(proc.decide())
    assert set(got) == {1, 4}, "only bracket 0 has a rung at epoch 1"
    assert got[4].kind == DecisionKind.PAUSE and got[4].key == "hyperband:b0:rung1:config4"
    assert "bracket 0, rung 1" in got[4].reason


# -- the median stopping rule, an option of every procedure -------------------------------------------------------
def test_median_stop_on_any_procedure():
    others = [obs(i, [0.6, 0.7, 0.8], ConfigStatus.DONE) for i in (1, 2, 3)]
    options = {"median_stop": {"grace_epochs": 1, "min_samples": 3}}
    for name in ("random", "tpe", "evolution", "bayesian"):
        proc = build(name, [*others, obs(4, [0.5, 0.55]), obs(5, [0.7, 0.9]), obs(6, [0.2])], options=options)
        got = proc.decide()
        assert [(d.kind, d.config_id, d.key) for d in got] == [(DecisionKind.STOP, 4, "median:config4")], name
        assert "best val_accuracy 0.55 is worse than the median 0.65 of 4 other configs" in got[0].reason
    few = build("random", [*others[:2], obs(4, [0.5, 0.55])], options=options)
    assert few.decide() == [], "fewer than min_samples others at that epoch"


def test_median_stop_options_are_validated():
    for bad, field in (({"grace": 1}, "procedure_options.median_stop.grace"),
                       ({"min_samples": 0}, "procedure_options.min_samples"), ("yes", "procedure_options.median_stop")):
        with pytest.raises(ValidationError) as info:
            build("random", [], options={"median_stop": bad})
        assert info.value.field == field


# -- PBT ------------------------------------------------------------------------------------------------------
def test_pbt_bottom_quantile_exploits_the_top_and_explores():
    population = [obs(1, [0.5, 0.6]), obs(2, [0.6, 0.9]), obs(3, [0.55, 0.7]), obs(4, [0.4, 0.65])]
    proc = build("pbt", population, options={"population": 4, "interval": 2, "quantile": 0.25,
                                             "resample_probability": 0.0})
    (d,) = proc.decide()
    assert (d.kind, d.config_id, d.source_config_id) == (DecisionKind.EXPLOIT, 1, 2)
    assert d.key == "pbt:exploit:config1@epoch2"
    source = population[1].hparams
    assert SPACE.contains(d.hparams) and d.hparams != source
    assert d.hparams["act"] == source["act"], "a categorical value changes only by resampling"
    ratio = d.hparams["lr"] / source["lr"]
    assert ratio == pytest.approx(0.8) or ratio == pytest.approx(1.2) or d.hparams["lr"] in (1e-4, 1e-1)
    assert "exploits config 2 (val_accuracy 0.9)" in d.reason and "rank 4/4" in d.reason


def test_pbt_waits_for_the_interval_fresh_clones_and_the_last_epoch():
    options = {"population": 4, "interval": 2}
    odd = build("pbt", [obs(1, [0.1, 0.2, 0.3]), obs(2, [0.5, 0.6, 0.9]), obs(3, [0.5, 0.6, 0.7])], options=options)
    assert odd.decide() == [], "epoch 3 is not an exploit point with interval 2"
    clone = obs(5, [None, None], Q, parent=2)
    fresh = build("pbt", [obs(1, [0.1, 0.2], S), obs(2, [0.5, 0.9]), obs(3, [0.6, 0.7]), clone], options=options)
    assert 5 not in by_config(fresh.decide()), "a clone exploits nothing before it trained an interval itself"
    assert 1 not in by_config(fresh.decide()), "a stopped (exploited) config is out of the population"
    last = build("pbt", [obs(1, [0.1, 0.2]), obs(2, [0.5, 0.9])], options=options, max_epochs=2)
    assert last.decide() == []


def test_pbt_never_exploits_a_source_that_has_trained_every_epoch():
    """A clone continues from its source's epoch count: from a finished source it would have nothing left to train
    (seen in bench/search_efficiency.py: six such clones stayed queued and the workload never ended)."""
    options = {"population": 4, "interval": 3, "quantile": 0.25}
    done = ConfigStatus.DONE
    ahead = [obs(1, [0.1, 0.2, 0.3]), obs(2, [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.91, 0.92, 0.95], done),
             obs(3, [0.4, 0.5, 0.6]), obs(4, [0.4, 0.45, 0.5])]
    assert build("pbt", ahead, options=options, max_epochs=9).decide() == [], "the only top config is finished"
    running = [*ahead[:1], obs(2, [0.5, 0.6, 0.9]), *ahead[2:]]
    (d,) = build("pbt", running, options=options, max_epochs=9).decide()
    assert (d.config_id, d.source_config_id) == (1, 2)


def test_pbt_proposes_its_first_generation_only():
    proc = build("pbt", [], options={"population": 3}, budget=None)
    first = proc.ask(10)
    assert len(first) == 3 and all(SPACE.contains(h) for h in first)


# -- evolution ------------------------------------------------------------------------------------------------
def test_evolution_mutates_one_parameter_of_the_tournament_winner():
    done = [obs(i, [0.1 * i], ConfigStatus.DONE) for i in range(1, 5)]
    proc = build("evolution", done, options={"population": 4, "sample_size": 4}, budget=10)
    children = proc.ask(2)
    best = done[-1].hparams
    for child in children:
        assert SPACE.contains(child)
        assert sum(child[k] != best[k] for k in best) == 1, "one mutation of the best of the tournament"
    assert [p for _, p, _ in proc.lineage] == [4, 4]
    again = build("evolution", done, options={"population": 4, "sample_size": 4}, budget=10)
    assert again.ask(2) == children, "rebuilt from the same configs, it proposes the same"


def test_evolution_starts_random():
    proc = build("evolution", [], options={"population": 3}, budget=10)
    assert proc.ask(2) == [SPACE.sample(0, 0), SPACE.sample(0, 1)]


# -- restart equivalence ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,options", [("asha", {"eta": 2}), ("hyperband", {"eta": 2}),
                                          ("pbt", {"population": 6}), ("random", {"median_stop": True})])
def test_rebuilt_procedures_decide_the_same(name, options):
    curves = [obs(i, [round(0.05 * ((i * 7) % 11) + 0.01 * e, 3) for e in range(1 + i % 3)]) for i in range(1, 13)]
    first = build(name, curves, options=options).decide()
    assert first, "the scenario makes decisions"
    assert all(isinstance(d, Decision) and d.key and d.reason for d in first)
    assert build(name, curves, options=options).decide() == first
    assert len({d.key for d in first}) == len(first), "keys identify decisions"


# -- options --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,options,max_epochs,field,message", [
    ("asha", {"eta": 1}, 9, "procedure_options.eta", "must be an integer in [2, 100], got 1"),
    ("asha", {"min_epochs": 9}, 9, "procedure_options.min_epochs", "must be below the workload's max_epochs (9)"),
    ("asha", {"sampler": "grid"}, 9, "procedure_options.sampler", "must be one of random, tpe, bayesian"),
    ("asha", {"population": 4}, 9, "procedure_options.population", "is not an option of procedure 'asha'"),
    ("pbt", {"quantile": 0.9}, 9, "procedure_options.quantile", "must be a number in [0.01, 0.5]"),
    ("evolution", {"population": 2, "sample_size": 3}, 9, "procedure_options.sample_size", "must not exceed"),
    ("nsga2", {}, 9, "procedure_options.objectives", "searches two or more objectives"),
])
def test_options_are_validated_precisely(name, options, max_epochs, field, message):
    with pytest.raises(ValidationError) as info:
        build(name, [], options=options, max_epochs=max_epochs)
    assert info.value.field == field and message in info.value.message


def test_samplers_feed_asha():
    for sampler in ("random", "tpe", "bayesian"):
        proc = build("asha", [], options={"sampler": sampler}, budget=4)
        first = proc.ask(2)
        assert len(first) == 2 and all(SPACE.contains(h) for h in first), sampler


# -- multi-objective (Optuna) and Bayesian (KerasTuner) asks ---------------------------------------------------
def _told(name, n, objectives, options=None):
    proc = build(name, [], objectives=objectives, options=options, budget=40)
    for i in range(n):
        h = SPACE.sample(11, i)
        proc.tell(Observation(h, "procedure", 0.0, True, config_id=i + 1, status=ConfigStatus.DONE,
                              metrics={"val_accuracy": 1 - abs(h["lr"] - 0.01) * 10, "params": h["units"] * 100}))
    return proc


@pytest.mark.parametrize("name,options", [("nsga2", {"population_size": 4}), ("motpe", {"n_startup_trials": 4})])
def test_multi_objective_procedures_ask_from_a_rebuilt_study(name, options):
    objectives = [ACC, Objective("params", "min")]
    first = _told(name, 8, objectives, options).ask(2)
    assert len(first) == 2 and all(SPACE.contains(h) for h in first)
    assert _told(name, 8, objectives, options).ask(2) == first, "the same configs give the same proposals"
    assert _told(name, 9, objectives, options).ask(2) != first, "a new result changes what it proposes"


def test_bayesian_asks_keras_tuners_oracle_after_its_initial_points():
    options = {"initial_points": 3, "restarts": 2}
    random_start = _told("bayesian", 2, [ACC], options).ask(1)
    assert random_start == [SPACE.sample(0, 2)], "random draws before the initial points are in"
    proc = _told("bayesian", 4, [ACC], options)
    proc.observations = [Observation(o.hparams, o.origin, o.metrics["val_accuracy"], True, config_id=o.config_id,
                                     status=o.status) for o in proc.observations]
    asked = proc.ask(2)
    assert len(asked) == 2 and all(SPACE.contains(h) for h in asked) and asked[0] != asked[1]
    assert all(h not in [o.hparams for o in proc.observations] for h in asked)
    again = _told("bayesian", 4, [ACC], options)
    again.observations = list(proc.observations)
    assert again.ask(2) == asked, "rebuilt from the same configs, the oracle proposes the same"
