"""Search that prunes and learns, against Ray Tune and Optuna (issue 14): best accuracy for the compute.

One search space (lr x width x depth x dropout, 36 configs; batch size fixed), Hopper's mlp, one train/
validation split (Hopper's, exported for the peers) and the same maximum epochs for every method, 2 parallel
workers of one TensorFlow thread each, in one run:
  - Hopper: grid (the full budget, the reference), random, TPE, Bayesian (KerasTuner's oracle) and evolution
    (each 1/3 of the grid's configs, trained to the end), ASHA and asynchronous Hyperband (as many sampled
    configs as the grid has, eta 3 from 1 epoch), PBT (a population of 8 exploring lr and dropout on the
    space's widest and deepest mlp), and NSGA-II on val_accuracy vs params;
  - Ray Tune: ASHAScheduler (the same sampled-config count, eta and rungs) and PopulationBasedTraining (the same
    population, interval and explored hparams), 2 concurrent trials of 1 CPU each (from .venv-peers);
  - Optuna: TPE with SuccessiveHalvingPruner and with HyperbandPruner, 2 worker processes on one journal storage.
Each tool runs in a process of its own (Hopper's methods one after another in one Hopper, so its workers start
once); the processes' order alternates between seeds. Per method and seed: best validation accuracy, training
compute (worker-seconds: every trained epoch's build or restore, fit, validation, checkpoints and reporting),
wall time from the tool being ready to its last result, and the best-so-far curve, whose time to the grid's
best (less 0.5 pt) the targets compare. ``--seeds 3`` reports mean and spread.
Writes bench/results/search_efficiency.json and search_efficiency.png (best-so-far vs wall time and vs compute).

Usage: python bench/search_efficiency.py [--seeds 3] [--rows 20000] [--quick]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import emit, make_tabular, pyplot, save_figure  # noqa: E402
from _search_common import curve, prepare_data, run_method, spread, time_to  # noqa: E402

ACCURACY_SLACK = 0.005  # "within 0.5 pt of the grid's best"
ASHA_COMPUTE_TARGET = 0.35


def plan(quick: bool) -> dict:
    """The space, epochs and each method's settings; the quick plan is the smoke test's toy size."""
    if quick:
        space = {"lr": {"type": "choice", "values": [0.003, 0.03]}, "units": 16, "layers": 1, "dropout": 0.1,
                 "batch_size": 64}
        return {"space": space, "pbt_space": space, "max_epochs": 2, "eta": 2, "budget": 2, "samples": 2,
                "population": 2, "interval": 1, "mo_budget": 2}
    space = {"lr": {"type": "choice", "values": [0.001, 0.003, 0.01]},
             "units": {"type": "choice", "values": [32, 64, 128]},
             "layers": {"type": "choice", "values": [1, 2]},
             "dropout": {"type": "choice", "values": [0.1, 0.3]}, "batch_size": 128}
    # PBT explores training hparams of one architecture (its exploits copy weights): the space's largest.
    pbt_space = {**space, "units": 128, "layers": 2}
    return {"space": space, "pbt_space": pbt_space, "max_epochs": 9, "eta": 3, "budget": 12, "samples": 36,
            "population": 8, "interval": 3, "mo_budget": 12}


def grid_size(space: dict) -> int:
    return math.prod(len(v["values"]) for v in space.values() if isinstance(v, dict))


def method_runs(p: dict) -> dict[str, list[dict]]:
    """Runner -> its runs (label, space, budget and options), for one seed."""
    asha = {"eta": p["eta"], "min_epochs": 1}
    pbt = {"population": p["population"], "interval": p["interval"], "quantile": 0.25, "resample_probability": 0.25}
    hopper = [
        {"label": "hopper_grid", "workload": {"procedure": "grid"}},
        {"label": "hopper_random", "workload": {"procedure": "random", "max_configs": p["budget"]}},
        {"label": "hopper_tpe", "workload": {"procedure": "tpe", "max_configs": p["budget"]}},
        {"label": "hopper_bayesian", "workload": {"procedure": "bayesian", "max_configs": p["budget"],
                                                  "procedure_options": {"initial_points": 3}}},
        {"label": "hopper_evolution", "workload": {"procedure": "evolution", "max_configs": p["budget"],
                                                   "procedure_options": {"population": min(8, p["budget"]),
                                                                         "sample_size": 2}}},
        {"label": "hopper_asha", "workload": {"procedure": "asha", "max_configs": p["samples"],
                                              "procedure_options": {**asha, "sampler": "random"}}},
        {"label": "hopper_hyperband", "workload": {"procedure": "hyperband", "max_configs": p["samples"],
                                                   "procedure_options": asha}},
        {"label": "hopper_pbt", "space": p["pbt_space"], "workload": {"procedure": "pbt", "procedure_options": pbt}},
        {"label": "hopper_nsga2", "workload": {
            "procedure": "nsga2", "max_configs": p["mo_budget"],
            "objectives": [{"metric": "val_accuracy", "direction": "max"}, {"metric": "params", "direction": "min"}],
            "procedure_options": {"population_size": min(8, p["mo_budget"])}}},
    ]
    ray = [
        {"label": "ray_asha", "n_trials": p["samples"], "options": asha},
        {"label": "ray_pbt", "space": p["pbt_space"], "n_trials": p["population"],
         "options": {"scheduler": "pbt", "interval": p["interval"], "mutate": ["lr", "dropout"], "quantile": 0.25,
                     "resample": 0.25}},
    ]
    optuna = [
        {"label": "optuna_tpe_sha", "n_trials": p["samples"], "options": {**asha, "pruner": "sha"}},
        {"label": "optuna_tpe_hyperband", "n_trials": p["samples"], "options": {**asha, "pruner": "hyperband"}},
    ]
    return {"hopper": hopper, "ray": ray, "optuna": optuna}


def available_hopper(runs: list[dict]) -> tuple[list[dict], list[str]]:
    """Hopper's runs whose procedure this checkout has, and the labels of the others."""
    from hopper.engine.procedures import PROCEDURES

    have = [r for r in runs if r["workload"]["procedure"] in PROCEDURES]
    return have, [r["label"] for r in runs if r not in have]


def hypervolume(points: list[tuple[float, float]], params_ref: float) -> float:
    """Area dominated by (accuracy: max, params: min) points, up to (accuracy 0, params_ref), params scaled to 1."""
    area, best, previous = 0.0, 0.0, None
    for params, acc in sorted((min(p, params_ref) / params_ref, a) for a, p in points):
        if previous is not None:
            area += (params - previous) * best
        best, previous = max(best, acc), params
    if previous is not None:
        area += (1.0 - previous) * best
    return area


def summarise(result: dict) -> dict:
    rows = curve(result)
    return {"best_accuracy": round(max((e["acc"] for e in result["events"]), default=0.0), 4),
            "compute_s": round(sum(e["compute"] for e in result["events"]), 2),
            "wall_s": round(result["makespan_s"], 2), "trials": result["trials"],
            "epochs_trained": len(result["events"]), "curve": rows}


def run_seed(seed: int, p: dict, data: dict, workdir: Path, workers: int, order: list[str],
             only: set[str] | None = None) -> tuple[dict, list]:
    runs = method_runs(p)
    runs["hopper"], missing = available_hopper(runs["hopper"])
    if only:
        runs = {runner: [r for r in rs if r["label"] in only] for runner, rs in runs.items()}
    out: dict[str, dict] = {}
    processes = {}
    for runner in [r for r in order if runs[r]]:
        common = {"runner": runner, "data": data, "model": "mlp", "workers": workers, "seed": seed,
                  "max_epochs": p["max_epochs"], "space": p["space"]}
        doc = run_method({**common, "runs": runs[runner]}, workdir / f"seed{seed}-{runner}")
        processes[runner] = {k: round(doc[k], 1) for k in ("end_to_end_s", "peak_rss_tree_mb")}
        for label, result in doc["runs"].items():
            out[label] = {**summarise(result), "raw": result}
    return {"methods": out, "processes": processes}, missing


def targets(seeds: list[dict]) -> dict:
    """The issue's targets on the seeds' results: each a value, its target and whether it is met."""
    def per_seed(fn):  # noqa: ANN001, ANN202
        return [fn(s["methods"]) for s in seeds]

    def has(*labels: str) -> bool:
        return all(label in s["methods"] for s in seeds for label in labels)

    out: dict[str, dict] = {}
    if not has("hopper_grid"):
        return out
    if has("hopper_asha"):
        gap = per_seed(lambda m: m["hopper_asha"]["best_accuracy"] - m["hopper_grid"]["best_accuracy"])
        share = per_seed(lambda m: m["hopper_asha"]["compute_s"] / m["hopper_grid"]["compute_s"])
        out["asha_accuracy_vs_grid"] = {"value": round(statistics.fmean(gap), 4), "target": f">= -{ACCURACY_SLACK}",
                                        "met": statistics.fmean(gap) >= -ACCURACY_SLACK, "per_seed": gap}
        out["asha_compute_share_of_grid"] = {"value": round(statistics.fmean(share), 3),
                                             "target": f"<= {ASHA_COMPUTE_TARGET}",
                                             "met": statistics.fmean(share) <= ASHA_COMPUTE_TARGET,
                                             "per_seed": [round(s, 3) for s in share]}
        for peer in ("ray_asha", "optuna_tpe_sha", "optuna_tpe_hyperband"):
            if not has(peer):
                continue
            ratios, times = [], []
            for s in seeds:
                m = s["methods"]
                threshold = m["hopper_grid"]["best_accuracy"] - ACCURACY_SLACK
                ours, theirs = time_to(m["hopper_asha"]["curve"], threshold), time_to(m[peer]["curve"], threshold)
                times.append({"threshold": round(threshold, 4), "hopper_asha_s": ours, f"{peer}_s": theirs})
                # Hopper must get there; a peer that never does loses to it.
                if ours is None:
                    ratios.append(math.inf)
                else:
                    ratios.append(0.0 if theirs is None else ours / max(theirs, 1e-9))
            median = statistics.median(ratios)
            out[f"asha_time_to_accuracy_vs_{peer}"] = {
                "value": round(median, 3) if math.isfinite(median) else "never reached", "target": "<= 1.0",
                "met": median <= 1.0, "per_seed": times,
                "note": "median over seeds of Hopper ASHA's wall time to the grid's best less 0.5 pt, over the peer's"}
    if has("hopper_pbt"):
        gap = per_seed(lambda m: m["hopper_pbt"]["best_accuracy"] - m["hopper_grid"]["best_accuracy"])
        share = per_seed(lambda m: m["hopper_pbt"]["compute_s"] / m["hopper_grid"]["compute_s"])
        out["pbt_accuracy_vs_grid"] = {"value": round(statistics.fmean(gap), 4), "target": ">= 0 at compute <= grid's",
                                       "met": statistics.fmean(gap) >= 0 and statistics.fmean(share) <= 1.0,
                                       "compute_share_of_grid": round(statistics.fmean(share), 3), "per_seed": gap}
    if has("hopper_nsga2", "hopper_random"):
        diffs, shares = [], []
        for s in seeds:
            m = s["methods"]
            sets = {k: [(c["final_accuracy"], c["params"]) for c in m[k]["raw"]["configs"]
                        if c["final_accuracy"] is not None and c["params"] is not None]
                    for k in ("hopper_nsga2", "hopper_random")}
            ref = 1.1 * max(p for pts in sets.values() for _, p in pts)
            hv = {k: hypervolume(v, ref) for k, v in sets.items()}
            s["hypervolume"] = {k: round(v, 4) for k, v in hv.items()}
            diffs.append(hv["hopper_nsga2"] - hv["hopper_random"])
            shares.append(m["hopper_nsga2"]["compute_s"] / m["hopper_random"]["compute_s"])
        out["nsga2_hypervolume_minus_random"] = {
            "value": round(statistics.fmean(diffs), 4), "target": ">= 0", "met": statistics.fmean(diffs) >= 0,
            "compute_ratio_nsga2_over_random": round(statistics.fmean(shares), 3),
            "note": "val_accuracy (max) vs params (min, scaled by 1.1 x the largest seen); the same number of "
                    "configs and epochs for both"}
    return out


def plot(seed_result: dict, grid_best: float, name: str) -> str:
    plt = pyplot()
    fig, (by_wall, by_compute) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    cmap = plt.get_cmap("tab20")
    for i, (label, m) in enumerate(sorted(seed_result["methods"].items())):
        rows = m["curve"]
        if not rows:
            continue
        style = "-" if label.startswith("hopper") else "--"
        for ax, key in ((by_wall, "wall"), (by_compute, "compute")):
            ax.step([r[key] for r in rows], [r["best"] for r in rows], where="post", linestyle=style,
                    color=cmap(i % 20), label=label if ax is by_wall else None)
    for ax, xlabel in ((by_wall, "wall time since the tool was ready (s)"),
                       (by_compute, "training compute (worker-seconds)")):
        ax.axhline(grid_best - ACCURACY_SLACK, color="black", linewidth=0.8, linestyle=":")
        ax.set_xlabel(xlabel)
        ax.set_xscale("log")
    by_wall.set_ylabel("best validation accuracy so far")
    low = min((r["best"] for m in seed_result["methods"].values() for r in m["curve"]), default=0.0)
    by_wall.set_ylim(max(low, grid_best - 0.15), min(1.0, grid_best + 0.02))
    fig.legend(loc="center right", fontsize=7)
    fig.suptitle("Best-so-far accuracy (dotted: the grid's best less 0.5 pt); Hopper solid, peers dashed")
    fig.subplots_adjust(right=0.8)
    return save_figure(fig, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the generated tabular dataset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="toy size, for the smoke test")
    parser.add_argument("--only", default="", help="comma-separated method labels (e.g. hopper_grid,hopper_asha,"
                        "ray_asha): a shorter run of just these; the targets need hopper_grid")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.rows = 1, 600
    p = plan(args.quick)
    seeds, missing = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        source = make_tabular(tmp / "data" / "tabular.npz", args.rows, seed=0)
        data = prepare_data(tmp, source, args.workers)
        for seed in range(args.seeds):
            order = ["hopper", "ray", "optuna"]
            if seed % 2:
                order.reverse()  # the machine drifts: no tool always runs first
            result, missing = run_seed(seed, p, data, tmp, args.workers, order,
                                       {x.strip() for x in args.only.split(",") if x.strip()} or None)
            seeds.append(result)
            print(f"seed {seed} done", file=sys.stderr)
            final = seed == args.seeds - 1
            if final or not args.quick:
                report(seeds, p, args, data, missing, final=final)


def report(seeds: list[dict], p: dict, args: argparse.Namespace, data: dict, missing: list[str], *,
           final: bool) -> None:
    """The document over the seeds so far: printed at the end, written after every seed (but in quick runs)."""
    labels = sorted(seeds[0]["methods"])
    methods = {}
    for label in labels:
        rows = [s["methods"][label] for s in seeds]
        methods[label] = {key: spread([r[key] for r in rows]) for key in
                          ("best_accuracy", "compute_s", "wall_s", "trials", "epochs_trained")}
    grid_best = seeds[0]["methods"]["hopper_grid"]["best_accuracy"]
    image = None if args.quick else plot(seeds[0], grid_best, "search_efficiency.png")
    found = targets(seeds)
    per_seed = [{"seed": i, "processes": s["processes"], "hypervolume": s.get("hypervolume"),
                 "methods": {k: {kk: v for kk, v in m.items() if kk not in ("raw", "curve")}
                             for k, m in s["methods"].items()}} for i, s in enumerate(seeds)]
    curves = {k: m["curve"] for k, m in seeds[0]["methods"].items()}
    emit("search_efficiency", {
        "dataset": {"kind": "synthetic tabular (20 features, 5 classes)", "rows": args.rows,
                    "train": data["n_train"], "validation": data["n_val"]},
        "model": "mlp", "space": p["space"], "grid_configs": grid_size(p["space"]), "max_epochs": p["max_epochs"],
        "workers": args.workers, "seeds": len(seeds), "seeds_asked": args.seeds, "partial": not final,
        "plan": p, "missing_methods": missing, "only": args.only or None, "methods": methods, "targets": found,
        "per_seed": per_seed, "curves_seed0": curves, "plot": image,
    }, write=not args.quick, show=final)


if __name__ == "__main__":
    main()
