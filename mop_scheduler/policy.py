"""The MOP scheduling policy: given a snapshot of the world, which config each idle worker trains next.

Pure: no store, no backend, no clock. The loop (``scheduler.py``) builds a :class:`Snapshot` from one store
read plus its own bookkeeping, asks :meth:`MopPolicy.assign`, and starts what it returns. This is the seam
where search procedures that stop or promote configs, fair sharing between workloads and elastic workers plug
in, and the MOP invariants are property-tested here without a database:

- a config trains on each shard at most once per epoch: a worker is offered a config only for the shards it owns
  that the config has not visited this epoch, and trains it on all of them in one sub-epoch (with one shard per
  worker, the original MOP: worker i holds partition i);
- a config is never given to two workers at once, and a worker gets at most one config;
- higher priority first, then least progress (epochs, then partitions this epoch), then a seeded shuffle that
  varies each config's partition order per epoch (replayable from the workload's seed).

Between workloads the policy shares the workers by weighted fair share: a freed worker goes to the workload
with the least worker-seconds used per unit of weight among those that have a config fitting that worker
(with ``by_owner``, first to the person who used least, then to that person's workload). Priorities order the
configs inside a workload only. Starvation-free: a runnable workload with a fitting config is never passed over
for one that used more per weight, so it gets the first freed worker it fits once the others' use per weight
has passed its own. Each assignment charges the chosen workload one expected sub-epoch, so workers freed in
the same step spread by share (``tests/unit/test_fair_share.py`` property-tests this).

Workloads in ``Snapshot.replicated`` run the data-replicated plan (``hopper.mop_scheduler.plans``): every worker
holds all their data, so a config that starts an epoch is offered every shard on any worker and trains the whole
epoch in one sub-epoch. A config already part-way through an epoch (it started it under MOP) finishes that epoch
under MOP, so a plan change never splits an epoch between plans and each shard is still visited once. Inside a
priority, a replicated workload's configs go least progress (epochs) first, as under MOP, so every config moves
on and one that people add or clone starts at the next free worker; among equals, the config whose model this
worker holds (``Snapshot.homes``: workers keep the models they trained built), then one no worker holds, then the
seeded shuffle. (Preferring the held model before progress made each worker train one config to its last epoch
before it took another, like task parallelism: a workload of 4 configs at 5 000 epochs on 2 workers never started
its other 2.)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

_MASK64 = (1 << 64) - 1
# When thousands of configs tie on rank, shuffle among the oldest this many: keeps a decision
# O(configs) to sort, not O(configs x workers) to hash, at 10 000 configs.
MAX_TIED = 64


def visit_key(seed: int, config_id: int, epoch: int, partition: int) -> int:
    """Seeded tie-break that shuffles each config's partition order per epoch (replayable).

    A multiplicative hash (splitmix64's finaliser) rather than sha256: it runs for every tied
    candidate of every idle worker at every step, and needs to be stable, not secret.
    """
    z = (seed * 0x9E3779B97F4A7C15 + config_id * 0xBF58476D1CE4E5B9 + epoch * 0x94D049BB133111EB
         + partition * 0xD6E8FEB86659FD93) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class Runnable(NamedTuple):
    """A dispatchable config as the store lists it (a plain tuple: read for every config at every step)."""

    config_id: int
    workload_id: int
    priority: int
    epochs_done: int
    max_epochs: int
    seed: int


class WorkloadShare(NamedTuple):
    """A runnable workload's claim on the workers.

    Attributes:
        weight: its share against the others (> 0).
        used: worker-seconds its committed and running sub-epochs used so far.
        owner: who launched it ("" when unknown): with ``by_owner`` people share first, then their workloads.
        sub_epoch_seconds: what one more sub-epoch is expected to cost it (charged when one is assigned, so the
            workers freed in one step spread by share instead of all going to the same workload).
    """

    weight: float = 1.0
    used: float = 0.0
    owner: str = ""
    sub_epoch_seconds: float = 1.0


_DEFAULT_SHARE = WorkloadShare()


class Assignment(NamedTuple):
    worker: int
    config_id: int
    evaluate: bool  # the config's last shards of its epoch: the worker also scores it on validation data
    shards: tuple[int, ...] = ()  # what it trains on, ascending (empty only from callers that predate shards)


@dataclass(frozen=True)
class Snapshot:
    """Everything the policy decides from.

    Attributes:
        runnable: configs of running workloads that may still train (queued or running).
        visited: (config id, epoch) -> partitions it has committed in that epoch.
        in_flight: configs training on some worker right now.
        cooling: configs backing off after a retryable failure.
        idle: workers with nothing to do.
        n_partitions: shards per epoch of a workload not in ``shard_counts``.
        owned: shard count -> worker -> the shards it owns (``hopper.mop_scheduler.shards``); a shard count
            missing here means worker ``i`` owns shard ``i`` alone (one partition per worker).
        shard_counts: workload id -> its dataset's shard count.
        shares: workload id -> its weight and use (fair share); a workload missing here has weight 1, used 0.
        replicated: workloads running the data-replicated plan: any worker trains their configs' whole epoch.
        homes: config id -> the worker that trained it last (and keeps its model built): replicated configs
            prefer it.
    """

    runnable: Sequence[tuple[int, int, int, int, int, int]]
    visited: Mapping[tuple[int, int], Collection[int]]
    in_flight: Collection[int]
    cooling: Collection[int]
    idle: Sequence[int]
    n_partitions: int
    owned: Mapping[int, Mapping[int, Collection[int]]] = field(default_factory=dict)
    shard_counts: Mapping[int, int] = field(default_factory=dict)
    shares: Mapping[int, WorkloadShare] = field(default_factory=dict)
    replicated: Collection[int] = frozenset()
    homes: Mapping[int, int] = field(default_factory=dict)


class MopPolicy:
    """Model hopper parallelism's assignment rule.

    Args:
        epoch_barrier: strict MOP template: no config of a workload starts epoch e+1 before all of its
            runnable configs finished epoch e.
    """

    def __init__(self, *, epoch_barrier: bool = False, by_owner: bool = True) -> None:
        self.epoch_barrier = epoch_barrier
        self.by_owner = by_owner

    def assign(self, snapshot: Snapshot) -> list[Assignment]:
        """Which config each idle worker trains next (workers with no fitting config are left out)."""
        rows = snapshot.runnable
        if not rows or not snapshot.idle:
            return []
        in_flight = set(snapshot.in_flight)
        cooling = snapshot.cooling
        visited = snapshot.visited
        min_epoch: dict[int, int] = {}
        if self.epoch_barrier:
            for _, workload_id, _, epochs_done, max_epochs, _ in rows:
                if epochs_done < max_epochs:
                    min_epoch[workload_id] = min(min_epoch.get(workload_id, epochs_done), epochs_done)
        none: frozenset[int] = frozenset()
        shard_counts, default_count = snapshot.shard_counts, snapshot.n_partitions
        candidates: list[tuple] = []
        # plain tuple unpacking: attribute access costs more than the store read at 10 000 configs
        for config_id, workload_id, priority, epochs_done, max_epochs, seed in rows:
            if epochs_done >= max_epochs or config_id in in_flight or config_id in cooling:
                continue
            if self.epoch_barrier and epochs_done != min_epoch[workload_id]:
                continue
            done = visited.get((config_id, epochs_done), none)
            n_shards = shard_counts.get(workload_id, default_count)
            # highest priority, then least progress (epochs, then shards this epoch)
            candidates.append(((-priority, epochs_done, len(done)), config_id, epochs_done, seed, done, workload_id,
                               n_shards))
        candidates.sort(key=lambda c: c[0])
        by_workload: dict[int, list[tuple]] = {}
        for candidate in candidates:  # each workload's list keeps the global order: priority, then progress
            by_workload.setdefault(candidate[5], []).append(candidate)
        shares = {wid: snapshot.shares.get(wid, _DEFAULT_SHARE) for wid in by_workload}
        used = {wid: share.used for wid, share in shares.items()}
        owner_used: dict[str, float] = {}
        for share in shares.values():
            owner_used[share.owner] = owner_used.get(share.owner, 0.0) + share.used
        owners = snapshot.owned
        replicated, homes = snapshot.replicated, snapshot.homes
        plan: list[Assignment] = []
        for worker in snapshot.idle:
            if len(by_workload) == 1:
                order = list(by_workload)
            else:
                # least normalised use first; the workload id breaks ties so the order is replayable
                order = sorted(by_workload, key=lambda wid: (
                    owner_used[shares[wid].owner] if self.by_owner else 0.0, used[wid] / shares[wid].weight, wid))
            for workload_id in order:
                best = _best_fit(worker, by_workload[workload_id], in_flight, owners,
                                 homes if workload_id in replicated else None)
                if best is None:
                    continue
                config_id, n_done, n_shards, offered = best
                plan.append(Assignment(worker, config_id, n_done + len(offered) >= n_shards, tuple(sorted(offered))))
                in_flight.add(config_id)
                cost = shares[workload_id].sub_epoch_seconds
                used[workload_id] += cost
                owner_used[shares[workload_id].owner] += cost
                break
        return plan


def _best_fit(worker: int, candidates: list[tuple], in_flight: set[int],
              owners: Mapping[int, Mapping[int, Collection[int]]],
              homes: Mapping[int, int] | None = None) -> tuple[int, int, int, list[int]] | None:
    """The config of one workload that ``worker`` should train, as (id, shards done this epoch, shards per epoch,
    the shards it trains now): the best rank group with a config that has not visited every shard the worker
    owns, shuffled by the seeded visit key.

    ``homes`` (given for a replicated workload): a config at the start of its epoch is offered every shard,
    whoever owns it; the rank group is the priority alone, and inside it the least epochs come first, then the
    config whose model this worker holds, then one no worker holds."""
    none: frozenset[int] = frozenset()
    replicated = homes is not None
    best, best_key, top_rank, examined = None, None, None, 0
    for rank, config_id, epochs_done, seed, done, _, n_shards in candidates:
        group = rank[0] if replicated else rank
        if top_rank is not None and (group != top_rank or examined >= MAX_TIED):
            break  # past the best rank group that has a fit for this worker
        if config_id in in_flight:
            continue
        if replicated and not done:
            offered = list(range(n_shards))
        else:
            ownership = owners.get(n_shards)
            mine = ownership.get(worker, none) if ownership is not None else ((worker,) if worker < n_shards else none)
            offered = [s for s in mine if s not in done]
        if not offered:
            continue
        top_rank = group
        examined += 1
        # the seeded shuffle only breaks ties inside the best rank group
        shuffle = max(visit_key(seed, config_id, epochs_done, s) for s in offered)
        if replicated:
            home = homes.get(config_id)
            key = (-epochs_done, home == worker, home is None, -len(done), shuffle)
        else:
            key = shuffle
        if best_key is None or key > best_key:
            best, best_key = (config_id, len(done), n_shards, offered), key
    return best
