import pytest

from hopper.engine.errors import ValidationError
from hopper.engine.space import SearchSpace

SPACE = {
    "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
    "units": {"type": "int", "low": 32, "high": 128, "step": 32},
    "dropout": {"type": "uniform", "low": 0.0, "high": 0.4, "step": 0.2},
    "optimizer": {"type": "choice", "values": ["adam", "sgd"],
                  "when": {"sgd": {"momentum": {"type": "choice", "values": [0.0, 0.9]}}}},
    "batch_size": 32,
}


@pytest.mark.parametrize("raw, field, fragment", [
    ({"lr": {"type": "loguniform", "low": 0, "high": 1}}, "space.lr.low", "> 0"),
    ({"lr": {"type": "uniform", "low": 2, "high": 1}}, "space.lr.low", "must not exceed"),
    ({"lr": {"type": "uniform", "high": 1}}, "space.lr.low", "required"),
    ({"lr": {"type": "gaussian", "low": 0, "high": 1}}, "space.lr.type", "must be one of"),
    ({"units": {"type": "int", "low": 1.5, "high": 4}}, "space.units.low", "integer bounds"),
    ({"units": {"type": "int", "low": 1, "high": 4, "step": 0}}, "space.units.step", "positive"),
    ({"opt": {"type": "choice", "values": []}}, "space.opt.values", "non-empty"),
    ({"opt": {"type": "choice", "values": ["a", "a"]}}, "space.opt.values", "duplicates"),
    ({"opt": {"type": "choice", "values": ["a"], "when": {"b": {}}}}, "space.opt.when.b", "not one of"),
    ({"opt": {"type": "choice", "values": ["a"], "when": {"a": {"x": {"type": "uniform", "low": 1}}}}},
     "space.opt.when.a.x.high", "required"),
    ({"lr": {"type": "uniform", "low": 0, "high": 1, "stp": 0.1}}, "space.lr.stp", "unknown key"),
    ({"lr": [1, 2]}, "space.lr", "scalar or a mapping"),
    ({"": 1}, "space.", "identifier"),
    ([1, 2], "space", "mapping"),
])
def test_invalid_spaces_name_the_offending_key(raw, field, fragment):
    with pytest.raises(ValidationError) as info:
        SearchSpace.parse(raw)
    assert info.value.field == field
    assert fragment in info.value.message


def test_round_trip_and_names():
    space = SearchSpace.parse(SPACE)
    assert SearchSpace.parse(space.to_dict()) == space
    assert space.names() == ["lr", "units", "dropout", "optimizer", "momentum", "batch_size"]


def test_grid_expands_conditionals_and_steps():
    grid = SearchSpace.parse({k: v for k, v in SPACE.items() if k != "lr"}).grid()
    # units 4 x dropout 3 x (adam + sgd*2 momentum) = 36
    assert len(grid) == 36
    assert {"units": 32, "dropout": 0.0, "optimizer": "sgd", "momentum": 0.9, "batch_size": 32} in grid
    assert all("momentum" not in g for g in grid if g["optimizer"] == "adam")


def test_grid_refuses_continuous_range_with_its_name():
    with pytest.raises(ValidationError) as info:
        SearchSpace.parse(SPACE).grid()
    assert info.value.field == "space.lr"


def test_each_parameter_has_its_own_random_stream():
    space = SearchSpace.parse({"a": {"type": "choice", "values": [0, 1, 2]},
                               "b": {"type": "choice", "values": [0, 1, 2]}})
    samples = [space.sample(seed=7, index=i) for i in range(60)]
    assert any(s["a"] != s["b"] for s in samples)
    assert {s["a"] for s in samples} == {0, 1, 2}
    # seeded and replayable
    assert samples == [space.sample(seed=7, index=i) for i in range(60)]
    assert samples != [space.sample(seed=8, index=i) for i in range(60)]


def test_samples_lie_in_the_space():
    space = SearchSpace.parse(SPACE)
    for i in range(200):
        s = space.sample(seed=1, index=i)
        assert space.contains(s), s
        assert 1e-4 <= s["lr"] <= 1e-1
        assert s["units"] in (32, 64, 96, 128)
        assert ("momentum" in s) == (s["optimizer"] == "sgd")


def test_subset_check():
    parent = SearchSpace.parse(SPACE)
    child = SearchSpace.parse({"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}, "units": 64,
                               "dropout": {"type": "uniform", "low": 0.0, "high": 0.2, "step": 0.2},
                               "optimizer": {"type": "choice", "values": ["sgd"],
                                             "when": {"sgd": {"momentum": 0.9}}}})
    child.check_subset_of(parent)
    bad = [
        ({"lr": {"type": "loguniform", "low": 1e-5, "high": 1e-2}}, "space.lr"),
        ({"units": 48}, "space.units"),
        ({"optimizer": {"type": "choice", "values": ["rmsprop"]}}, "space.optimizer"),
        ({"epochs": 3}, "space.epochs"),
        ({"optimizer": {"type": "choice", "values": ["sgd"], "when": {"sgd": {"momentum": 0.5}}}},
         "space.optimizer.when.sgd.momentum"),
    ]
    base = {"lr": 1e-3, "units": 64, "dropout": 0.2, "optimizer": "adam"}
    for override, field in bad:
        with pytest.raises(ValidationError) as info:
            SearchSpace.parse({**base, **override}).check_subset_of(parent)
        assert info.value.field == field
    with pytest.raises(ValidationError) as info:
        SearchSpace.parse({"lr": 1e-3}).check_subset_of(parent)
    assert "missing" in info.value.message


def test_hyperopt_and_keras_tuner_conversions():
    import hyperopt.pyll.stochastic as stochastic

    space = SearchSpace.parse(SPACE)
    for seed in range(20):
        import numpy as np

        sample = space.from_hyperopt_sample(stochastic.sample(space.to_hyperopt(), rng=np.random.default_rng(seed)))
        assert space.contains(sample), sample
    hps = space.to_keras_tuner()
    names = [h.name for h in hps.space]
    assert names == space.names()
    back = SearchSpace.from_keras_tuner(hps)
    assert back.params["units"] == space.params["units"]
    assert back.params["lr"] == space.params["lr"]
