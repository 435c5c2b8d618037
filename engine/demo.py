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


def create_demo(services: Services, *, max_epochs: int = 5, model: str = "mlp") -> WorkloadInfo:
    """Register digits (once) and launch a 4-config grid on it."""
    ensure_digits(services)
    return services.launch_workload({
        "name": f"demo: {model} on digits",
        "description": "A 2x2 grid (learning rate x width) on scikit-learn's digits, trained with MOP.",
        "model": model, "dataset": DEMO_DATASET, "procedure": "grid", "space": DEMO_SPACE,
        "objectives": [{"metric": "val_accuracy", "direction": "max"}], "max_epochs": max_epochs,
    }, actor="demo")
