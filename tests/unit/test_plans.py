"""Execution plans, pure: the chooser (MOP or data-replicated, and why) and the policy running replicated
workloads beside MOP ones. No database, no backend.

The acceptance of issue 19 item 1: the chooser picks replication for digits and MOP for a dataset larger than
the worker data budget, and forcing either wins over both. The property test switches workloads between plans
at arbitrary moments of a simulated run (harsher than the scheduler, which switches at epoch ends only) and
checks from the committed trace that every config still visits every shard exactly once per epoch.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hopper.engine.entities import DatasetInfo
from hopper.engine.services.steering import replicated_bytes
from hopper.mop_scheduler.plans import (
    OVERHEAD_SHARE,
    UNLIMITED_BUDGET_BYTES,
    SubEpochCosts,
    choose_plan,
    size_text,
)
from hopper.mop_scheduler.policy import MopPolicy, Snapshot
from hopper.mop_scheduler.shards import rebalance
from tests.support.shards import assert_every_shard_once_per_epoch

MB = 2**20


def _dataset(name: str, n_rows: int, features: int) -> DatasetInfo:
    n_validation = n_rows // 5
    return DatasetInfo(1, name, "/data/x", "npz", [], "label", "classification", n_rows, n_rows - n_validation,
                       n_validation, [features], list(range(10)), 2, datetime(2026, 11, 26, tzinfo=UTC))


# scikit-learn's digits as ``hopper run`` registers it: 1797 rows of 8 x 8 pixels
DIGITS = _dataset("digits", 1797, 64)
# 200k rows x 2000 float features: about 1.5 GiB, over a 512 MiB budget
WIDE = _dataset("wide", 200_000, 2000)


def _choose(dataset: DatasetInfo = DIGITS, **kwargs):
    args = {"requested": "auto", "dataset_name": dataset.name, "dataset_bytes": replicated_bytes(dataset),
            "budget_bytes": 512 * MB, "workers": 2, "train_rows": dataset.n_train}
    return choose_plan(**{**args, **kwargs})


def test_auto_replicates_digits_and_partitions_a_dataset_larger_than_the_worker_data_budget():
    digits = _choose()
    assert (digits.plan, digits.basis) == ("replicated", "unmeasured")
    assert digits.reason == ("replicated: digits is 463.3 KiB, under the 512 MiB worker data budget; hop costs not "
                             "measured yet")
    wide = _choose(WIDE)
    assert (wide.plan, wide.basis) == ("mop", "too_big")
    assert wide.reason == "mop: wide is 1.5 GiB, over the 512 MiB worker data budget"


def test_forcing_either_plan_wins_over_size_and_measurements():
    assert _choose(WIDE, requested="replicated").plan == "replicated"
    forced = _choose(requested="mop", costs=SubEpochCosts(10.0, 9.0, 1.0, 1000, 10))
    assert (forced.plan, forced.basis) == ("mop", "forced")
    assert forced.reason.startswith("mop: the workload's plan asks for it")
    with pytest.raises(ValueError, match="plan must be one of auto, mop, replicated, not 'fast'"):
        _choose(requested="fast")


def test_measured_hops_decide_once_the_data_fits():
    # 10 sub-epochs of 718 rows each (a MOP half of digits): 0.3 s overhead each against 0.7 s of compute
    costly = SubEpochCosts(wall_seconds=10.0, hop_seconds=2.0, compute_seconds=7.0, rows=7185, count=10)
    choice = _choose(costs=costly)
    assert (choice.plan, choice.basis) == ("replicated", "overhead_high")
    assert choice.reason.endswith("; hops were 30% of each sub-epoch")
    cheap = SubEpochCosts(wall_seconds=10.1, hop_seconds=0.05, compute_seconds=10.0, rows=7185, count=10)
    choice = _choose(costs=cheap)
    assert (choice.plan, choice.basis) == ("mop", "overhead_low")
    assert choice.reason == ("mop: hops were 1% of each sub-epoch (replication pays above 5%); each worker holds 1/2 "
                             "of digits")


def test_the_overhead_estimate_is_the_same_from_sub_epochs_of_either_plan():
    """Compute scales per row: a replicated sub-epoch (all the rows, one hop) and two MOP ones (half the rows,
    one hop each) with the same cost per row and per dispatch give the same share."""
    mop = SubEpochCosts(wall_seconds=2 * (0.2 + 0.5), hop_seconds=0.4, compute_seconds=1.0, rows=1000, count=2)
    replicated = SubEpochCosts(wall_seconds=0.2 + 1.0, hop_seconds=0.2, compute_seconds=1.0, rows=1000, count=1)
    assert mop.overhead_share(500) == pytest.approx(replicated.overhead_share(500)) == pytest.approx(0.2 / 0.7)
    assert SubEpochCosts().overhead_share(500) is None
    # the worker's own hop counts even when the wall clock says less (clock skew between store and scheduler)
    assert SubEpochCosts(0.5, 0.5, 1.0, 100, 1).overhead_share(100) == pytest.approx(0.5 / 1.5)
    assert OVERHEAD_SHARE == 0.05


def test_private_workloads_one_worker_and_the_unlimited_budget_threshold():
    assert _choose(private=True).basis == "private"
    assert _choose(workers=1).basis == "one_worker"
    unlimited = _choose(budget_bytes=0)
    assert unlimited.plan == "replicated" and "256 MiB replication threshold" in unlimited.reason
    assert _choose(WIDE, budget_bytes=0).plan == "mop"
    assert UNLIMITED_BUDGET_BYTES == 256 * MB
    assert [size_text(n) for n in (12, 2048, 1.5 * MB)] == ["12 B", "2 KiB", "1.5 MiB"]
    record = _choose().record(datetime(2026, 11, 26, 12, tzinfo=UTC))
    assert record == {"plan": "replicated", "basis": "unmeasured", "reason": _choose().reason,
                      "decided_at": "2026-11-26T12:00:00+00:00"}


# -- the policy with replicated workloads ----------------------------------------------------------------------
def test_a_replicated_workload_trains_a_whole_epoch_per_dispatch_on_any_worker():
    owned = rebalance(4, [0, 1])
    rows = [(1, 1, 0, 0, 2, 7), (2, 2, 0, 0, 2, 7)]
    snapshot = Snapshot(rows, {}, set(), set(), [1, 0], 4, owned={4: owned}, shard_counts={1: 4, 2: 4},
                        replicated={1})
    plan = {a.config_id: a for a in MopPolicy().assign(snapshot)}
    assert plan[1].shards == (0, 1, 2, 3) and plan[1].evaluate  # the whole epoch, whichever worker it got
    assert set(plan[2].shards) == owned[plan[2].worker] and not plan[2].evaluate  # MOP beside it


def test_replicated_configs_go_least_progress_first_then_back_to_the_worker_that_holds_their_model():
    """Inside a priority: the least epochs, then the config this worker holds, then one nobody holds; a higher
    priority still comes first. A config held by a worker never keeps one that is behind (added, cloned) waiting."""
    rows = [(1, 1, 0, 2, 5, 7), (2, 1, 0, 0, 5, 7), (3, 1, 0, 1, 5, 7), (4, 1, 0, 0, 5, 7)]
    homes = {1: 0, 2: 1, 3: 1}

    def given(idle, rows=rows, in_flight=()):
        snapshot = Snapshot(rows, {}, set(in_flight), set(), idle, 2, shard_counts={1: 2}, replicated={1},
                            homes=homes)
        return [(a.worker, a.config_id) for a in MopPolicy().assign(snapshot)]

    assert given([0]) == [(0, 4)]  # not its own config 1, two epochs ahead: the one nobody holds, at epoch 0
    assert given([1, 0]) == [(1, 2), (0, 4)]  # worker 1: its own among the least advanced
    assert given([0], in_flight=[4]) == [(0, 2)]  # one held elsewhere, before its own that is ahead
    assert given([0], in_flight=[2, 4]) == [(0, 3)]  # then the next least advanced
    level = [(1, 1, 0, 1, 5, 7), (3, 1, 0, 1, 5, 7), (6, 1, 0, 1, 5, 7)]
    assert given([0], rows=level) == [(0, 1)] and given([1], rows=level) == [(1, 3)]  # equals: the held model
    urgent = [*rows, (5, 1, 9, 3, 5, 7)]
    assert given([0], rows=urgent) == [(0, 5)]  # priority first


def test_a_config_part_way_through_an_epoch_finishes_it_under_mop():
    owned = rebalance(4, [0, 1])
    snapshot = Snapshot([(1, 1, 0, 3, 5, 7)], {(1, 3): {0, 2}}, set(), set(), [0, 1], 4, owned={4: owned},
                        shard_counts={1: 4}, replicated={1})
    plan = MopPolicy().assign(snapshot)
    assert [(a.worker, a.shards, a.evaluate) for a in plan] == [(1, (1, 3), True)]


@settings(max_examples=120, deadline=None)
@given(n_configs=st.integers(1, 5), max_epochs=st.integers(1, 3), workers=st.integers(1, 4),
       shards_per=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_every_config_visits_every_shard_exactly_once_per_epoch_while_plans_switch(
        n_configs, max_epochs, workers, shards_per, seed):
    """Two workloads whose plans flip at random moments: a worker is given only shards it owns, except a
    replicated workload's config at the start of its epoch, which gets them all; each committed epoch is an
    exact partition of the shards and ``evaluate`` marks the sub-epoch that completes it."""
    rng = random.Random(seed)
    n_shards = workers * shards_per
    owned = rebalance(n_shards, range(workers))
    policy = MopPolicy()
    config_workload = {c: 1 + c % 2 for c in range(1, n_configs + 1)}
    epoch = dict.fromkeys(config_workload, 0)
    visited: dict[tuple[int, int], set[int]] = {}
    running: dict[int, tuple[int, int, tuple[int, ...], bool]] = {}
    trace: list[tuple[int, int, tuple[int, ...]]] = []
    replicated: set[int] = set()
    for _ in range(5_000):
        if rng.random() < 0.3:
            replicated ^= {rng.choice([1, 2])}
        rows = [(c, config_workload[c], 0, e, max_epochs, 3) for c, e in epoch.items() if e < max_epochs]
        if not rows and not running:
            break
        idle = [w for w in range(workers) if w not in running]
        plan = policy.assign(Snapshot(rows, visited, {c for c, *_ in running.values()}, set(), idle, n_shards,
                                      owned={n_shards: owned}, shard_counts={1: n_shards, 2: n_shards},
                                      replicated=frozenset(replicated)))
        assert len({a.config_id for a in plan}) == len(plan), "a config was given to two workers"
        for a in plan:
            done = visited.get((a.config_id, epoch[a.config_id]), set())
            if config_workload[a.config_id] in replicated and not done:
                assert a.shards == tuple(range(n_shards)), "a replicated epoch start is the whole epoch"
            else:
                assert a.shards and set(a.shards) <= owned[a.worker], "a worker was given shards it does not own"
            assert not set(a.shards) & done, "a shard was offered twice in one epoch"
            assert a.evaluate == (len(done) + len(a.shards) == n_shards)
            running[a.worker] = (a.config_id, epoch[a.config_id], a.shards, a.evaluate)
        if not running:
            raise AssertionError(f"runnable configs left but nothing assigned: {rows}")
        worker = rng.choice(sorted(running))
        config_id, ep, shards, evaluate = running.pop(worker)
        trace.append((config_id, ep, shards))
        seen = visited.setdefault((config_id, ep), set())
        seen.update(shards)
        if len(seen) == n_shards:
            epoch[config_id] += 1
            visited.pop((config_id, ep))
    else:
        raise AssertionError("the simulation did not finish")
    assert_every_shard_once_per_epoch(trace, epoch, max_epochs, n_shards)


def test_a_worker_holding_every_shard_keeps_the_union_only():
    """The replicated plan's sub-epoch trains on all shards at once: the worker keeps their union, not the
    shards beside it (that would hold the data twice against its data memory budget)."""
    from types import SimpleNamespace

    import numpy as np

    from hopper.engine.entities import DatasetLayout
    from hopper.mop_scheduler.worker.runner import SubEpochRunner

    reads: list[str] = []

    def reader(path, shape):
        reads.append(path)
        return np.zeros((1000, *shape), np.float32), np.zeros(1000, np.int64)  # 48 000 bytes

    layout = DatasetLayout(1, ("p0", "p1"), "val", (10,), 3, "classification", {})
    runner = SubEpochRunner(0, reader=reader)
    every = SimpleNamespace(shards=(0, 1), partition=0, owned=(0, 1))
    x, _ = runner._partition(layout, every)
    assert len(x) == 2000 and runner.data_bytes == 96_000
    assert runner._partition(layout, every)[0] is x and reads == ["p0", "p1"]  # the next epoch: the same union
    mine = SimpleNamespace(shards=(0,), partition=0, owned=(0,))  # back to MOP: its shard alone, read again
    assert len(runner._partition(layout, mine)[0]) == 1000 and reads == ["p0", "p1", "p0"]
