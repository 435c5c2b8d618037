"""Print the README's tables for search_efficiency and peers from their JSON under bench/results/.

Usage: python bench/readme_tables.py [search_efficiency|peers ...]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _pm(row: dict, digits: int = 3) -> str:
    return f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}" if row["n"] > 1 else f"{row['mean']:.{digits}f}"


def _targets(targets: dict) -> list[str]:
    """A benchmark's targets as a table (value, target, met), after a blank line."""
    return ["", "| target | value | target | met |", "|---|---|---|---|",
            *(f"| {name} | {t['value']} | {t['target']} | {'yes' if t['met'] else '**no**'} |"
              for name, t in targets.items())]


def search_efficiency(doc: dict) -> str:
    grid = doc["methods"]["hopper_grid"]["compute_s"]["mean"]
    lines = [f"{doc['seeds']} seeds, mean ± std; {doc['grid_configs']}-config grid, {doc['max_epochs']} epochs max, "
             f"{doc['dataset']['train']} train / {doc['dataset']['validation']} validation rows, "
             f"{doc['workers']} workers", "",
             "| method | best val. accuracy | compute (worker-s) | compute / grid | wall (s) | configs | epochs trained |",
             "|---|---|---|---|---|---|---|"]
    for label, row in doc["methods"].items():
        lines.append(f"| {label} | {_pm(row['best_accuracy'], 4)} | {_pm(row['compute_s'], 1)} | "
                     f"{row['compute_s']['mean'] / grid:.2f} | {_pm(row['wall_s'], 1)} | {row['trials']['mean']:.0f} | "
                     f"{row['epochs_trained']['mean']:.0f} |")
    return "\n".join(lines + _targets(doc["targets"]))


def peers(doc: dict) -> str:
    lines = [f"{doc['repeats']} interleaved repeats, median (min–max)", "",
             "| suite | method | makespan (s) | end to end (s) | Hopper / method (makespan) | train data per worker "
             "| peak RSS, process tree (MB) | best val. accuracy |", "|---|---|---|---|---|---|---|---|"]
    for suite, s in doc["suites"].items():
        for method, m in s["methods"].items():
            ratio = s["ratios"].get(f"hopper_over_{method}", {}).get("makespan")
            cell = f"{ratio['median']:.2f} ({ratio['min']:.2f}–{ratio['max']:.2f})" if ratio else ""
            lines.append(f"| {suite} | {method} | {m['makespan_s_median']:.1f} ({m['makespan_s_min']:.1f}–"
                         f"{m['makespan_s_max']:.1f}) | {m['end_to_end_s_median']:.1f} | {cell} | "
                         f"{m['train_bytes_per_worker'] / 2**20:.2f} MB | {m['peak_rss_tree_mb_median']:.0f} | "
                         f"{m['best_accuracy_median']:.4f} |")
    lines += ["", "| target | median ratio | range | target | met |", "|---|---|---|---|---|"]
    for name, t in doc["targets"].items():
        lines.append(f"| {name} | {t['value']} | {t['range'][0]}–{t['range'][1]} | {t['target']} | "
                     f"{'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)


def api_vs_optuna_dashboard(doc: dict) -> str:
    lines = [f"{doc['configs']} configs/trials, {doc['clients']} clients, {doc['repeats']} interleaved repeats of "
             f"{doc['seconds_per_run']:g} s; {doc['how']}. Median p95 (range over the repeats):", "",
             "| endpoint | closed loop (wrk) p50 | closed loop p95 | closed loop req/s | 20 pollers (1/s each) p50 "
             "| 20 pollers p95 |", "|---|---|---|---|---|---|"]
    for name, closed in doc["closed_loop_wrk"].items():
        polled = doc["pollers_1_per_s"][name]
        p50c = statistics.median(r["p50_ms"] for r in closed["runs"])
        rps = statistics.median(r["requests_per_s"] for r in closed["runs"])
        p50p = statistics.median(r["p50_ms"] for r in polled["runs"])
        lines.append(f"| {name} | {p50c:.1f} ms | {closed['p95_ms_median']:.1f} ms ({closed['p95_ms_range'][0]:.1f}–"
                     f"{closed['p95_ms_range'][1]:.1f}) | {rps:.0f} | {p50p:.1f} ms | {polled['p95_ms_median']:.1f} ms "
                     f"({polled['p95_ms_range'][0]:.1f}–{polled['p95_ms_range'][1]:.1f}) |")
    changing = doc.get("pollers_1_per_s_while_the_store_changes")
    if changing:
        lines += ["", f"The same pollers on the reads Hopper caches, while {changing['how']}:", "",
                  "| endpoint | 20 pollers p50 | 20 pollers p95 |", "|---|---|---|"]
        for name, polled in changing["reads"].items():
            p50p = statistics.median(r["p50_ms"] for r in polled["runs"])
            lines.append(f"| {name} | {p50p:.1f} ms | {polled['p95_ms_median']:.1f} ms "
                         f"({polled['p95_ms_range'][0]:.1f}–{polled['p95_ms_range'][1]:.1f}) |")
    return "\n".join(lines + _targets(doc["targets"]))


def hop_overhead(doc: dict) -> str:
    lines = ["| model | sub-epoch | hop (save + load) | of which fsync | hop / sub-epoch | without fsync | "
             "Keras-format hop / sub-epoch | first sub-epoch extra: own build | shared compiled model |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in doc["results"]:
        lines.append(f"| {r['model']} ({r['params'] / 1000:.0f}k params) | {r['sub_epoch_seconds_median'] * 1000:.0f} ms "
                     f"| {r['hop_seconds_median'] * 1000:.1f} ms | {r['hop_fsync_seconds_median'] * 1000:.1f} ms | "
                     f"{r['hop_fraction_of_sub_epoch'] * 100:.1f} % | {r['hop_fraction_without_fsync'] * 100:.1f} % | "
                     f"{r['keras_format_fraction_of_sub_epoch'] * 100:.0f} % | "
                     f"{r['first_sub_epoch_extra_seconds_own_build'] * 1000:.0f} ms | "
                     f"{r['first_sub_epoch_extra_seconds_shared_model'] * 1000:.0f} ms |")
    return "\n".join(lines)


def main() -> None:
    for name in sys.argv[1:] or ["search_efficiency", "peers", "api_vs_optuna_dashboard", "hop_overhead"]:
        path = RESULTS / f"{name}.json"
        if path.exists():
            print(globals()[name](json.loads(path.read_text())), end="\n\n")
        else:
            print(f"({path} is not there yet: run bench/{name}.py)", end="\n\n")


if __name__ == "__main__":
    main()
