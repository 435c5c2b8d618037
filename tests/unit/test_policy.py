"""The MOP policy alone: no database, no backend. Property-based tests of its invariants over random
workloads and random completion orders, plus the decisions it must make in small hand-made cases."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hopper.mop_scheduler.policy import MopPolicy, Snapshot, visit_key


def _snapshot(rows, visited=None, in_flight=(), cooling=(), idle=(0, 1), n=2):
    return Snapshot(runnable=rows, visited=visited or {}, in_flight=set(in_flight), cooling=set(cooling),
                    idle=list(idle), n_partitions=n)


def test_higher_priority_goes_first_then_least_progress():
    rows = [(1, 1, 0, 1, 3, 7), (2, 1, 5, 2, 3, 7), (3, 1, 0, 0, 3, 7)]
    plan = MopPolicy().assign(_snapshot(rows, idle=[0]))
    assert [a.config_id for a in plan] == [2]  # priority 5 beats less progress
    rows = [(1, 1, 0, 1, 3, 7), (3, 1, 0, 0, 3, 7)]
    assert [a.config_id for a in MopPolicy().assign(_snapshot(rows, idle=[0]))] == [3]  # then fewest epochs


def test_a_worker_is_never_given_a_partition_the_config_already_visited_this_epoch():
    rows = [(1, 1, 0, 0, 2, 7)]
    plan = MopPolicy().assign(_snapshot(rows, visited={(1, 0): {0}}, idle=[0, 1]))
    assert [(a.worker, a.config_id, a.evaluate) for a in plan] == [(1, 1, True)]


def test_configs_in_flight_cooling_or_finished_are_not_offered():
    rows = [(1, 1, 0, 0, 2, 7), (2, 1, 0, 0, 2, 7), (3, 1, 0, 2, 2, 7)]
    assert MopPolicy().assign(_snapshot(rows, in_flight=[1], cooling=[2])) == []


def test_epoch_barrier_holds_back_configs_ahead_of_their_workload():
    rows = [(1, 1, 9, 1, 3, 7), (2, 1, 0, 0, 3, 7)]
    plan = MopPolicy(epoch_barrier=True).assign(_snapshot(rows, idle=[0]))
    assert [a.config_id for a in plan] == [2]


def test_visit_key_is_a_replayable_shuffle():
    assert visit_key(1, 2, 3, 4) == visit_key(1, 2, 3, 4)
    orders = {tuple(sorted(range(4), key=lambda p, e=e: visit_key(0, 5, e, p))) for e in range(20)}
    assert len(orders) > 5  # the partition order varies from epoch to epoch


configs_strategy = st.lists(
    st.tuples(st.integers(1, 3), st.integers(-2, 2), st.integers(1, 3)),  # workload, priority, max_epochs
    min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(configs=configs_strategy, workers=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
       barrier=st.booleans())
def test_mop_invariants_hold_for_any_completion_order(configs, workers, seed, barrier):
    """Simulate a run to the end with workers finishing in random order, and check from the trace:
    each config trains on each partition exactly once per epoch, never on two workers at once, a worker runs one
    sub-epoch at a time, ``evaluate`` marks exactly the last partition of an epoch, and when a worker is given a
    config no higher-priority config of the same workload that could have used that worker was passed over
    (between workloads, fair share decides: ``test_fair_share.py``)."""
    rng = random.Random(seed)
    policy = MopPolicy(epoch_barrier=barrier)
    state = {cid: {"workload": w, "priority": p, "max": m, "epoch": 0}
             for cid, (w, p, m) in enumerate(configs, start=1)}
    visited: dict[tuple[int, int], set[int]] = {}
    running: dict[int, tuple[int, int, bool]] = {}  # worker -> (config, epoch, evaluate)
    trace: list[tuple[int, int, int]] = []
    for _ in range(10_000):
        rows = [(cid, s["workload"], s["priority"], s["epoch"], s["max"], 11)
                for cid, s in state.items() if s["epoch"] < s["max"]]
        if not rows and not running:
            break
        idle = [w for w in range(workers) if w not in running]
        in_flight = {c for c, _, _ in running.values()}
        plan = policy.assign(Snapshot(rows, visited, set(in_flight), set(), idle, workers))
        assigned = [a.config_id for a in plan]
        assert len(assigned) == len(set(assigned)), "a config was given to two workers"
        for a in plan:
            assert a.worker in idle, "a busy worker got a second sub-epoch"
            assert a.config_id not in in_flight, "a config already training was given to another worker"
            s = state[a.config_id]
            done = visited.get((a.config_id, s["epoch"]), set())
            assert a.worker not in done, "a partition was offered twice in one epoch"
            assert a.evaluate == (len(done) + 1 == workers)
            # priority: nothing strictly more urgent in the same workload could have taken this worker
            for cid, other in state.items():
                if (other["workload"] != s["workload"] or cid in in_flight or cid in assigned or other["epoch"] >= other["max"]
                        or a.worker in visited.get((cid, other["epoch"]), set())):
                    continue
                if barrier and other["epoch"] != min(
                        x["epoch"] for x in state.values() if x["workload"] == other["workload"] and x["epoch"] < x["max"]):
                    continue
                assert other["priority"] <= s["priority"], "a higher-priority config was passed over"
            running[a.worker] = (a.config_id, s["epoch"], a.evaluate)
            in_flight.add(a.config_id)
        if not running:
            assert not rows, f"runnable configs left but nothing assigned: {rows}"
            break
        worker = rng.choice(sorted(running))
        config_id, epoch, _ = running.pop(worker)
        trace.append((config_id, epoch, worker))
        seen = visited.setdefault((config_id, epoch), set())
        seen.add(worker)
        if len(seen) == workers:
            state[config_id]["epoch"] += 1
            visited.pop((config_id, epoch))
    else:
        raise AssertionError("the simulation did not finish")
    for cid, s in state.items():
        assert s["epoch"] == s["max"]
        for epoch in range(s["max"]):
            partitions = sorted(p for c, e, p in trace if c == cid and e == epoch)
            assert partitions == list(range(workers)), f"config {cid} epoch {epoch} visited {partitions}"
