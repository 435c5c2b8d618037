"""Shard ownership and the per-shard MOP invariant, pure: no database, no backend.

Property tests: ownership stays a balanced partition of the shards that moves only what it must when workers
join or leave; and with workers joining and leaving at arbitrary moments of a simulated run (draining workers
finish their sub-epoch, ``--now`` removals lose it), every config visits every shard exactly once per epoch.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from hopper.mop_scheduler.policy import MopPolicy, Snapshot
from hopper.mop_scheduler.shards import rebalance, replicated, round_robin
from tests.support.shards import assert_every_shard_once_per_epoch


def _assert_balanced_partition(owned: dict[int, frozenset[int]], n_shards: int, workers: list[int]) -> None:
    assert sorted(owned) == sorted(set(workers))
    every = [s for shards in owned.values() for s in shards]
    assert sorted(every) == list(range(n_shards)), "every shard has exactly one owner"
    sizes = {len(s) for s in owned.values()}
    assert max(sizes) - min(sizes) <= 1, f"unbalanced: {owned}"


def test_one_shard_per_worker_is_the_original_layout():
    assert round_robin(3, [2, 0, 1]) == {0: frozenset({0}), 1: frozenset({1}), 2: frozenset({2})}
    assert rebalance(4, [0, 1]) == {0: frozenset({0, 2}), 1: frozenset({1, 3})}


def test_a_joining_worker_takes_a_share_and_nothing_else_moves():
    before = rebalance(8, [0, 1])
    after = rebalance(8, [0, 1, 5], before)
    _assert_balanced_partition(after, 8, [0, 1, 5])
    assert len(after[5]) in (2, 3)
    assert all(after[w] <= before[w] for w in (0, 1)), "old workers only gave shards away"


def test_a_leaving_worker_hands_over_only_its_own_shards():
    before = rebalance(9, [0, 1, 2])
    after = rebalance(9, [0, 2], before)
    _assert_balanced_partition(after, 9, [0, 2])
    assert before[0] <= after[0] and before[2] <= after[2]


def test_replicated_ownership_is_expressible_and_a_dispatch_then_covers_the_epoch():
    owned = replicated(4, [0, 1])
    plan = MopPolicy().assign(Snapshot(runnable=[(1, 1, 0, 0, 2, 7)], visited={(1, 0): {2}}, in_flight=set(),
                                       cooling=set(), idle=[1], n_partitions=4, owned={4: owned},
                                       shard_counts={1: 4}))
    assert [(a.worker, a.config_id, a.shards, a.evaluate) for a in plan] == [(1, 1, (0, 1, 3), True)]
    assert rebalance(4, [0, 1], owned) == {0: frozenset({0, 1}), 1: frozenset({2, 3})}


@settings(max_examples=200, deadline=None)
@given(n_shards=st.integers(1, 24), first=st.sets(st.integers(0, 9), min_size=1, max_size=6),
       changes=st.lists(st.sets(st.integers(0, 9), min_size=1, max_size=6), max_size=6))
def test_rebalance_keeps_a_balanced_partition_and_moves_only_what_it_must(n_shards, first, changes):
    owned = rebalance(n_shards, first)
    _assert_balanced_partition(owned, n_shards, sorted(first))
    assert rebalance(n_shards, first, owned) == owned, "an unchanged worker set moves nothing"
    for workers in changes:
        after = rebalance(n_shards, workers, owned)
        _assert_balanced_partition(after, n_shards, sorted(workers))
        assert after == rebalance(n_shards, workers, owned), "deterministic"
        floor, ceiling = n_shards // len(workers), -(-n_shards // len(workers))
        for worker in set(workers) & set(owned):
            before, now = owned[worker], after[worker]
            if len(before) <= floor:
                assert before <= now, "a worker at or under its share lost a shard"
            else:
                assert len(before & now) >= floor, "a worker over its share gave away more than its excess"
            if len(before) >= ceiling:
                assert now <= before, "a worker at or over its share received a shard"
        owned = after


events_strategy = st.lists(st.sampled_from(["finish", "finish", "finish", "join", "leave", "leave_now"]),
                           min_size=5, max_size=60)


@settings(max_examples=120, deadline=None)
@given(n_configs=st.integers(1, 5), max_epochs=st.integers(1, 3), start=st.integers(1, 3),
       shards_per=st.integers(1, 3), events=events_strategy, seed=st.integers(0, 2**32 - 1))
def test_every_config_visits_every_shard_exactly_once_per_epoch_under_joins_and_leaves(
        n_configs, max_epochs, start, shards_per, events, seed):
    """Simulate a run with workers joining and leaving at random moments (draining ones finish their sub-epoch;
    ``--now`` ones lose it), and check from the committed trace: each config's epoch is an exact partition of
    the shards, a worker is only given shards it owns, and ``evaluate`` marks the sub-epoch that completes it."""
    rng = random.Random(seed)
    n_shards = 4 * shards_per
    policy = MopPolicy()
    epoch = dict.fromkeys(range(1, n_configs + 1), 0)
    visited: dict[tuple[int, int], set[int]] = {}
    active, draining, next_id = list(range(start)), set(), start
    owned = rebalance(n_shards, active)
    running: dict[int, tuple[int, int, tuple[int, ...], bool]] = {}  # worker -> (config, epoch, shards, evaluate)
    committed: list[tuple[int, int, tuple[int, ...]]] = []
    events = list(events)
    for _ in range(5_000):
        rows = [(c, 1, 0, e, max_epochs, 3) for c, e in epoch.items() if e < max_epochs]
        if not rows and not running:
            break
        idle = [w for w in active if w not in running]
        plan = policy.assign(Snapshot(rows, visited, {c for c, *_ in running.values()}, set(), idle, n_shards,
                                      owned={n_shards: owned}, shard_counts={1: n_shards}))
        for a in plan:
            done = visited.get((a.config_id, epoch[a.config_id]), set())
            assert a.shards and set(a.shards) <= owned[a.worker], "a worker was given shards it does not own"
            assert not set(a.shards) & done, "a shard was offered twice in one epoch"
            assert a.evaluate == (len(done) + len(a.shards) == n_shards)
            running[a.worker] = (a.config_id, epoch[a.config_id], a.shards, a.evaluate)
        event = events.pop(0) if events else "finish"
        if event == "join" and len(active) < 6:
            active.append(next_id)
            next_id += 1
        elif event.startswith("leave") and len(active) > 1:
            gone = rng.choice(active)
            active.remove(gone)
            if gone in running and event == "leave_now":
                running.pop(gone)  # lost: nothing committed, re-run elsewhere
            elif gone in running:
                draining.add(gone)
        elif running:
            worker = rng.choice(sorted(running))
            config_id, ep, shards, evaluate = running.pop(worker)
            draining.discard(worker)
            committed.append((config_id, ep, shards))
            seen = visited.setdefault((config_id, ep), set())
            seen.update(shards)
            assert evaluate == (len(seen) == n_shards)
            if len(seen) == n_shards:
                epoch[config_id] += 1
                visited.pop((config_id, ep))
        owned = rebalance(n_shards, active, owned)
    else:
        raise AssertionError("the simulation did not finish")
    assert_every_shard_once_per_epoch(committed, epoch, max_epochs, n_shards)
