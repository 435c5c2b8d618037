"""Privacy accounting (hopper.engine.privacy) against dp-accounting called directly; no TensorFlow here."""

import math
import subprocess
import sys

import dp_accounting
import pytest

from hopper.engine import privacy
from hopper.engine.errors import ValidationError
from hopper.engine.specs import PrivacySpec, WorkloadSpec, parse_spec

MNIST = {"n": 60_000, "batch": 256, "sigma": 1.1, "epochs": 60, "delta": 1e-5}


def _direct(q, sigma, steps, delta, accountant="rdp"):
    acc = dp_accounting.rdp.RdpAccountant() if accountant == "rdp" else dp_accounting.pld.PLDAccountant()
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    return acc.get_epsilon(delta)


def test_engine_privacy_does_not_import_tensorflow():
    # A fresh interpreter: other tests in the same process may have imported TensorFlow already.
    code = ("import sys, hopper.engine.privacy as p; p.epsilon(0.01, 1.0, 10, 1e-5); "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_mnist_tutorial_setting_matches_dp_accounting_and_tf_privacy():
    q = MNIST["batch"] / MNIST["n"]
    steps = MNIST["epochs"] * math.ceil(MNIST["n"] / MNIST["batch"])
    eps = privacy.epsilon(q, MNIST["sigma"], steps, MNIST["delta"])
    assert eps == pytest.approx(_direct(q, MNIST["sigma"], steps, MNIST["delta"]), rel=1e-12)
    # dp-accounting's RDP conversion is tighter than the one TF Privacy's tutorial used (eps ~= 3.0);
    # recomputing with the classic conversion eps = min_a rdp(a) + log(1/delta) / (a - 1) gives that ~3.0 back.
    assert 2.55 < eps < 2.65
    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(MNIST["sigma"])), steps)
    classic = min(r + math.log(1 / MNIST["delta"]) / (a - 1)
                  for a, r in zip(acc._orders, acc._rdp, strict=True) if a > 1)
    assert classic == pytest.approx(3.0, abs=0.1)
    # The PLD accountant is tighter still.
    pld = privacy.epsilon(q, MNIST["sigma"], steps, MNIST["delta"], accountant="pld")
    assert pld == pytest.approx(_direct(q, MNIST["sigma"], steps, MNIST["delta"], "pld"), rel=1e-9)
    assert pld < eps


def test_epochs_helper_is_the_per_partition_composition_for_w_partitions():
    # Hopper-like: 60k rows in W=4 partitions of 15k, batch 256, sigma 1.1, 10 epochs.
    n_p, b, sigma, epochs, delta = 15_000, 256, 1.1, 10, 1e-5
    eps = privacy.epsilon_for_epochs(epochs, batch_size=b, partition_rows=n_p, noise_multiplier=sigma, delta=delta)
    assert eps == pytest.approx(_direct(b / n_p, sigma, epochs * math.ceil(n_p / b), delta), rel=1e-12)
    # Partitioning costs privacy: the same run without partitions (q = b / N, N / b steps per epoch) is cheaper.
    single = privacy.epsilon_for_epochs(epochs, batch_size=b, partition_rows=4 * n_p, noise_multiplier=sigma,
                                        delta=delta)
    assert single < eps < 2.5 * single
    # The visit log gives the same number; the worst partition decides.
    visits = {p: [(n_p, b, sigma)] * epochs for p in range(4)}
    assert privacy.epsilon_for_visits(visits, delta) == pytest.approx(eps, rel=1e-12)
    visits[2] = visits[2][:3]
    assert privacy.epsilon_for_visits(visits, delta) == pytest.approx(eps, rel=1e-12)


def test_changed_sigma_mid_run_composes_both_blocks():
    q, delta = 0.01, 1e-5
    both = privacy.epsilon_of_events([(q, 1.0, 500), (q, 2.0, 500)], delta)
    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(1.0)), 500)
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(2.0)), 500)
    assert both == pytest.approx(acc.get_epsilon(delta), rel=1e-12)
    assert privacy.epsilon(q, 2.0, 1000, delta) < both < privacy.epsilon(q, 1.0, 1000, delta)


@pytest.mark.parametrize("target", [0.5, 1.0, 3.0, 8.0])
def test_target_epsilon_search_lands_within_one_percent_below(target):
    q, steps, delta = 256 / 15_000, 10 * 59, 1e-5
    sigma = privacy.noise_for_target_epsilon(target, q, steps, delta)
    eps = privacy.epsilon(q, sigma, steps, delta)
    assert target * 0.99 <= eps <= target
    # and it is the least noise that does so (up to the search's resolution)
    assert privacy.epsilon(q, sigma * 0.98, steps, delta) > target


def test_unreachable_target_and_edge_cases_say_what_to_do():
    with pytest.raises(ValueError, match="out of reach"):
        privacy.noise_for_target_epsilon(1e-6, 1.0, 10**6, 1e-5)
    assert privacy.epsilon(0.01, 0.0, 10, 1e-5) == math.inf
    assert privacy.epsilon(0.01, 1.0, 0, 1e-5) == 0.0
    with pytest.raises(ValueError, match="delta"):
        privacy.epsilon(0.01, 1.0, 10, 1.0)
    assert privacy.sampling_rate(64, 32) == 1.0
    assert privacy.steps_per_sub_epoch(1000, 64) == 16


def test_plan_resolves_target_and_stops_before_overspending():
    options = {"l2_norm_clip": 1.0, "target_epsilon": 2.0, "delta": 1e-5}
    plan = privacy.plan(options, {"batch_size": 64}, partition_rows=5000, max_epochs=5)
    assert plan.target_epsilon == 2.0 and plan.microbatches is None
    with pytest.raises(ValueError, match="max_epochs"):
        privacy.plan(options, {"batch_size": 64}, partition_rows=5000, max_epochs=None)
    assert 0.99 * 2.0 <= plan.epsilon_after(5) <= 2.0
    assert not plan.next_epoch_exceeds_target(4)
    assert plan.next_epoch_exceeds_target(5)
    # a tuned noise_multiplier in hparams overrides the workload's, keeping the target as the stop rule
    tuned = privacy.plan(options, {"batch_size": 64, "noise_multiplier": 0.8, "microbatches": 4},
                         partition_rows=5000, max_epochs=5)
    assert tuned.noise_multiplier == 0.8 and tuned.microbatches == 4 and tuned.target_epsilon == 2.0
    fixed = privacy.plan({"l2_norm_clip": 0.5, "noise_multiplier": 1.3, "delta": 1e-5}, {"batch_size": 64},
                         partition_rows=5000, max_epochs=5)
    assert fixed.noise_multiplier == 1.3 and fixed.l2_norm_clip == 0.5 and not fixed.next_epoch_exceeds_target(99)


def _spec(privacy_section):
    return parse_spec(WorkloadSpec, {"name": "w", "dataset": "d", "model": "mlp", "privacy": privacy_section})


@pytest.mark.parametrize(("section", "field", "words"), [
    ({}, "privacy", "exactly one of privacy.noise_multiplier"),
    ({"noise_multiplier": 1.0, "target_epsilon": 2.0}, "privacy", "got both"),
    ({"noise_multiplier": -0.1}, "privacy.noise_multiplier", "greater than or equal to 0"),
    ({"target_epsilon": 0}, "privacy.target_epsilon", "greater than 0"),
    ({"l2_norm_clip": 0, "noise_multiplier": 1.0}, "privacy.l2_norm_clip", "greater than 0"),
    ({"delta": 1.0, "noise_multiplier": 1.0}, "privacy.delta", "less than 1"),
    ({"delta": 0.0, "noise_multiplier": 1.0}, "privacy.delta", "greater than 0"),
    ({"microbatches": 0, "noise_multiplier": 1.0}, "privacy.microbatches", "greater than or equal to 1"),
    ({"noise": 1.0, "noise_multiplier": 1.0}, "privacy.noise", "unknown field"),
])
def test_privacy_spec_rejections_name_the_field(section, field, words):
    with pytest.raises(ValidationError) as info:
        _spec(section)
    assert info.value.field == field and words in str(info.value)


def test_privacy_spec_defaults_warnings_and_plan():
    spec = _spec({"target_epsilon": 3.0}).privacy
    assert isinstance(spec, PrivacySpec) and spec.l2_norm_clip == 1.0 and spec.delta == 1e-5
    assert spec.warnings(50_000) == []
    (warning,) = spec.warnings(100_000)  # delta = 1e-5 == 1/N
    assert "privacy.delta" in warning and "1/N" in warning
    assert _spec({"noise_multiplier": 0.0}).privacy.warnings(10) != []
    assert _spec({"noise_multiplier": 1.0}).privacy is not None
    assert parse_spec(WorkloadSpec, {"name": "w", "dataset": "d", "model": "mlp"}).privacy is None
    pld = privacy.plan(_spec({"target_epsilon": 0.5, "accountant": "pld"}).privacy.model_dump(), {"batch_size": 32},
                       partition_rows=2000, max_epochs=3)
    assert pld.accountant == "pld" and 0.99 * 0.5 <= pld.epsilon_after(3) <= 0.5


# -- what the platform calls --------------------------------------------------------------------------------
def test_partition_sizes_match_array_split():
    import numpy as np

    for n, w in [(1437, 2), (1438, 2), (10, 3), (7, 7)]:
        assert set(privacy.partition_sizes(n, w)) == {len(c) for c in np.array_split(np.arange(n), w)}
    with pytest.raises(ValueError, match="cannot fill"):
        privacy.partition_sizes(3, 4)


def test_resolve_noise_meets_the_target_on_every_partition_size_and_keeps_a_configs_own_noise():
    options = {"target_epsilon": 3.0, "delta": 1e-5, "l2_norm_clip": 1.0, "accountant": "rdp"}
    resolved = privacy.resolve_noise(options, {"batch_size": 64}, partition_rows=[718, 719], max_epochs=3)
    sigma = resolved["noise_multiplier"]
    worst = max(privacy.epsilon_for_epochs(3, batch_size=64, partition_rows=n, noise_multiplier=sigma, delta=1e-5)
                for n in (718, 719))
    assert 3.0 * 0.99 <= worst <= 3.0
    assert privacy.resolve_noise(options, {"noise_multiplier": 0.5}, partition_rows=[718], max_epochs=3) == {
        "noise_multiplier": 0.5}
    assert privacy.resolve_noise({**options, "target_epsilon": None, "noise_multiplier": 1.0}, {"lr": 0.1},
                                 partition_rows=[718], max_epochs=3) == {"lr": 0.1}


def test_merge_events_sums_one_sub_epochs_blocks_and_refuses_mixed_ones():
    assert privacy.merge_events([]) is None
    assert privacy.merge_events([(0.1, 1.0, 5), (0.1, 1.0, 7)]) == (0.1, 1.0, 12)
    with pytest.raises(ValueError, match="one batch_size and one noise_multiplier"):
        privacy.merge_events([(0.1, 1.0, 5), (0.2, 1.0, 5)])


def test_account_is_the_worst_partition_and_looks_one_epoch_ahead():
    events = {0: [(0.1, 1.0, 10)], 1: [(0.2, 1.0, 5)]}
    spent = privacy.account(events, {"delta": 1e-5, "target_epsilon": None})
    assert spent.epsilon == max(privacy.epsilon(0.1, 1.0, 10, 1e-5), privacy.epsilon(0.2, 1.0, 5, 1e-5))
    assert spent.next_epoch_epsilon == max(privacy.epsilon(0.1, 1.0, 20, 1e-5), privacy.epsilon(0.2, 1.0, 10, 1e-5))
    assert not spent.budget_spent
    tight = privacy.account(events, {"delta": 1e-5, "target_epsilon": (spent.epsilon + spent.next_epoch_epsilon) / 2})
    assert tight.budget_spent and tight.epsilon <= tight.target_epsilon


def test_privacy_spent_is_terminal_and_reachable_only_from_runnable_configs():
    from hopper.engine.errors import InvalidState
    from hopper.engine.status import ConfigStatus, can_transition, check_transition

    assert ConfigStatus.PRIVACY_SPENT.label == "privacy budget spent" and ConfigStatus.DONE.label == "done"
    assert can_transition(ConfigStatus.RUNNING, ConfigStatus.PRIVACY_SPENT)
    assert can_transition(ConfigStatus.QUEUED, ConfigStatus.PRIVACY_SPENT)
    assert not can_transition(ConfigStatus.STOPPED, ConfigStatus.PRIVACY_SPENT)
    for target in ConfigStatus:
        assert not can_transition(ConfigStatus.PRIVACY_SPENT, target)
    with pytest.raises(InvalidState, match="cannot resume config 4: it is privacy_spent"):
        check_transition("privacy_spent", ConfigStatus.QUEUED, what="config 4", action="resume")


def test_dp_hparams_are_roster_hparams_with_range_rules():
    from hopper.engine.catalog import check_hparam_value, check_hparams

    check_hparams("mlp", ["noise_multiplier", "l2_norm_clip", "microbatches", "lr"])
    for key, value in [("noise_multiplier", 0.0), ("noise_multiplier", 1.3), ("l2_norm_clip", 0.5),
                       ("microbatches", 4)]:
        check_hparam_value("mlp", key, value, field=f"space.{key}")
    for key, value in [("noise_multiplier", -0.1), ("l2_norm_clip", 0), ("microbatches", 0), ("microbatches", 2.5)]:
        with pytest.raises(ValidationError) as err:
            check_hparam_value("mlp", key, value, field=f"space.{key}")
        assert err.value.field == f"space.{key}"
