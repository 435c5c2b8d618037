"""The whole search against the parallel tools people use (issue 19, item 5): makespan, memory and data per worker.

The same 8 configs x 3 epochs (those of bench/mop_vs_baselines.py: cnn on digits, mlp on the 200k-row
synthetic tabular set), Hopper's split and model, 2 parallel workers of one TensorFlow thread each:
  - Hopper: the local backend with the workload's default plan, auto (MOP: each worker holds 1/2 of the training
    data; replicated: all of it; the plan each repeat ran and the data it held are reported);
  - task parallelism: 2 processes, each with all the data, each training whole configs;
  - Ray Tune: 2 concurrent trials of 1 CPU each (FIFO, the 8 configs as a grid search; from .venv-peers);
  - Optuna: 2 worker processes on one journal storage, the 8 configs enqueued;
  - KerasTuner's distributed mode: a chief oracle process and 2 worker processes (KERASTUNER_TUNER_ID,
    KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT), an oracle that proposes exactly these configs.
Each method runs in its own process; ``--repeats N`` interleaves them (A B C D E, then E D C B A, ...) because
this machine drifts between minutes, and every ratio Hopper / peer is taken within a repeat and reported as
the median with its min and max. Makespan runs from the tool being ready (workers up, TensorFlow imported,
Ray started) to its last trained epoch; ``end_to_end_s`` adds the start-up. Peak RSS is sampled with psutil
over each method's whole process tree (Ray's raylet and workers, pools, KerasTuner's chief included).
Writes bench/results/peers.json and peers.png.

Usage: python bench/peers.py [--repeats 3] [--rows 200000] [--epochs 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import emit, make_tabular, pyplot, save_figure  # noqa: E402
from _search_common import prepare_data, run_method  # noqa: E402
from mop_vs_baselines import configs_for  # noqa: E402

METHODS = ["hopper", "task_parallel", "ray", "optuna", "kerastuner_distributed"]
PARALLEL_PEERS = ["ray", "optuna", "kerastuner_distributed"]


def one_run(method: str, suite: dict, configs: list[dict], epochs: int, workers: int, workdir: Path) -> dict:
    spec = {"runner": method, "data": suite["data"], "model": suite["model"], "workers": workers, "seed": 0,
            "max_epochs": epochs, "runs": [{"label": method, "configs": configs}]}
    doc = run_method(spec, workdir)
    result = doc["runs"][method]
    finals: dict[str, float] = {}
    for e in sorted(result["events"], key=lambda e: e["epoch"]):
        finals[e["trial"]] = e["acc"]
    trained = {(e["trial"], e["epoch"]) for e in result["events"]}
    if len(finals) != len(configs) or len(trained) != len(configs) * epochs:
        # A makespan of less work is no comparison (Optuna's workers once stopped after a trial each).
        raise RuntimeError(f"{method} trained {len(finals)} of {len(configs)} configs and {len(trained)} of "
                           f"{len(configs) * epochs} epochs")
    first = min((e["t"] for e in result["events"]), default=result["end_at"]) - result["ready_at"]
    return {"makespan_s": round(result["makespan_s"], 2), "end_to_end_s": round(doc["end_to_end_s"], 2),
            # How much of the makespan went before any epoch ended: e.g. Ray starts its trial actors (and they
            # import TensorFlow) inside the experiment, where the other tools' workers were up before it.
            "first_epoch_s": round(first, 2),
            "peak_rss_tree_mb": doc["peak_rss_tree_mb"], "peak_rss_process_mb": doc["peak_rss_process_mb"],
            "train_bytes_per_worker": result["train_bytes_per_worker"],
            "best_accuracy": round(max(finals.values()), 4), "configs_finished": len(finals),
            "epochs_trained": len(result["events"]),
            **({"plan": result["plan"], "plan_reason": result["plan_reason"]} if "plan" in result else {})}


def ratio_stats(ours: list[float], theirs: list[float]) -> dict:
    per = [a / b for a, b in zip(ours, theirs, strict=True)]
    return {"median": round(statistics.median(per), 3), "min": round(min(per), 3), "max": round(max(per), 3),
            "per_repeat": [round(r, 3) for r in per]}


def summarise(runs: list[dict]) -> dict:
    out = {"repeats": runs}
    for key in ("makespan_s", "end_to_end_s", "first_epoch_s", "peak_rss_tree_mb", "peak_rss_process_mb",
                "best_accuracy"):
        values = [r[key] for r in runs]
        out[f"{key}_median"] = round(statistics.median(values), 3)
        out[f"{key}_min"], out[f"{key}_max"] = min(values), max(values)
    # The most any repeat held (Hopper's auto plan could differ between repeats).
    out["train_bytes_per_worker"] = max(r["train_bytes_per_worker"] for r in runs)
    if any("plan" in r for r in runs):
        out["plans"] = sorted({str(r.get("plan")) for r in runs})
    return out


def plot(suites: dict) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(suites), figsize=(5.5 * len(suites), 3.6), squeeze=False)
    colours = {"hopper": "#4c78a8", "task_parallel": "#f58518", "ray": "#54a24b", "optuna": "#b279a2",
               "kerastuner_distributed": "#9d755d"}
    for ax, (name, suite) in zip(axes[0], suites.items(), strict=True):
        methods = [m for m in METHODS if m in suite["methods"]]
        med = [suite["methods"][m]["makespan_s_median"] for m in methods]
        low = [med[i] - suite["methods"][m]["makespan_s_min"] for i, m in enumerate(methods)]
        high = [suite["methods"][m]["makespan_s_max"] - med[i] for i, m in enumerate(methods)]
        ax.bar(range(len(methods)), med, yerr=[low, high], capsize=3, color=[colours[m] for m in methods])
        ax.set_xticks(range(len(methods)), [m.replace("_", "\n") for m in methods], fontsize=7)
        ax.set_ylabel("makespan (s), median and range")
        ax.set_title(f"{name}: 8 configs x {suite['epochs']} epochs, 2 workers", fontsize=9)
    return save_figure(fig, "peers.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the generated tabular dataset")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="toy size, for the smoke test")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.rows, args.epochs = 1, 2000, 1
    from hopper.engine.demo import write_digits

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        sources = {"tabular_mlp": ("mlp", make_tabular(tmp / "data" / "tabular.npz", args.rows, 0))}
        if not args.quick:
            sources["digits_cnn"] = ("cnn", write_digits(tmp / "data"))
        suites = {}
        for name, (model, source) in sources.items():
            suites[name] = {"model": model, "data": prepare_data(tmp / name, source, args.workers),
                            "configs": configs_for(model, False)[: 2 if args.quick else None],
                            "runs": {m: [] for m in METHODS}}
        # Repeat by repeat over both suites, so that an interrupted run keeps whole repeats of each.
        for repeat in range(args.repeats):
            order = METHODS if repeat % 2 == 0 else METHODS[::-1]
            for name, suite in suites.items():
                for method in order:
                    suite["runs"][method].append(one_run(method, suite, suite["configs"], args.epochs,
                                                         args.workers, tmp / name / f"{method}-{repeat}"))
            print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
            final = repeat == args.repeats - 1
            if final or not args.quick:
                report(suites, args, repeat + 1, final=final)


def report(suites: dict, args: argparse.Namespace, repeats: int, *, final: bool) -> None:
    """The document over the repeats so far: printed at the end, written after every repeat (not in quick runs)."""
    out: dict[str, dict] = {}
    targets: dict[str, dict] = {}
    for name, suite in suites.items():
        runs = suite["runs"]
        methods = {m: summarise(r) for m, r in runs.items()}
        ratios = {}
        for peer in METHODS[1:]:
            ratios[f"hopper_over_{peer}"] = {
                "makespan": ratio_stats([r["makespan_s"] for r in runs["hopper"]],
                                        [r["makespan_s"] for r in runs[peer]]),
                "end_to_end": ratio_stats([r["end_to_end_s"] for r in runs["hopper"]],
                                          [r["end_to_end_s"] for r in runs[peer]]),
                "peak_rss_tree": ratio_stats([r["peak_rss_tree_mb"] for r in runs["hopper"]],
                                             [r["peak_rss_tree_mb"] for r in runs[peer]]),
                "train_bytes_per_worker": round(methods["hopper"]["train_bytes_per_worker"]
                                                / methods[peer]["train_bytes_per_worker"], 3)}
        for peer in PARALLEL_PEERS:
            r = ratios[f"hopper_over_{peer}"]
            targets[f"{name}_hopper_makespan_vs_{peer}"] = {
                "value": r["makespan"]["median"], "target": "<= 1.0 with no more data per worker",
                "met": r["makespan"]["median"] <= 1.0 and r["train_bytes_per_worker"] <= 1.0,
                "range": [r["makespan"]["min"], r["makespan"]["max"]],
                "data_per_worker_ratio": r["train_bytes_per_worker"]}
        tp = ratios["hopper_over_task_parallel"]["makespan"]
        targets[f"{name}_hopper_makespan_vs_task_parallel"] = {
            "value": tp["median"], "target": "<= 1.05", "met": tp["median"] <= 1.05, "range": [tp["min"], tp["max"]]}
        out[name] = {"model": suite["model"], "train_rows": suite["data"]["n_train"], "epochs": args.epochs,
                     "configs": suite["configs"], "methods": methods, "ratios": ratios}
    image = None if args.quick else plot(out)
    emit("peers", {"workers": args.workers, "repeats": repeats, "repeats_asked": args.repeats,
                   "partial": not final, "suites": out, "targets": targets, "plot": image},
         write=not args.quick, show=final)


if __name__ == "__main__":
    main()
