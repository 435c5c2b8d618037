"""Weighted fair share between workloads in the MOP policy alone (no database, no TensorFlow).

Stated property (starvation freedom): when a worker frees up, it goes to the workload with the least
worker-seconds used per unit of weight among those with a config that fits that worker; so a runnable workload
is never passed over for one that used more per weight, so its turn comes at the first freed worker it fits
once the others' use per weight has passed its own; over time each workload's share of worker time follows
its weight.
"""

from __future__ import annotations

import random
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st

from hopper.mop_scheduler.policy import MopPolicy, Snapshot, WorkloadShare


def _rows(workloads: int, configs_each: int, max_epochs: int = 1000) -> list[tuple]:
    return [(w * 100 + c, w, 0, 0, max_epochs, 7) for w in range(1, workloads + 1) for c in range(configs_each)]


def _fits(wid: int, worker: int, taken: set[int], visited: dict, epoch: dict[int, int]) -> bool:
    """Whether workload ``wid`` has a config free to train on ``worker``'s partition this epoch."""
    return any(cid // 100 == wid and cid not in taken and worker not in visited.get((cid, epoch[cid]), ())
               for cid in epoch)


def _due(wid: int, *, shares: dict, owner_used: dict | None, charged: dict) -> tuple[float, float]:
    """The order in which workloads are due: their person's use (when people share first), then use per weight."""
    return (owner_used[shares[wid].owner] if owner_used is not None else 0.0, charged[wid] / shares[wid].weight)


def test_a_freed_worker_goes_to_the_workload_that_used_least_per_weight():
    rows = _rows(2, 2)
    shares = {1: WorkloadShare(weight=3.0, used=30.0), 2: WorkloadShare(weight=1.0, used=11.0)}
    plan = MopPolicy().assign(Snapshot(rows, {}, set(), set(), [0], 2, shares=shares))
    assert [a.config_id // 100 for a in plan] == [1]  # 30/3 = 10 < 11/1
    shares = {1: WorkloadShare(weight=3.0, used=36.0), 2: WorkloadShare(weight=1.0, used=11.0)}
    plan = MopPolicy().assign(Snapshot(rows, {}, set(), set(), [0], 2, shares=shares))
    assert [a.config_id // 100 for a in plan] == [2]  # 12 > 11


def test_workers_freed_together_are_spread_by_share():
    plan = MopPolicy().assign(Snapshot(_rows(2, 4), {}, set(), set(), [0, 1, 2, 3], 4, shares={}))
    assert sorted(a.config_id // 100 for a in plan) == [1, 1, 2, 2]


def test_a_workload_without_a_fitting_config_lets_the_next_one_have_the_worker():
    rows = _rows(2, 1)
    # workload 1 (least used) has visited partition 0 already: the worker goes to workload 2
    plan = MopPolicy().assign(Snapshot(rows, {(100, 0): {0}}, set(), set(), [0], 2,
                                       shares={1: WorkloadShare(used=0.0), 2: WorkloadShare(used=50.0)}))
    assert [a.config_id for a in plan] == [200]


def test_people_share_first_then_their_workloads():
    rows = _rows(3, 2)
    # alice runs two workloads and used 10 s in all; bob's one workload used 8 s: bob is due
    shares = {1: WorkloadShare(used=5.0, owner="alice"), 2: WorkloadShare(used=5.0, owner="alice"),
              3: WorkloadShare(used=8.0, owner="bob")}
    plan = MopPolicy().assign(Snapshot(rows, {}, set(), set(), [0], 2, shares=shares))
    assert [a.config_id // 100 for a in plan] == [3]
    plan = MopPolicy(by_owner=False).assign(Snapshot(rows, {}, set(), set(), [0], 2, shares=shares))
    assert [a.config_id // 100 for a in plan] == [1]


def test_priorities_order_configs_inside_a_workload_only():
    rows = [(100, 1, 9, 0, 3, 7), (101, 1, 0, 0, 3, 7), (200, 2, 0, 0, 3, 7)]
    shares = {1: WorkloadShare(used=10.0), 2: WorkloadShare(used=0.0)}
    plan = MopPolicy().assign(Snapshot(rows, {}, set(), set(), [0, 1], 2, shares=shares))
    assert [a.config_id for a in plan] == [200, 100]  # workload 2 is due; workload 1's priority-9 config next


@settings(max_examples=60, deadline=None)
@given(weights=st.lists(st.sampled_from([0.5, 1.0, 2.0, 3.0]), min_size=2, max_size=4),
       owners=st.lists(st.sampled_from(["", "alice", "bob"]), min_size=4, max_size=4),
       workers=st.integers(1, 4), seed=st.integers(0, 2**32 - 1), by_owner=st.booleans())
def test_no_runnable_workload_starves(weights, owners, workers, seed, by_owner):
    """Simulate workers finishing sub-epochs of random length (1-3 s) in random order: at each assignment the
    chosen workload is the least used per weight (per person first) among those with a fitting config, every
    workload is served, and no worker stays idle while some workload has a config that fits it."""
    rng = random.Random(seed)
    n = len(weights)
    policy = MopPolicy(by_owner=by_owner)
    rows = _rows(n, workers + 1)  # enough configs that a workload seldom has none fitting a freed worker
    used = dict.fromkeys(range(1, n + 1), 0.0)
    served = dict.fromkeys(range(1, n + 1), 0)
    running: dict[int, tuple[int, float]] = {}  # worker -> (config, its duration)
    visited: dict[tuple[int, int], set[int]] = {}
    epoch = dict.fromkeys((r[0] for r in rows), 0)
    for _ in range(150):
        idle = [w for w in range(workers) if w not in running]
        shares = {wid: WorkloadShare(weights[wid - 1], used[wid], owners[wid - 1] if by_owner else "", 2.0)
                  for wid in used}
        current = [(cid, wid, p, epoch[cid], m, s) for cid, wid, p, _, m, s in rows]
        in_flight = {c for c, _ in running.values()}
        plan = policy.assign(Snapshot(current, visited, set(in_flight), set(), idle, workers, shares=shares))
        taken = set(in_flight)
        given = {a.worker for a in plan}
        taken.update(a.config_id for a in plan)
        for worker in idle:
            if worker not in given:
                assert not any(_fits(wid, worker, taken, visited, epoch) for wid in used), "a worker was left idle with work for it"
        taken = set(in_flight)
        charged = dict(used)
        owner_used: dict[str, float] = {}
        for wid, share in shares.items():
            owner_used[share.owner] = owner_used.get(share.owner, 0.0) + charged[wid]
        for a in plan:
            chosen = a.config_id // 100
            key = partial(_due, shares=shares, owner_used=owner_used if by_owner else None, charged=charged)
            assert _fits(chosen, a.worker, taken, visited, epoch)
            assert all(key(chosen) <= key(other) for other in used if _fits(other, a.worker, taken, visited, epoch)), \
                "a workload that was due was passed over"
            taken.add(a.config_id)
            charged[chosen] += 2.0
            owner_used[shares[chosen].owner] += 2.0
            served[chosen] += 1
            duration = rng.uniform(1.0, 3.0)
            running[a.worker] = (a.config_id, duration)
            used[chosen] += duration  # use counts from the start: committed plus running
        worker = rng.choice(sorted(running))
        config_id, _ = running.pop(worker)
        seen = visited.setdefault((config_id, epoch[config_id]), set())
        seen.add(worker)
        if len(seen) == workers:
            visited.pop((config_id, epoch[config_id]))
            epoch[config_id] += 1
    assert all(count > 0 for count in served.values()), f"a workload was never served: {served}"


@settings(max_examples=40, deadline=None)
@given(ratio=st.sampled_from([1.0, 2.0, 3.0]), workers=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_shares_of_worker_time_follow_the_weights(ratio, workers, seed):
    """Two always-runnable workloads with equal sub-epoch times: their shares of worker-seconds approach
    their weights (within 10 % after 400 sub-epochs)."""
    rng = random.Random(seed)
    policy = MopPolicy()
    # Twice as many configs as workers: with only W each, MOP's rule (a config visits each worker once per epoch)
    # sometimes left the weight-3 workload no config for the worker that freed up, which capped its share below
    # its weight (0.668 against 0.75 at 3-4 workers, 6 of 1 800 seeds): runnable, but not on that worker.
    rows = _rows(2, 2 * workers)
    used = {1: 0.0, 2: 0.0}
    running: dict[int, int] = {}
    visited: dict[tuple[int, int], set[int]] = {}
    epoch = dict.fromkeys((r[0] for r in rows), 0)
    for _ in range(400):
        idle = [w for w in range(workers) if w not in running]
        shares = {1: WorkloadShare(ratio, used[1], "", 1.0), 2: WorkloadShare(1.0, used[2], "", 1.0)}
        current = [(cid, wid, p, epoch[cid], m, s) for cid, wid, p, _, m, s in rows]
        for a in policy.assign(Snapshot(current, visited, set(running.values()), set(), idle, workers, shares=shares)):
            running[a.worker] = a.config_id
            used[a.config_id // 100] += 1.0
        worker = rng.choice(sorted(running))
        config_id = running.pop(worker)
        seen = visited.setdefault((config_id, epoch[config_id]), set())
        seen.add(worker)
        if len(seen) == workers:
            visited.pop((config_id, epoch[config_id]))
            epoch[config_id] += 1
    share = used[1] / (used[1] + used[2])
    assert abs(share - ratio / (ratio + 1)) <= 0.1 * ratio / (ratio + 1)
