"""Sharing the workers between workloads: makespan of two workloads on two datasets sharing 2 local workers
against running them one after the other, and weighted fair share (1:1 and 3:1).

One scheduler with 2 local workers runs four phases on one store (so workers start once; each phase's
workloads are new, with no use counted yet):

1. digits alone, 2. wine alone: each one's makespan on both workers (its ideal makespan);
3. both launched together, weights 1:1: their makespan, against the sum of the two ideal makespans
   (target <= 1.05), and each one's share of worker-seconds while both were runnable;
4. both together, weights 3:1 (digits heavier): the shares again (target: within +-10 % of weight / sum).

Makespans are read from the sub-epoch log (first start to last commit), so worker start-up is not in them.
A workload's worker-seconds while both are runnable are its sub-epochs' start-to-commit times clipped to the
window in which both could use every worker: from the later first start until one of them has fewer unfinished
configs than workers (a config trains on one worker at a time, so in that tail it cannot take its share).

Usage: python bench/sharing.py [--epochs E] [--configs N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import emit  # noqa: E402

WORKERS = 2


def _spaces(configs: int) -> dict:
    lrs = [0.001, 0.003, 0.01, 0.03][: max(1, configs // 2)]
    units = [16, 32][: max(1, configs // len(lrs))]
    return {"lr": {"type": "choice", "values": lrs}, "units": {"type": "choice", "values": units}, "batch_size": 32}


def _register(services, data: Path) -> None:  # noqa: ANN001
    import numpy as np
    from sklearn.datasets import load_wine

    from hopper.engine.demo import write_digits

    services.register_dataset({"name": "digits", "path": str(write_digits(data))})
    wine = load_wine()
    path = data / "wine.npz"
    np.savez(path, x=((wine.data - wine.data.mean(0)) / wine.data.std(0)).astype(np.float32), y=wine.target)
    services.register_dataset({"name": "wine", "path": str(path)})


def _log(services, workload_id: int) -> list:  # noqa: ANN001
    return [s for s in services.list_sub_epochs(workload_id) if s.outcome == "ok"]


def _span(log: list) -> tuple:
    return min(s.started_at for s in log), max(s.finished_at for s in log)


def _makespan(*logs: list) -> float:
    start = min(_span(log)[0] for log in logs)
    end = max(_span(log)[1] for log in logs)
    return (end - start).total_seconds()


def _clipped_seconds(log: list, start, end) -> float:  # noqa: ANN001
    total = 0.0
    for s in log:
        lo, hi = max(s.started_at, start), min(s.finished_at, end)
        total += max(0.0, (hi - lo).total_seconds())
    return total


def _saturated_until(log: list):  # noqa: ANN202
    """When the workload last had at least as many unfinished configs as workers."""
    last_commit: dict[int, object] = {}
    for s in log:
        last_commit[s.config_id] = max(last_commit.get(s.config_id, s.finished_at), s.finished_at)
    ends = sorted(last_commit.values())
    return ends[-WORKERS] if len(ends) >= WORKERS else ends[0]


def _shares(services, ids: dict[str, int], weights: dict[str, float]) -> dict:  # noqa: ANN001
    logs = {name: _log(services, wid) for name, wid in ids.items()}
    start = max(_span(log)[0] for log in logs.values())
    end = min(_saturated_until(log) for log in logs.values())
    seconds = {name: _clipped_seconds(log, start, end) for name, log in logs.items()}
    total = sum(seconds.values()) or 1.0
    out = {"both_runnable_s": round(max(0.0, (end - start).total_seconds()), 2)}
    for name in ids:
        target = weights[name] / sum(weights.values())
        share = seconds[name] / total
        out[name] = {"weight": weights[name], "worker_seconds_both_runnable": round(seconds[name], 2),
                     "share": round(share, 3), "target_share": round(target, 3),
                     "relative_error": round(abs(share - target) / target, 3),
                     "total_worker_seconds": round(sum((s.finished_at - s.started_at).total_seconds()
                                                       for s in logs[name]), 2),
                     "sub_epochs": len(logs[name])}
    out["meets_target"] = all(out[name]["relative_error"] <= 0.10 for name in ids)
    return out


def run(home: Path, epochs: int, configs: int) -> dict:
    from hopper.app import open_services
    from hopper.mop_scheduler import Scheduler
    from hopper.settings import Settings

    data = home / "data"
    data.mkdir(parents=True)
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'hopper.db'}", data_roots=(data,),
                        artifact_dir=home / "artifacts", workers=WORKERS, poll_interval=0.02)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    _register(services, data)
    space = _spaces(configs)

    def launch(dataset: str, tag: str, weight: float = 1.0) -> int:
        return services.launch_workload({"name": f"{dataset} {tag}", "model": "mlp", "dataset": dataset,
                                         "space": space, "max_epochs": epochs, "seed": 0, "weight": weight,
                                         "plan": "mop"}).id

    def wait(ids: list[int], timeout: float = 3600) -> None:
        deadline = time.monotonic() + timeout
        while any(services.get_workload(i).status == "running" for i in ids):
            if error:
                raise error[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"workloads {ids} did not finish in {timeout} s")
            time.sleep(0.1)

    scheduler = Scheduler(services)
    stop, error = threading.Event(), []

    def loop() -> None:
        try:
            scheduler.run(stop_event=stop)
        except BaseException as exc:  # noqa: BLE001 - surfaced by wait()
            error.append(exc)

    thread = threading.Thread(target=loop, name="scheduler", daemon=True)
    t0 = time.perf_counter()
    thread.start()
    try:
        alone = {"digits": launch("digits", "alone")}
        wait(list(alone.values()))
        alone["wine"] = launch("wine", "alone")
        wait([alone["wine"]])
        even = {"digits": launch("digits", "shared 1:1"), "wine": launch("wine", "shared 1:1")}
        wait(list(even.values()))
        uneven = {"digits": launch("digits", "shared 3:1", 3.0), "wine": launch("wine", "shared 3:1", 1.0)}
        wait(list(uneven.values()))
    finally:
        stop.set()
        thread.join(120)
    wall = time.perf_counter() - t0
    ideal = {name: _makespan(_log(services, wid)) for name, wid in alone.items()}
    shared = _makespan(*(_log(services, wid) for wid in even.values()))
    ratio = shared / sum(ideal.values())
    result = {
        "workers": WORKERS, "epochs": epochs, "configs_per_workload": len(services.list_configs(alone["digits"])),
        "makespan": {"digits_alone_s": round(ideal["digits"], 2), "wine_alone_s": round(ideal["wine"], 2),
                     "one_after_the_other_s": round(sum(ideal.values()), 2), "shared_s": round(shared, 2),
                     "shared_over_sum_of_ideal": round(ratio, 3), "target": 1.05, "meets_target": ratio <= 1.05},
        "fair_share_1_1": _shares(services, even, {"digits": 1.0, "wine": 1.0}),
        "fair_share_3_1": _shares(services, uneven, {"digits": 3.0, "wine": 1.0}),
        "wall_s_including_worker_start": round(wall, 2),
    }
    services.store.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--configs", type=int, default=8)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    epochs, configs = (1, 1) if args.quick else (args.epochs, args.configs)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp) / "home", epochs, configs)
    emit("sharing", result, write=not args.quick)


if __name__ == "__main__":
    main()
