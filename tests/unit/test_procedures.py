import pytest

from hopper.engine.errors import ValidationError
from hopper.engine.procedures import Objective, Observation, make_procedure
from hopper.engine.space import SearchSpace

GRID = SearchSpace.parse({"lr": {"type": "choice", "values": [0.1, 0.01]},
                          "units": {"type": "int", "low": 16, "high": 48, "step": 16}})
CONT = SearchSpace.parse({"x": {"type": "uniform", "low": -5, "high": 5},
                          "kind": {"type": "choice", "values": ["a", "b"]}})
MAX = Objective("val_accuracy", "max")


def test_grid_proposes_every_point_once_and_ignores_user_configs():
    proc = make_procedure("grid", GRID, MAX)
    first = proc.ask(4)
    for h in first:
        proc.tell(Observation(h, "procedure"))
    proc.tell(Observation({"lr": 0.5, "units": 7}, "user", 0.9))
    rest = proc.ask(10)
    assert len(first) + len(rest) == 6
    assert {tuple(sorted(h.items())) for h in first + rest} == {tuple(sorted(h.items())) for h in GRID.grid()}
    for h in rest:
        proc.tell(Observation(h, "procedure"))
    assert proc.is_done() and proc.ask(3) == []


def test_grid_budget_cuts_the_grid():
    proc = make_procedure("grid", GRID, MAX, budget=2)
    assert len(proc.ask(10)) == 2


def test_random_is_seeded_and_restart_safe():
    a = make_procedure("random", CONT, MAX, seed=3, budget=5)
    proposals = a.ask(3)
    b = make_procedure("random", CONT, MAX, seed=3, budget=5)
    for h in proposals:
        b.tell(Observation(h, "procedure"))
    more = b.ask(5)
    assert len(more) == 2
    c = make_procedure("random", CONT, MAX, seed=3, budget=5)
    assert c.ask(5) == proposals + more


def test_random_and_tpe_need_a_budget():
    for name in ("random", "tpe"):
        with pytest.raises(ValidationError) as info:
            make_procedure(name, CONT, MAX)
        assert info.value.field == "max_configs"
    with pytest.raises(ValidationError):
        make_procedure("annealing", CONT, MAX)


def _drive(proc, score, rounds):
    proposals = []
    for _ in range(rounds):
        (h,) = proc.ask(1)
        proc.tell(Observation(h, "procedure", score(h), True))
        proposals.append(h)
    return proposals


@pytest.mark.parametrize("direction", ["max", "min"])
def test_tpe_learns_from_told_results_in_the_objective_direction(direction):
    # the score peaks (max) or dips (min) at x = 2 with kind 'b'
    def score(h):
        s = -abs(h["x"] - 2) - (0 if h["kind"] == "b" else 3)
        return s if direction == "max" else -s

    proc = make_procedure("tpe", CONT, Objective("m", direction), seed=0, budget=60)
    guided = _drive(proc, score, 50)[20:]  # hyperopt explores randomly for its first 20
    assert sum(h["kind"] == "b" for h in guided) >= 0.7 * len(guided)
    assert sum(abs(h["x"] - 2) < 1.5 for h in guided) >= 0.5 * len(guided)


def test_tpe_uses_user_added_observations():
    proc = make_procedure("tpe", CONT, MAX, seed=1, budget=50)
    # 30 observations only from a person: good results at negative x
    for i in range(30):
        h = {"x": -5 + i / 3, "kind": "a" if i % 2 else "b"}
        proc.tell(Observation(h, "user", -abs(h["x"] + 3), True))
    guided = _drive(proc, lambda h: -abs(h["x"] + 3), 15)
    assert sum(h["x"] < 0 for h in guided) >= 0.7 * len(guided)
    assert proc.n_proposed == 15  # user configs do not consume the budget


def test_manual_proposes_nothing():
    proc = make_procedure("manual", SearchSpace.parse({}), MAX)
    assert proc.ask(5) == [] and proc.is_done()


def test_objective_direction_is_explicit():
    assert Objective("val_loss", "min").better(0.1, 0.2)
    assert Objective("val_accuracy", "max").better(0.9, 0.8)
    assert Objective("val_loss", "min").loss(0.3) == 0.3
    assert Objective("val_accuracy", "max").loss(0.3) == -0.3
