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


def emit(name: str, document: dict, *, write: bool = True) -> None:
    """Print the JSON document and keep a copy under bench/results/NAME.json."""
    document = {"benchmark": name, "machine": machine(), **document}
    text = json.dumps(document, indent=2, sort_keys=False)
    if write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.json").write_text(text + "\n")
    sys.stdout.write(text + "\n")


def pyplot():  # noqa: ANN201
    """matplotlib's pyplot on the file-only backend, with the results folder in place."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    return plt
