"""Helpers shared by the benchmarks: JSON output, a temporary Hopper home, digits data."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S")}


def emit(name: str, document: dict, *, write: bool = True, show: bool = True) -> None:
    """Print the JSON document and keep a copy under bench/results/NAME.json.

    ``show=False`` only writes the file: long benchmarks keep their results so far after each part, so an
    interrupted run still leaves what it measured (marked by the caller, e.g. ``"partial": true``).
    """
    document = {"benchmark": name, "machine": machine(), **document}
    text = json.dumps(document, indent=2, sort_keys=False)
    if write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.json").write_text(text + "\n")
    if show:
        sys.stdout.write(text + "\n")


def pyplot():  # noqa: ANN201
    """matplotlib's pyplot on the file-only backend, with the results folder in place."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    return plt


def save_figure(fig, name: str) -> str:  # noqa: ANN001
    """Lay out, write bench/results/NAME at 110 dpi and close the figure; returns the repo-relative path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(RESULTS / name, dpi=110)
    plt.close(fig)
    return f"bench/results/{name}"


def make_tabular(path: Path, rows: int, seed: int = 0) -> Path:
    """A 20-feature, 5-class synthetic classification set (scikit-learn) saved as NPZ."""
    import numpy as np
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=20, n_informative=12, n_redundant=4, n_classes=5,
                               class_sep=1.2, random_state=seed)
    np.savez(path, x=x.astype(np.float32), y=y.astype(np.int64))
    return path


def seed_workload(store, name: str, *, partitions: int, feature_shape: list[int], classes: int,  # noqa: ANN001
                  max_epochs: int) -> int:
    """A placeholder dataset and a manual workload to hang synthetic configs on; returns the workload id."""
    from hopper.engine.store import DatasetRow, WorkloadRow

    with store.session() as s:
        ds = DatasetRow(name="d", source_path="/d", format="npz", feature_columns=["x"], label_column="y",
                        task="classification", n_rows=1, n_train=1, n_validation=1, feature_shape=feature_shape,
                        classes=list(range(classes)), partition_count=partitions,
                        partition_paths=[f"p{i}" for i in range(partitions)], validation_path="v", schema={})
        s.add(ds)
        s.flush()
        wl = WorkloadRow(name=name, procedure="manual", search_space={}, objectives=[
            {"metric": "val_accuracy", "direction": "max"}], max_epochs=max_epochs, dataset_id=ds.id,
            model_ref="mlp")
        s.add(wl)
        s.flush()
        return wl.id


def fixed_trials_oracle(configs: list[dict]) -> type:
    """A KerasTuner ``Oracle`` class that proposes exactly ``configs``, in order, then stops."""
    import keras_tuner as kt

    class FixedTrials(kt.Oracle):
        """Proposes exactly the benchmark's configs, in order."""

        def populate_space(self, trial_id):  # noqa: ANN001, ANN202
            index = len(self.trials) - 1
            if index >= len(configs):
                return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
            hp = self.hyperparameters.copy()
            for key, value in configs[index].items():
                hp.values[key] = value
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": hp.values}

    return FixedTrials
