"""Differentially private training: accuracy against epsilon, and what DP-SGD costs per sub-epoch.

1. Accuracy vs epsilon: the roster ``mlp`` trained with plain SGD and with DP-SGD at several noise levels
   (``hopper.mop_scheduler.worker.dp_sgd.make_private``, Poisson batches under plain ``fit``) on scikit-learn's
   digits and on a 60k-row synthetic tabular set (``_common.make_tabular``). The training set is one
   partition here; epsilon comes from ``hopper.engine.privacy`` (RDP, delta = 1e-5), and beside it the
   epsilon the same run would spend if the rows were split into 4 MOP partitions (same batch, sigma, epochs).
2. Cost: one sub-epoch-sized ``fit`` (one pass over a partition) with DP-SGD over the same fit with plain
   SGD, for the roster ``mlp`` (tabular) and ``cnn`` (8x8x1 images), interleaved repeats, median ratio.
   Target: <= 3x.

    python bench/privacy.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import emit, make_tabular, pyplot, save_figure  # noqa: E402

DELTA = 1e-5
CLIP = 1.0
HPARAMS = {"units": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9}


def _data(name: str, rows: int):  # noqa: ANN202
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if name == "digits":
        digits = load_digits()
        x, y = (digits.data / 16.0).astype(np.float32), digits.target
    else:
        with tempfile.TemporaryDirectory() as tmp:
            data = np.load(make_tabular(Path(tmp) / "t.npz", rows))
            x, y = data["x"], data["y"]
    return train_test_split(x, y, test_size=0.2, random_state=0)


def _build(model: str, shape: tuple, classes: int, hparams: dict, seed: int):  # noqa: ANN202
    import keras

    from hopper.mop_scheduler.worker.factory import ModelFactory

    keras.utils.set_random_seed(seed)
    return ModelFactory(model, shape, classes, "classification").build(hparams)


def accuracy_vs_epsilon(name: str, rows: int, sigmas: list[float], epochs: int, batch: int) -> dict:
    import numpy as np

    from hopper.engine import privacy
    from hopper.mop_scheduler.worker.dp_sgd import make_private

    x_tr, x_va, y_tr, y_va = _data(name, rows)
    classes = int(y_tr.max()) + 1
    hparams = {**HPARAMS, "batch_size": batch}
    runs = []
    for sigma in [None, *sigmas]:
        model = _build("mlp", x_tr.shape[1:], classes, hparams, seed=0)
        if sigma is not None:
            make_private(model, hparams, {"l2_norm_clip": CLIP, "noise_multiplier": sigma, "delta": DELTA},
                         partition_rows=len(x_tr), max_epochs=epochs)
        t0 = time.perf_counter()
        model.fit(x_tr, y_tr, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)
        seconds = time.perf_counter() - t0
        accuracy = float(np.mean(model.predict(x_va, batch_size=1024, verbose=0).argmax(1) == y_va))
        row = {"noise_multiplier": sigma, "val_accuracy": round(accuracy, 4), "train_seconds": round(seconds, 2)}
        if sigma is not None:
            row["epsilon"] = round(privacy.epsilon_of_events(model.dp_events, DELTA), 3)
            row["epsilon_if_4_mop_partitions"] = round(privacy.epsilon_for_epochs(
                epochs, batch_size=batch, partition_rows=len(x_tr) // 4, noise_multiplier=sigma, delta=DELTA), 3)
            row["steps"] = int(model.dp_steps_taken)
        runs.append(row)
        print(f"{name}: {row}", file=sys.stderr)
    return {"train_rows": int(len(x_tr)), "epochs": epochs, "batch_size": batch, "l2_norm_clip": CLIP,
            "delta": DELTA, "chance": round(1 / classes, 3), "runs": runs}


def cost(model_name: str, rows: int, batch: int, repeats: int) -> dict:
    """Interleaved plain / private one-pass fits over a partition-sized array; medians and their ratio."""
    import numpy as np

    from hopper.mop_scheduler.worker.dp_sgd import make_model_private

    rng = np.random.default_rng(0)
    shape = (20,) if model_name == "mlp" else (8, 8, 1)
    x = rng.normal(size=(rows, *shape)).astype(np.float32)
    y = rng.integers(0, 5, size=rows)
    hparams = {"optimizer": "sgd", "lr": 0.01, "batch_size": batch,
               **({"units": 128} if model_name == "mlp" else {"filters": 16})}
    plain = _build(model_name, shape, 5, hparams, seed=0)
    private = make_model_private(_build(model_name, shape, 5, hparams, seed=0), l2_norm_clip=CLIP,
                                 noise_multiplier=1.0, batch_size=batch)
    times: dict[str, list[float]] = {"plain": [], "dp_sgd": []}
    for model in (plain, private):  # trace once outside the timings, as a warm worker would have
        model.fit(x[: batch * 4], y[: batch * 4], batch_size=batch, epochs=1, verbose=0)
    for _ in range(repeats):
        for label, model in (("plain", plain), ("dp_sgd", private)):
            t0 = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0)
            times[label].append(time.perf_counter() - t0)
    ratios = [d / p for p, d in zip(times["plain"], times["dp_sgd"], strict=True)]
    return {"rows": rows, "batch_size": batch, "params": int(plain.count_params()), "repeats": repeats,
            "plain_seconds_median": round(statistics.median(times["plain"]), 4),
            "dp_sgd_seconds_median": round(statistics.median(times["dp_sgd"]), 4),
            "ratio_median": round(statistics.median(ratios), 2), "ratios": [round(r, 2) for r in ratios]}


def plot(accuracy: dict, costs: dict) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(accuracy) + 1, figsize=(4 * (len(accuracy) + 1), 3.2))
    for ax, (name, doc) in zip(axes, accuracy.items(), strict=False):
        private = [r for r in doc["runs"] if r["noise_multiplier"] is not None]
        plain = next(r for r in doc["runs"] if r["noise_multiplier"] is None)
        ax.plot([r["epsilon"] for r in private], [r["val_accuracy"] for r in private], "o-", label="DP-SGD")
        for r in private:
            ax.annotate(f"σ={r['noise_multiplier']}", (r["epsilon"], r["val_accuracy"]), fontsize=7,
                        textcoords="offset points", xytext=(3, -9))
        ax.axhline(plain["val_accuracy"], ls="--", color="gray", label="non-private")
        ax.axhline(doc["chance"], ls=":", color="lightgray", label="chance")
        ax.set_xscale("log")
        ax.set_xlabel(f"epsilon (delta={doc['delta']:g})")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"{name}: {doc['train_rows']} rows, {doc['epochs']} epochs", fontsize=9)
        ax.legend(fontsize=7)
    ax = axes[-1]
    names = list(costs)
    ax.bar(names, [costs[n]["ratio_median"] for n in names], color="tab:orange")
    ax.axhline(3.0, ls="--", color="gray", label="target 3x")
    ax.set_ylabel("DP-SGD / plain SGD time per sub-epoch")
    ax.set_title("cost of privacy (median ratio)", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, "privacy.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes, one noise level, nothing written")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved timing repeats")
    args = parser.parse_args()
    quick = args.quick
    repeats = args.repeats or (2 if quick else 7)
    sigmas = [1.0] if quick else [0.6, 1.0, 2.0, 4.0]
    from hopper.mop_scheduler.worker.runner import configure_threads

    configure_threads(2)  # this benchmark's machine budget; the ratio is what it reports
    with contextlib.redirect_stdout(sys.stderr):
        accuracy = {"digits": accuracy_vs_epsilon("digits", 0, sigmas, epochs=2 if quick else 15, batch=64),
                    "tabular": accuracy_vs_epsilon("tabular", 2000 if quick else 60_000, sigmas,
                                                   epochs=1 if quick else 3, batch=256)}
        costs = {"mlp": cost("mlp", 1000 if quick else 15_000, 128, repeats),
                 "cnn": cost("cnn", 500 if quick else 5_000, 64, repeats)}
    emit("privacy", {"accuracy_vs_epsilon": accuracy, "cost": costs, "target_ratio": 3.0,
                     "plot": None if quick else plot(accuracy, costs)}, write=not quick)


if __name__ == "__main__":
    main()
