"""A worker's dataset cache under its data memory budget: least recently used datasets are dropped (no TF)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from hopper.engine.entities import DatasetLayout
from hopper.mop_scheduler.worker.runner import SubEpochRunner, nbytes

ROWS = 1000  # x: 1000 x 10 float32 = 40 000 bytes, y: 1000 int64 = 8 000 bytes
SHARD_0 = SimpleNamespace(shards=(0,), partition=0, owned=())  # what a sub-epoch task says about its shards


def _layout(dataset_id: int) -> DatasetLayout:
    return DatasetLayout(dataset_id, (f"d{dataset_id}/p0",), f"d{dataset_id}/val", (10,), 3, "classification", {})


def test_least_recently_used_datasets_are_dropped_beyond_the_budget():
    reads: list[str] = []

    def reader(path, shape):
        reads.append(path)
        return np.zeros((ROWS, *shape), np.float32), np.zeros(ROWS, np.int64)

    runner = SubEpochRunner(0, reader=reader, data_memory_bytes=2 * 48_000)
    assert nbytes(reader("probe", (10,))) == 48_000
    reads.clear()
    runner._partition(_layout(1), SHARD_0)
    runner._partition(_layout(2), SHARD_0)
    runner._partition(_layout(1), SHARD_0)  # 1 is now the most recently used
    assert runner.data_bytes == 96_000 and runner.evicted == []
    runner._partition(_layout(3), SHARD_0)  # over budget: 2, the least recently used, goes
    assert runner.evicted == [2] and runner.data_bytes == 96_000
    runner._partition(_layout(1), SHARD_0)
    assert reads == ["d1/p0", "d2/p0", "d3/p0"]  # 1 was kept, never read twice
    runner._partition(_layout(2), SHARD_0)  # read again on its next use, and 3 makes room
    assert reads[-1] == "d2/p0" and runner.evicted == [2, 3]


def test_the_dataset_in_use_stays_even_alone_over_the_budget_and_zero_means_no_limit():
    def reader(path, shape):
        return np.zeros((ROWS, *shape), np.float32), np.zeros(ROWS, np.int64)

    tight = SubEpochRunner(0, reader=reader, data_memory_bytes=1_000)
    tight._partition(_layout(1), SHARD_0)
    tight._validation_split(_layout(1))
    assert tight.data_bytes == 96_000 and tight.evicted == []
    tight._partition(_layout(2), SHARD_0)
    assert tight.evicted == [1] and tight.data_bytes == 48_000
    unlimited = SubEpochRunner(0, reader=reader)
    for dataset_id in range(1, 6):
        unlimited._partition(_layout(dataset_id), SHARD_0)
    assert unlimited.evicted == [] and unlimited.data_bytes == 5 * 48_000
