"""Which worker owns which data shards: a pure, deterministic assignment that moves few shards on a change.

A dataset is cut into S shards at registration (``Settings.dataset_shards``; datasets registered before
shards have one file per worker they were registered for, read as S = that many shards). The scheduler keeps
one ownership map per shard count and recomputes it from the previous map whenever the worker set changes:

- every shard has exactly one owner, and owners are balanced (each owns floor(S/W) or ceil(S/W));
- a shard moves only when its owner left or its owner holds more than its balanced share, so a worker joining
  takes about S/W shards from the others and a worker leaving hands over only its own.

The policy only ever reads "worker -> shards it may train on"; nothing requires those sets to be disjoint, so
a replicated plan in which every worker holds all the data (:func:`replicated`) is the same interface.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

Ownership = dict[int, frozenset[int]]


def round_robin(n_shards: int, workers: Iterable[int]) -> Ownership:
    """The first assignment: shard s to the (s mod W)-th worker in id order (worker i owns shard i when S = W)."""
    ids = sorted(set(workers))
    if not ids:
        return {}
    owned: dict[int, set[int]] = {w: set() for w in ids}
    for shard in range(n_shards):
        owned[ids[shard % len(ids)]].add(shard)
    return {w: frozenset(s) for w, s in owned.items()}


def rebalance(n_shards: int, workers: Iterable[int], previous: Mapping[int, Collection[int]] | None = None) -> Ownership:
    """Ownership of ``n_shards`` shards over ``workers``, keeping as much of ``previous`` as balance allows.

    Deterministic: the same inputs give the same map. Without ``previous`` it is :func:`round_robin`.
    """
    ids = sorted(set(workers))
    if not ids:
        return {}
    if not previous:
        return round_robin(n_shards, ids)
    kept: dict[int, list[int]] = {w: [] for w in ids}
    claimed: set[int] = set()
    for worker in sorted(previous):
        if worker not in kept:
            continue
        for shard in sorted(previous[worker]):
            # A shard listed twice (a replicated map) stays with its lowest-id surviving owner only.
            if 0 <= shard < n_shards and shard not in claimed:
                kept[worker].append(shard)
                claimed.add(shard)
    base, extra = divmod(n_shards, len(ids))
    # The workers already holding the most keep the extra shards: that moves the fewest.
    by_load = sorted(ids, key=lambda w: (-len(kept[w]), w))
    quota = {w: base + (1 if rank < extra else 0) for rank, w in enumerate(by_load)}
    pool = sorted(set(range(n_shards)) - claimed)
    for worker in ids:
        while len(kept[worker]) > quota[worker]:
            pool.append(kept[worker].pop())  # its highest shards go first
    pool.sort()
    for worker in ids:
        while len(kept[worker]) < quota[worker]:
            kept[worker].append(pool.pop(0))
    return {w: frozenset(kept[w]) for w in ids}


def replicated(n_shards: int, workers: Iterable[int]) -> Ownership:
    """Every worker owns every shard: one dispatch trains a config on all the data it has not yet visited."""
    every = frozenset(range(n_shards))
    return {w: every for w in sorted(set(workers))}
