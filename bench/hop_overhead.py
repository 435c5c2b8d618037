"""Cost of a hop: checkpoint save + load as a fraction of one sub-epoch's training.

For each roster model (mlp, cnn) on scikit-learn's digits split into W=2 partitions, it measures
the median over R repetitions of
  - sub-epoch compute: one pass of model.fit over one partition, fed as a worker feeds it
    (``shuffled_batches``: a tf.data pipeline of index-gathered batches), after a warm-up pass,
  - hop: Hopper's checkpoint (save_checkpoint on the sending worker + load_checkpoint into the
    receiving worker's cached model of the same architecture), including the sha256 check, split into
    save (of which the fsync that makes it durable) and load,
  - baseline hop: Keras' own format (model.save to .keras + keras.models.load_model), what a
    system that ships whole models between workers would pay,
and once per model the cost of a config's first sub-epoch on a worker beyond a steady one: building and
tracing its own model, against taking a cached compiled model of the same graph (what the runner does
for roster configs that differ only in lr and batch size: build, copy the fresh state in).
It prints one JSON document; target: hop / sub-epoch < 5 %.

Usage: python bench/hop_overhead.py [--repeats R] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import emit  # noqa: E402


def _digits():
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    half = order[: len(x) // 2]  # one of two partitions: what one worker trains per sub-epoch
    return x[half], y[half]


def measure(model_name: str, hparams: dict, repeats: int, workdir: Path) -> dict:
    import keras

    from hopper.mop_scheduler.worker import checkpoints
    from hopper.mop_scheduler.worker.checkpoints import copy_state, load_checkpoint, save_checkpoint
    from hopper.mop_scheduler.worker.factory import ModelFactory
    from hopper.mop_scheduler.worker.inputs import shuffled_batches

    x, y = _digits()
    factory = ModelFactory(model_name, x.shape[1:], 10, "classification")
    batch = int(hparams.get("batch_size", 32))

    def sub_epoch(model, seed: int) -> float:
        t0 = time.perf_counter()
        model.fit(shuffled_batches(x, y, batch, seed=seed), epochs=1, shuffle=False, verbose=0)
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    sender = factory.build(hparams)
    first = (time.perf_counter() - t0) + sub_epoch(sender, 0)  # build, trace and train: once per config per worker
    receiver = factory.build(hparams)
    copy_state(factory.build(hparams), receiver)  # a fresh config's state in a model of the same graph...
    sub_epoch(receiver, -1 % 2**31)  # ...traced once for the receiver
    t0 = time.perf_counter()
    load_checkpoint(receiver, workdir / "warm.ckpt", save_checkpoint(sender, workdir / "warm.ckpt")[0])
    first += time.perf_counter() - t0  # the first checkpoint of this architecture traces the reader and assigner
    compute, hop, save, fsync, keras_hop, sizes, shared_first = [], [], [], [], [], {}, []
    real_fsync = os.fsync

    def timed_fsync(fd: int) -> None:
        t = time.perf_counter()
        real_fsync(fd)
        fsync.append(time.perf_counter() - t)

    for i in range(repeats):
        compute.append(sub_epoch(sender, i + 1))
        path = workdir / f"{model_name}-{i}.npz"
        checkpoints.os.fsync = timed_fsync
        try:
            t0 = time.perf_counter()
            sha, size = save_checkpoint(sender, path)
            t1 = time.perf_counter()
        finally:
            checkpoints.os.fsync = real_fsync
        load_checkpoint(receiver, path, sha)
        hop.append(time.perf_counter() - t0)
        save.append(t1 - t0)
        sizes["hopper_bytes"] = size
        # A config new to this worker taking the cached compiled model: build its fresh state, copy it in, train.
        t0 = time.perf_counter()
        copy_state(factory.build(hparams), receiver)
        shared_first.append(time.perf_counter() - t0 + sub_epoch(receiver, 100 + i))
        load_checkpoint(receiver, path, sha)
        kpath = workdir / f"{model_name}-{i}.keras"
        t0 = time.perf_counter()
        sender.save(kpath)
        keras.models.load_model(kpath)
        keras_hop.append(time.perf_counter() - t0)
        sizes["keras_bytes"] = kpath.stat().st_size
    for a, b in zip(sender.get_weights(), receiver.get_weights(), strict=True):
        assert (a == b).all(), "the receiving worker must hold exactly the sender's weights"
    med = statistics.median
    return {
        "model": model_name, "hparams": hparams, "rows_per_partition": int(len(x)), "repeats": repeats,
        "params": int(sender.count_params()),
        "sub_epoch_seconds_median": round(med(compute), 5),
        "hop_seconds_median": round(med(hop), 5),
        "hop_save_seconds_median": round(med(save), 5), "hop_fsync_seconds_median": round(med(fsync), 5),
        "hop_load_seconds_median": round(med(hop) - med(save), 5),
        "hop_fraction_without_fsync": round((med(hop) - med(fsync)) / med(compute), 4),
        # A config's first sub-epoch on a worker, beyond a steady one: its own build and trace (once), against
        # the cached compiled model of the same graph (median over the repeats).
        "first_sub_epoch_extra_seconds_own_build": round(first - med(compute), 4),
        "first_sub_epoch_extra_seconds_shared_model": round(med(shared_first) - med(compute), 4),
        "keras_format_hop_seconds_median": round(med(keras_hop), 5),
        "hop_fraction_of_sub_epoch": round(med(hop) / med(compute), 4),
        "keras_format_fraction_of_sub_epoch": round(med(keras_hop) / med(compute), 4),
        "speedup_vs_keras_format": round(med(keras_hop) / med(hop), 2),
        **sizes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 repeats, for the smoke test")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    from hopper.mop_scheduler.worker.runner import configure_threads

    configure_threads(1)  # as a local worker runs
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure("mlp", {"units": 128, "layers": 2, "batch_size": 32}, repeats, Path(tmp)),
                measure("cnn", {"filters": 32, "conv_layers": 2, "dense_units": 64, "batch_size": 32}, repeats,
                        Path(tmp))]
    emit("hop_overhead", {"target_fraction": 0.05, "threads_per_worker": 1, "results": rows,
                          "meets_target": all(r["hop_fraction_of_sub_epoch"] < 0.05 for r in rows)},
         write=not args.quick)


if __name__ == "__main__":
    main()
