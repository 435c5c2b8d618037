"""Per-sub-epoch overhead of the KerasTuner-faithful ``fit`` path against the plain path, on the roster ``mlp``.

Both run through the worker's real ``SubEpochRunner`` on one digits partition (half of scikit-learn's digits),
with the same model (the roster ``mlp`` builder) and the same training arguments:
  - plain: the roster model; Hopper calls ``model.fit(x, y, batch_size=32, epochs=1, shuffle=True, verbose=0)``
    and, at an epoch's end, ``model.evaluate`` on the validation split;
  - faithful: a ``keras_tuner.HyperModel`` script whose ``build`` is the roster ``mlp`` and whose ``fit`` is
    ``model.fit(x, y, batch_size=32, shuffle=True, verbose=0, validation_batch_size=512, **kwargs)``; Hopper
    calls it as KerasTuner's ``Tuner.run_trial`` does and reads the epoch's metrics back from its History.
The two alternate (plain, faithful, plain, ...) after a warm-up of each, and each sub-epoch's wall time is
``runner.run``'s (build is cached; fit, read-back and the checkpoint write included), in wall and in CPU time.
Reported: the medians and the median of the per-pair ratios faithful / plain, for mid-epoch and epoch-ending
sub-epochs. Target <= 1.05.

Usage: python bench/fit_contract.py [--repeats R] [--quick]
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

FAITHFUL_SCRIPT = '''
import keras_tuner as kt

from hopper.roster.vision import build_mlp


class RosterMlp(kt.HyperModel):
    def build(self, hp):
        return build_mlp(dict(hp.values), (8, 8, 1), 10, "classification")

    def fit(self, hp, model, x, y, **kwargs):
        return model.fit(x, y, batch_size=32, shuffle=True, verbose=0, validation_batch_size=512, **kwargs)
'''


def _digits():  # noqa: ANN202
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    cut = int(len(x) * 0.8)
    train, val = order[:cut], order[cut:]
    return (x[train[: cut // 2]], y[train[: cut // 2]]), (x[val], y[val])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="5 repeats")
    args = parser.parse_args()
    repeats = 5 if args.quick else args.repeats

    from hopper.engine.entities import DatasetLayout
    from hopper.mop_scheduler.worker.protocol import SubEpochTask
    from hopper.mop_scheduler.worker.runner import SubEpochRunner, configure_threads

    configure_threads(1)
    train, val = _digits()
    runner = SubEpochRunner(0, reader=lambda path, shape: val if path == "val" else train)
    layout = DatasetLayout(dataset_id=1, partition_paths=("train-0",), validation_path="val", feature_shape=(8, 8, 1),
                           n_outputs=10, task="classification", schema={})
    hparams = {"units": 128, "layers": 2, "lr": 0.003, "batch_size": 32}
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "roster_mlp_hypermodel.py"
        script.write_text(FAITHFUL_SCRIPT)
        refs = {"plain": "mlp", "faithful": f"script:{script}"}
        counter = iter(range(1, 1_000_000))

        def one(path: str, config_id: int, evaluate: bool) -> float:
            n = next(counter)
            task = SubEpochTask(sub_epoch_id=n, config_id=config_id, epoch=0, partition=0, model_ref=refs[path],
                                entry_point="build_model", hparams=hparams, dataset=layout,
                                out_path=str(Path(work) / f"{path}-{n}.npz"), seed=n, evaluate=evaluate)
            started, cpu_started = time.perf_counter(), time.process_time()
            result = runner.run(task)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            if not result.ok:
                raise SystemExit(f"{path}: {result.error}\n{result.details}")
            os.unlink(task.out_path)
            cpu_times[(path, evaluate)].append(cpu)
            return elapsed

        timings: dict[tuple[str, bool], list[float]] = {(p, e): [] for p in refs for e in (False, True)}
        cpu_times: dict[tuple[str, bool], list[float]] = {(p, e): [] for p in refs for e in (False, True)}
        for path, config_id in (("plain", 1), ("faithful", 2)):
            for evaluate in (False, True):
                one(path, config_id, evaluate)  # warm-up: build, trace fit/evaluate once
                cpu_times[(path, evaluate)].clear()
        for _ in range(repeats):
            for evaluate in (False, True):
                for path, config_id in (("plain", 1), ("faithful", 2)):
                    timings[(path, evaluate)].append(one(path, config_id, evaluate))

    def summary(evaluate: bool) -> dict:
        out = {}
        # Wall time is what a worker spends; CPU time (this process, all threads) is steadier on a shared machine.
        for label, table in (("wall", timings), ("cpu", cpu_times)):
            plain, faithful = table[("plain", evaluate)], table[("faithful", evaluate)]
            ratios = [f / p for p, f in zip(plain, faithful, strict=True)]
            out[label] = {"plain_ms_median": round(statistics.median(plain) * 1000, 2),
                          "faithful_ms_median": round(statistics.median(faithful) * 1000, 2),
                          "ratio_median": round(statistics.median(ratios), 4),
                          "ratio_min": round(min(ratios), 4), "ratio_max": round(max(ratios), 4)}
        return out

    emit("fit_contract", {"model": "mlp", "rows_per_sub_epoch": int(len(train[0])), "repeats": repeats,
                          "mid_epoch_sub_epoch": summary(False), "epoch_end_sub_epoch": summary(True),
                          "target_ratio": 1.05})


if __name__ == "__main__":
    main()
