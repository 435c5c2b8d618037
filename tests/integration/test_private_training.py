"""Private training end to end: real DP-SGD workers on digits under the MOP scheduler, epsilon per epoch from
the committed DP blocks, the privacy_spent stop rule, clones that inherit the spent epsilon, resume."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from hopper.engine import privacy
from hopper.engine.data import read_partition
from hopper.engine.errors import InvalidState, ValidationError
from hopper.engine.store import SubEpochRow
from tests.integration.conftest import SQLITE_ONLY
from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

DELTA = 1e-5
BATCH = 64


def _partition_rows(services, dataset_id):
    layout = services.store.datasets.layout(dataset_id)
    return {p: len(read_partition(path, layout.feature_shape)[1]) for p, path in enumerate(layout.partition_paths)}


def _blocks(services, config_id):
    """The config's committed DP blocks by partition, oldest first, straight from the schedule log."""
    with services.store.session() as s:
        rows = s.scalars(select(SubEpochRow).where(SubEpochRow.config_id == config_id, SubEpochRow.outcome == "ok")
                         .order_by(SubEpochRow.id))
        return [(r.epoch, r.partition, r.dp_q, r.dp_sigma, r.dp_steps) for r in rows]


def _epsilons(services, config_id):
    return [m["value"] for m in sorted(services.get_config(config_id).metrics, key=lambda m: m["epoch"])
            if m["name"] == "epsilon"]


def _expected(blocks, upto_epoch, inherited=()):
    by_partition: dict[int, list] = {}
    for epoch, partition, q, sigma, steps in [*inherited, *blocks]:
        if epoch is None or epoch <= upto_epoch:
            by_partition.setdefault(partition, []).append((q, sigma, steps))
    return max(privacy.epsilon_of_events(events, DELTA) for events in by_partition.values())


def _launch(services, **extra):
    spec = {"name": "private", "model": "mlp", "dataset": "digits", "procedure": "grid", "max_epochs": 2,
            "space": {"lr": {"type": "choice", "values": [0.01, 0.03]}, "units": {"type": "fixed", "value": 32},
                      "batch_size": {"type": "fixed", "value": BATCH}},
            "privacy": {"noise_multiplier": 1.0, "l2_norm_clip": 1.0, "delta": DELTA}}
    spec.update(extra)
    return services.launch_workload(spec)


@SQLITE_ONLY  # its store use is the store contract's, run on both (privacy blocks with their sub-epochs)
def test_a_private_workload_trains_with_dp_sgd_and_reports_epsilon_per_epoch(services, digits):
    workload = _launch(services)
    rows = _partition_rows(services, digits.id)
    with RunningScheduler(services) as running:
        running.wait_for(lambda: services.get_workload(workload.id).status == "done", 240, "the private workload")
    configs = services.list_configs(workload.id)
    assert len(configs) == 2 and all(c.status == "done" and c.epochs_done == 2 for c in configs)
    for config in configs:
        blocks = _blocks(services, config.id)
        assert len(blocks) == 4
        for _, partition, q, sigma, steps in blocks:
            # what the worker reports is the Poisson rate and step count of the partition it trained on
            assert q == pytest.approx(BATCH / rows[partition]) and sigma == 1.0
            assert steps == math.ceil(rows[partition] / BATCH)
        eps = _epsilons(services, config.id)
        assert eps == [pytest.approx(_expected(blocks, e), rel=1e-9) for e in range(2)]
        assert 0 < eps[0] < eps[1] < 20
        assert config.latest_metrics["epsilon"] == eps[-1]
        # DP-SGD still learns digits a little (chance is 0.1)
        assert config.latest_metrics["val_accuracy"] > 0.3


@SQLITE_ONLY
def test_b_the_stop_rule_ends_a_config_privacy_spent_within_its_target(services, digits):
    target = 9.0
    workload = _launch(services, procedure="manual", space={}, max_epochs=3,
                       privacy={"target_epsilon": target, "delta": DELTA}, objectives={"epsilon": "min"})
    tuned = services.add_config(workload.id, {"lr": 0.03, "units": 32, "batch_size": BATCH, "noise_multiplier": 0.7})
    calibrated = services.add_config(workload.id, {"lr": 0.03, "units": 32, "batch_size": BATCH})
    # sigma for the target is resolved once, when the config is created, and stored with it
    assert calibrated.hparams["noise_multiplier"] > 0.7 and tuned.hparams["noise_multiplier"] == 0.7
    with RunningScheduler(services) as running:
        running.wait_for(lambda: services.get_workload(workload.id).status == "done", 240, "the stop rule")
    spent = services.get_config(tuned.id)
    assert spent.status == "privacy_spent" and spent.epochs_done == 2
    eps = _epsilons(services, tuned.id)
    assert len(eps) == 2 and eps[-1] <= target
    by_partition: dict[int, list] = {}
    for _, partition, q, sigma, steps in _blocks(services, tuned.id):
        by_partition.setdefault(partition, []).append((q, sigma, steps))
    assert max(privacy.epsilon_of_events([*e, e[-1]], DELTA) for e in by_partition.values()) > target
    done = services.get_config(calibrated.id)
    assert done.status == "done" and done.epochs_done == 3
    assert target * 0.97 <= done.latest_metrics["epsilon"] <= target
    # epsilon: min ranks configs like any objective
    lowest = min((v, c) for c in (tuned.id, calibrated.id) for v in _epsilons(services, c))
    assert services.get_workload(workload.id).best == {"config_id": lowest[1], "metric": "epsilon", "value": lowest[0]}
    with pytest.raises(InvalidState, match="spent its privacy budget"):
        services.resume_config(tuned.id)
    # a clone inherits the spend, so one at the same noise would overspend in its first epoch: refused
    with pytest.raises(InvalidState, match="past privacy.target_epsilon"):
        services.clone_config(tuned.id, {"lr": 0.01})
    quiet = services.clone_config(tuned.id, {"noise_multiplier": 50.0})
    assert quiet.hparams["noise_multiplier"] == 50.0 and quiet.warm_start_checkpoint_id is not None


@SQLITE_ONLY
def test_c_clones_inherit_spent_epsilon_and_resume_does_not_reset_it(services, digits):
    workload = _launch(services, max_epochs=1)
    with RunningScheduler(services) as running:
        running.wait_for(lambda: services.get_workload(workload.id).status == "done", 240, "the first epoch")
        source = services.list_configs(workload.id)[0]
        first_eps = _epsilons(services, source.id)
        inherited = _blocks(services, source.id)
        clone = services.clone_config(source.id, {"lr": 0.005})
        services.update_workload(workload.id, max_epochs=2)  # every config is queued again: a resume
        running.wait_for(lambda: services.get_workload(workload.id).status == "done", 240, "the clone and resume")
    assert len(first_eps) == 1
    resumed = _epsilons(services, source.id)
    assert resumed[0] == first_eps[0] and resumed[1] > resumed[0]
    assert resumed[1] == pytest.approx(_expected(_blocks(services, source.id), 1), rel=1e-9)
    clone_eps = _epsilons(services, clone.id)
    assert clone_eps[0] > first_eps[0]  # it continued from the source's spend, not from zero
    own = _blocks(services, clone.id)
    assert clone_eps[0] == pytest.approx(_expected(own, 0, inherited=[(None, *b[1:]) for b in inherited]), rel=1e-9)
    assert clone_eps[0] == pytest.approx(resumed[1], rel=1e-9)  # same blocks, same sigma: the same spend


def test_a_bad_privacy_section_names_its_field(services, digits):
    with pytest.raises(ValidationError) as err:
        _launch(services, privacy={"noise_multiplier": 1.0, "delta": 2.0})
    assert err.value.field == "privacy.delta"
    with pytest.raises(ValidationError) as err:
        _launch(services, space={"lr": {"type": "choice", "values": [0.01]}, "l2_norm_clip": {"type": "fixed",
                                                                                             "value": 0}})
    assert err.value.field == "space.l2_norm_clip"
    warned = _launch(services, privacy={"noise_multiplier": 1.0, "delta": 0.01})
    assert warned.warnings and "delta" in warned.warnings[0]
    assert services.get_workload(warned.id).to_dict()["warnings"] == warned.warnings
    assert services.list_events(limit=1)[0].after["warnings"] == warned.warnings
