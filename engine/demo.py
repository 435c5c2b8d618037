"""The demo: scikit-learn's digits as a dataset and a small grid workload on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hopper.engine.entities import WorkloadInfo
from hopper.engine.errors import NotFound
from hopper.engine.services import Services

DEMO_DATASET = "digits"
DEMO_SPACE = {
    "lr": {"type": "choice", "values": [0.001, 0.003]},
    "units": {"type": "choice", "values": [64, 128]},
    "batch_size": 32,
}
#: The demo of ``hopper run``: twelve configs, so the two workers always have a queue to reorder, and 40 epochs (the
#: command's default): about 2.5 minutes of training to steer in on two workers (measured 2 min 28 s after the
#: sub-epochs got faster; 6 configs x 20 epochs had ended in 30-40 s), and the first curves appear within seconds.
STEERABLE_SPACE = {"lr": {"type": "choice", "values": [0.001, 0.003, 0.01]},
                   "units": {"type": "choice", "values": [64, 128]},
                   "dropout": {"type": "choice", "values": [0.0, 0.3]}, "batch_size": 16}


def write_digits(target_dir: Path) -> Path:
    """digits as an .npz of 8x8x1 images in [0, 1] (x) and integer labels (y)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / "digits.npz"
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    np.savez(path, x=x, y=bunch.target.astype(np.int64))
    return path


def ensure_digits(services: Services) -> None:
    try:
        services.get_dataset(DEMO_DATASET)
    except NotFound:
        path = write_digits(services.settings.data_roots[0])
        services.register_dataset({"name": DEMO_DATASET, "path": str(path)})


def create_demo(services: Services, *, max_epochs: int = 5, model: str = "mlp", steerable: bool = False) -> WorkloadInfo:
    """Register digits (once) and launch a 4-config grid on it (``steerable``: the 12-config grid of ``hopper run``)."""
    ensure_digits(services)
    space = STEERABLE_SPACE if steerable else DEMO_SPACE
    shape = "3x2x2 (learning rate x width x dropout)" if steerable else "2x2 (learning rate x width)"
    if steerable:
        # The plan auto picks for data this small (replicated: every worker holds all of digits and trains a
        # config a whole epoch per dispatch) ends the demo sooner, with no hops to see; the demo of ``hopper run``
        # shows model hopping.
        plan = {"plan": "mop"}
        how = ("trained model-hopper parallel (plan mop: each worker trains on its own partition and the models hop; "
               "plan auto would replicate data this small on every worker and finish sooner)")
    else:
        plan = {}
        how = "trained by the MOP scheduler (plan auto; the workload page says which plan it picked and why)"
    return services.launch_workload({
        "name": f"demo: {model} on digits",
        "description": f"A {shape} grid on scikit-learn's digits, {how}.",
        "model": model, "dataset": DEMO_DATASET, "procedure": "grid", "space": space,
        "objectives": [{"metric": "val_accuracy", "direction": "max"}], "max_epochs": max_epochs, **plan,
    }, actor="demo")
