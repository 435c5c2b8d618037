"""Checks shared by the policy simulations (shards, plans)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def assert_every_shard_once_per_epoch(trained: Iterable[tuple[int, int, Iterable[int]]], epochs: Mapping[int, int],
                                      max_epochs: int, n_shards: int) -> None:
    """Each config finished ``max_epochs`` epochs, training on every shard exactly once in each of them;
    ``trained`` holds (config id, epoch, shards) per committed sub-epoch."""
    trained = list(trained)
    for config_id in epochs:
        assert epochs[config_id] == max_epochs
        for ep in range(max_epochs):
            shards = sorted(s for c, e, group in trained if c == config_id and e == ep for s in group)
            assert shards == list(range(n_shards)), f"config {config_id} epoch {ep} trained {shards}"
