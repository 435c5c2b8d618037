"""Edge profile per roster model: export time, float32 vs int8 size, and p50/p95 latency on this CPU.

Each model is trained briefly on scikit-learn's digits (8x8x1, 10 classes), exported to TFLite float32 and
int8 with Hopper's exporter (``hopper.edge_deploy.export.convert``), checked for accuracy on the validation
split, and timed with the edge agent's own measuring function (``hopper.edge_deploy.agent.measure``) on both
interpreters the agent supports. ``--quick`` is the smoke run (mlp and cnn, few runs).

    python bench/edge_profile.py [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import emit  # noqa: E402

MODELS = {"mlp": {"units": 64, "lr": 0.003}, "cnn": {"filters": 16, "lr": 0.003},
          "mobilenet_v2": {"alpha": 0.35, "lr": 0.003}}
INTERPRETERS = ("ai-edge-litert", "tflite-runtime")


_CHILD = ("import json, sys; from hopper.edge_deploy.agent import measure; "
          "print(json.dumps(measure(open(sys.argv[1], 'rb').read(), interpreter=sys.argv[2], runs=int(sys.argv[3]), "
          "warmup=int(sys.argv[4]), threads=1)))")


def measure_like_an_agent(path: Path, interpreter: str, runs: int, warmup: int) -> dict:
    """The agent's ``measure`` in a fresh process without TensorFlow, as on a device (tflite-runtime and
    TensorFlow do not share a process well, and a fresh process makes the memory figure honest)."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), interpreter, str(runs), str(warmup)],
                         capture_output=True, text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="mlp and cnn only, 1 epoch, 30 timed runs")
    parser.add_argument("--runs", type=int, default=None, help="timed invocations per measurement")
    args = parser.parse_args()
    runs = args.runs or (30 if args.quick else 500)
    warmup = 5 if args.quick else 50
    epochs = 1 if args.quick else 3
    models = ["mlp", "cnn"] if args.quick else list(MODELS)

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from hopper.edge_deploy.export import convert, tflite_predict
    from hopper.mop_scheduler.worker.factory import ModelFactory

    tmp = Path(tempfile.mkdtemp(prefix="edge-profile-"))
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    x_train, x_val, y_train, y_val = train_test_split(x, digits.target, test_size=0.2, random_state=0)
    results = {}
    for name in models:
        model = ModelFactory(name, (8, 8, 1), 10, "classification").build(MODELS[name])
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
        train_s = time.perf_counter() - t0
        keras_acc = float(np.mean(model.predict(x_val, verbose=0).argmax(1) == y_val))
        row = {"params": int(model.count_params()), "epochs": epochs, "train_seconds": round(train_s, 2),
               "keras_accuracy": round(keras_acc, 4)}
        for quantization in ("float32", "int8"):
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):  # the converter prints; stdout is for the JSON
                blob = convert(model, quantization, x_val)
            export_s = time.perf_counter() - t0
            path = tmp / f"{name}-{quantization}.tflite"
            path.write_bytes(blob)
            acc = float(np.mean(tflite_predict(blob, x_val).argmax(1) == y_val))
            entry = {"export_seconds": round(export_s, 3), "bytes": len(blob), "tflite_accuracy": round(acc, 4)}
            for interpreter in INTERPRETERS:
                m = measure_like_an_agent(path, interpreter, runs, warmup)
                entry[interpreter] = {"p50_ms": round(m["latency_p50_ms"], 5), "p95_ms": round(m["latency_p95_ms"], 5),
                                      "peak_memory_bytes": m["peak_memory_bytes"], "energy_mj": m["energy_mj"]}
            row[quantization] = entry
        row["int8_size_ratio"] = round(row["int8"]["bytes"] / row["float32"]["bytes"], 3)
        results[name] = row
        print(f"{name}: float32 {row['float32']['bytes']} B, int8 {row['int8']['bytes']} B", file=sys.stderr)
    emit("edge_profile", {"runs": runs, "warmup": warmup, "threads": 1, "dataset": "digits 8x8x1",
                          "interpreters": list(INTERPRETERS), "energy": "RAPL where /sys/class/powercap is readable",
                          "models": results}, write=not args.quick)


if __name__ == "__main__":
    main()
