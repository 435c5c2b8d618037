"""The Spark backend against the local backend on the same MOP workload, in one run.

Both backends train the same configs (same seeds, same W = 2 partitions) with the same scheduler:
  - local: W worker processes on this machine;
  - spark: W barrier tasks on a real Spark standalone cluster started here (master + W workers with
    1 core each, from pip's pyspark), partitions read through Petastorm.
Reported per backend: start-up (from ``backend.start()`` until every worker has its data and
TensorFlow loaded; for Spark this includes the driver JVM, the executors and the Python workers),
makespan of the workload after start-up, and per sub-epoch the dispatch overhead: the wall time
the scheduler saw minus the time the worker spent training, evaluating and hopping (i.e. the
cost of the RPC channel / process queue and of the scheduler's commit). Ratios spark / local, where local is the mean of a run before and a run after Spark.
Writes bench/results/mop_spark.json.

Usage: python bench/mop_spark.py [--rows N] [--epochs E] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import emit, make_tabular  # noqa: E402

SEED = 0
WORKERS = 2


def run(backend_name: str, home: Path, source: Path, configs: list[dict], epochs: int, cluster_url: str | None) -> dict:
    from hopper.app import open_services
    from hopper.mop_scheduler import Scheduler
    from hopper.mop_scheduler.backends import LocalBackend
    from hopper.settings import Settings

    settings = Settings(home=home, database_url=f"sqlite:///{home / 'hopper.db'}", data_roots=(source.parent,),
                        artifact_dir=home / "artifacts", workers=WORKERS, poll_interval=0.02)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    store = services.store
    services.register_dataset({"name": "tabular", "path": str(source)})
    workload = services.launch_workload({"name": backend_name, "model": "mlp", "dataset": "tabular",
                                         "procedure": "manual", "max_epochs": epochs, "seed": SEED, "plan": "mop"})
    for config in configs:
        services.add_config(workload.id, config)
    if backend_name == "local":
        backend = LocalBackend(WORKERS, threads_per_worker=1)
    else:
        from hopper.mop_scheduler.backends.spark import SparkBackend

        backend = SparkBackend(WORKERS, master=cluster_url, driver_host="127.0.0.1",
                               spark_conf={"spark.executor.cores": "1", "spark.executor.memory": "1g",
                                           "spark.driver.bindAddress": "127.0.0.1", "spark.ui.enabled": "false"})
    scheduler = Scheduler(services, backend)
    t0 = time.perf_counter()
    backend.start()
    backend.wait_ready(600)
    startup = time.perf_counter() - t0
    t1 = time.perf_counter()
    scheduler.run(until_done=True, timeout=3600)  # shuts the backend down at the end
    makespan = time.perf_counter() - t1
    log = [s for s in services.list_sub_epochs(workload.id) if s.outcome == "ok"]
    walls = [(s.finished_at - s.started_at).total_seconds() for s in log]
    work = [(s.compute_seconds or 0) + (s.hop_seconds or 0) for s in log]
    overhead_ms = [max(0.0, w - c) * 1000 for w, c in zip(walls, work, strict=True)]
    accuracy = {c.id: round(c.latest_metrics.get("val_accuracy", float("nan")), 4)
                for c in services.list_configs(workload.id)}
    store.dispose()
    return {"startup_seconds": round(startup, 2), "makespan_seconds": round(makespan, 2),
            "sub_epochs": len(log), "sub_epoch_wall_median_ms": round(statistics.median(walls) * 1000, 1),
            "sub_epoch_work_median_ms": round(statistics.median(work) * 1000, 1),
            "dispatch_overhead_median_ms": round(statistics.median(overhead_ms), 1),
            "dispatch_overhead_p95_ms": round(sorted(overhead_ms)[int(0.95 * (len(overhead_ms) - 1))], 1),
            "final_val_accuracy": sorted(accuracy.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="toy size (the test suite's smoke run)")
    args = parser.parse_args()
    rows, epochs = (4_000, 1) if args.quick else (args.rows, args.epochs)
    # the smoke run trains two configs: they still hop between both workers; the run checks shapes, not speed
    widths = (64,) if args.quick else (64, 128)
    configs = [{"lr": lr, "units": units, "batch_size": 64} for lr in (0.003, 0.01) for units in widths]

    from hopper.mop_scheduler.backends.spark_cluster import StandaloneCluster

    with tempfile.TemporaryDirectory(prefix="hopper-bench-spark-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "data").mkdir()
        source = make_tabular(tmp_path / "data" / "tabular.npz", rows, SEED)
        # Local runs before and after Spark: this machine drifts by 10-20 % between minutes, and the
        # baseline is their mean, so that neither backend gets the quiet (or the busy) slot.
        results = {"local_before": run("local", tmp_path / "local-1", source, configs, epochs, None)}
        with StandaloneCluster(n_workers=WORKERS, cores=1, memory="2g", workdir=tmp_path / "spark") as cluster:
            results["spark"] = run("spark", tmp_path / "spark-home", source, configs, epochs, cluster.url)
        results["local_after"] = run("local", tmp_path / "local-2", source, configs, epochs, None)
    spark = results["spark"]
    local = {key: (results["local_before"][key] + results["local_after"][key]) / 2
             for key in ("startup_seconds", "makespan_seconds", "sub_epoch_wall_median_ms",
                         "dispatch_overhead_median_ms")}
    emit("mop_spark", {
        "workload": {"model": "mlp", "rows": rows, "epochs": epochs, "configs": len(configs), "workers": WORKERS,
                     "cluster": "standalone master + 2 workers (1 core each) on 127.0.0.1"},
        "results": results,
        "local_baseline_mean": {k: round(v, 2) for k, v in local.items()},
        "ratios_spark_over_local": {
            "startup": round(spark["startup_seconds"] / local["startup_seconds"], 2),
            "makespan": round(spark["makespan_seconds"] / local["makespan_seconds"], 3),
            "sub_epoch_wall_median": round(spark["sub_epoch_wall_median_ms"] / local["sub_epoch_wall_median_ms"], 3),
        },
        "dispatch_overhead_extra_ms_per_sub_epoch": round(spark["dispatch_overhead_median_ms"]
                                                          - local["dispatch_overhead_median_ms"], 1),
    }, write=not args.quick)


if __name__ == "__main__":
    main()
