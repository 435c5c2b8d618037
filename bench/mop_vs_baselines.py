"""MOP against the two ways people search today: sequential (KerasTuner) and task parallelism.

The same configs (same epochs, same seeds) are trained three ways in one run, per suite:
  - sequential: KerasTuner itself (a Tuner with an oracle that proposes exactly these configs),
    one process, the full data, TensorFlow's default threads;
  - task parallel: W processes, each holding a full copy of the training data, each training whole
    configs one after another (1 TensorFlow thread per process);
  - MOP: Hopper's scheduler with the local backend, W worker processes each holding 1/W of the data
    (1 TensorFlow thread per worker).
Reported per method: makespan, speedup over sequential, peak RSS per worker process and the bytes of
training data each holds, final validation accuracy per config; for MOP also the ideal makespan
(sum of measured sub-epoch compute / W) and makespan / ideal. Also MOP with W = 4 and 8 workers
(over-subscribed on 2 cores: it shows whether the schedule stays packed, not speed).
Writes bench/results/mop_vs_baselines.json and PNGs (Gantt of the MOP run, makespan bars).

Usage: python bench/mop_vs_baselines.py [--rows N] [--epochs E] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _common import emit, fixed_trials_oracle, make_tabular, pyplot, save_figure  # noqa: E402

SEED = 0


# -- data --------------------------------------------------------------------------------------------

def load_split(services, dataset_name: str):
    """The exact train/validation split Hopper made (all partitions = the full training set)."""
    import numpy as np

    from hopper.engine.data import as_matrix, read_partition
    from hopper.engine.store import DatasetRow

    info = services.get_dataset(dataset_name)
    with services.store.session() as s:
        row = s.get(DatasetRow, info.id)
        parts, val = list(row.partition_paths), row.validation_path
    pieces = [read_partition(p, info.feature_shape) for p in parts]
    x = np.concatenate([as_matrix(p[0]) for p in pieces])
    y = np.concatenate([p[1] for p in pieces])
    x_val, y_val = read_partition(val, info.feature_shape)
    return (x, y), (as_matrix(x_val), y_val), info


# -- sequential: KerasTuner ---------------------------------------------------------------------------
def run_sequential(model: str, configs: list[dict], epochs: int, train, val, info, workdir: Path) -> dict:
    import keras_tuner as kt

    from hopper.mop_scheduler.worker.factory import ModelFactory

    factory = ModelFactory(model, info.feature_shape, info.n_outputs, info.task)

    FixedTrials = fixed_trials_oracle(configs)

    class Roster(kt.HyperModel):
        def build(self, hp):  # noqa: ANN001, ANN202
            return factory.build(dict(hp.values))

        def fit(self, hp, model, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            return model.fit(*args, batch_size=int(hp.values["batch_size"]), shuffle=True, **kwargs)

    oracle = FixedTrials(max_trials=len(configs), objective=kt.Objective("val_accuracy", "max"), seed=SEED)
    tuner = kt.Tuner(oracle=oracle, hypermodel=Roster(), directory=str(workdir), project_name="sequential",
                     overwrite=True)
    t0 = time.perf_counter()
    tuner.search(train[0], train[1], epochs=epochs, validation_data=val, verbose=0)
    makespan = time.perf_counter() - t0
    accuracies = []
    for trial_id in sorted(oracle.trials, key=int):
        history = oracle.trials[trial_id].metrics.get_history("val_accuracy")
        accuracies.append(round(float(history[-1].value[0] if hasattr(history[-1].value, "__len__")
                                      else history[-1].value), 4))
    return {"makespan_s": round(makespan, 2), "processes": 1, "threads": "TensorFlow default",
            "peak_rss_mb_per_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "train_bytes_per_process": int(train[0].nbytes + train[1].nbytes),
            "val_accuracy_per_config": accuracies}


# -- task parallel ---------------------------------------------------------------------------------------
_TP: dict = {}


def _tp_init(model, shape, n_outputs, task, train, val) -> None:  # noqa: ANN001
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    from hopper.mop_scheduler.worker.factory import ModelFactory
    from hopper.mop_scheduler.worker.runner import configure_threads

    configure_threads(1)
    _TP.update(factory=ModelFactory(model, shape, n_outputs, task), train=train, val=val)


def _tp_train(args) -> dict:  # noqa: ANN001
    import keras

    hparams, epochs = args
    keras.utils.set_random_seed(SEED)
    model = _TP["factory"].build(hparams)
    t0 = time.perf_counter()
    model.fit(*_TP["train"], epochs=epochs, batch_size=int(hparams["batch_size"]), shuffle=True, verbose=0)
    compute = time.perf_counter() - t0
    acc = model.evaluate(*_TP["val"], batch_size=512, verbose=0, return_dict=True)["accuracy"]
    return {"acc": round(float(acc), 4), "compute": compute,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "pid": os.getpid()}


def run_task_parallel(model: str, configs: list[dict], epochs: int, train, val, info, workers: int) -> dict:
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_tp_init,
                  initargs=(model, tuple(info.feature_shape), info.n_outputs, info.task, train, val)) as pool:
        pool.map(time.sleep, [0.5] * workers)  # make sure every process finished its initialiser
        t0 = time.perf_counter()
        rows = pool.map(_tp_train, [(c, epochs) for c in configs], chunksize=1)
        makespan = time.perf_counter() - t0
    rss = {}
    for r in rows:
        rss[r["pid"]] = max(rss.get(r["pid"], 0), r["rss_mb"])
    return {"makespan_s": round(makespan, 2), "processes": workers, "threads": 1,
            "peak_rss_mb_per_process": round(max(rss.values()), 1),
            "train_bytes_per_process": int(train[0].nbytes + train[1].nbytes),
            "val_accuracy_per_config": [r["acc"] for r in rows]}


# -- MOP ---------------------------------------------------------------------------------------------------
def run_mop(home: Path, source: Path, model: str, configs: list[dict], epochs: int, workers: int,
            dataset_name: str, plan: str = "mop") -> tuple[dict, list]:
    """Hopper's scheduler on the local backend; ``plan`` mop (MOP itself) or auto (Hopper's own choice)."""
    import numpy as np
    import psutil

    from hopper.app import open_services
    from hopper.mop_scheduler import Scheduler
    from hopper.mop_scheduler.backends import LocalBackend
    from hopper.settings import Settings

    settings = Settings(home=home, database_url=f"sqlite:///{home / 'hopper.db'}", data_roots=(source.parent,),
                        artifact_dir=home / "artifacts", workers=workers, poll_interval=0.02)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    store = services.store
    services.register_dataset({"name": dataset_name, "path": str(source)})
    workload = services.launch_workload({"name": plan, "model": model, "dataset": dataset_name,
                                         "procedure": "manual", "max_epochs": epochs, "seed": SEED, "plan": plan})
    for c in configs:
        services.add_config(workload.id, c)
    backend = LocalBackend(workers, threads_per_worker=1)
    last_epoch = [0.0]
    # The makespan ends at the last committed epoch: ``run`` also shuts the worker processes down, which the
    # task-parallel pool does outside its timing too.
    scheduler = Scheduler(services, backend, on_epoch=lambda _: last_epoch.__setitem__(0, time.perf_counter()))
    backend.start()
    backend.wait_ready()
    peak: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in backend.worker_pids().values():
                try:
                    peak[pid] = max(peak.get(pid, 0), psutil.Process(pid).memory_info().rss / 2**20)
                except psutil.Error:
                    pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    scheduler.run(until_done=True, timeout=3600)
    makespan = last_epoch[0] - t0
    done.set()
    log = services.list_sub_epochs(workload.id)
    compute = sum((s.compute_seconds or 0) + (s.hop_seconds or 0) for s in log if s.outcome == "ok")
    accuracies = [round(c.latest_metrics.get("val_accuracy", float("nan")), 4) for c in services.list_configs(workload.id)]
    info = services.get_dataset(dataset_name)
    choice = services.get_workload(workload.id).plan_choice or {}
    replicated = choice.get("plan") == "replicated"
    train_bytes = info.n_train * (int(np.prod(info.feature_shape)) * 4 + 8) // (1 if replicated else workers)
    store.dispose()
    return {"makespan_s": round(makespan, 2), "processes": workers, "threads": 1,
            "plan": choice.get("plan"), "plan_reason": choice.get("reason"),
            "ideal_makespan_s": round(compute / workers, 2), "makespan_over_ideal": round(makespan / (compute / workers), 3),
            "sub_epochs": len(log), "peak_rss_mb_per_process": round(max(peak.values()), 1) if peak else None,
            "train_bytes_per_process": int(train_bytes), "val_accuracy_per_config": accuracies}, log


# -- plots ---------------------------------------------------------------------------------------------------
def plot_gantt(log: list, name: str) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.2))
    t0 = min(s.started_at for s in log)
    cmap = plt.get_cmap("tab10")
    for s in log:
        if s.outcome == "ok":
            ax.barh(s.worker, (s.finished_at - s.started_at).total_seconds(),
                    left=(s.started_at - t0).total_seconds(), color=cmap(s.config_id % 10), edgecolor="white",
                    linewidth=0.3)
    ax.set_xlabel("seconds")
    ax.set_title(f"MOP schedule ({name}): sub-epochs per worker, coloured by config")
    return save_figure(fig, f"mop_gantt_{name}.png")


def plot_makespans(suites: dict) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels, values = [], []
    for suite, methods in suites.items():
        for method in ("sequential", "task_parallel", "mop"):
            labels.append(f"{suite}\n{method}")
            values.append(methods[method]["makespan_s"])
    ax.bar(range(len(values)), values, color=["#888888", "#f58518", "#4c78a8"] * len(suites))
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_ylabel("makespan (s)")
    ax.set_title("Makespan: sequential (KerasTuner) vs task parallel vs MOP")
    return save_figure(fig, "mop_makespans.png")


def configs_for(model: str, quick: bool) -> list[dict]:
    lrs, second = [0.001, 0.003], ([64, 128] if model == "mlp" else [16, 32])
    key = "units" if model == "mlp" else "filters"
    batches = [64] if quick else [64, 128]
    if quick:  # two configs still hop between the two workers; the smoke test checks shapes, not speed
        second = second[:1]
    return [{"lr": lr, key: k, "batch_size": b} for lr in lrs for k in second for b in batches]


def _ratio_summary(values: list[float]) -> dict:
    import statistics

    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "each": [round(v, 3) for v in values]}


def interleaved(repeats: int, epochs: int, workers: int) -> dict:
    """Task parallelism, MOP and Hopper's auto plan on digits (cnn, the 8 configs), run A B C A B C ... so that
    the machine's load drifts over all three alike; median ratios with their spread."""
    from hopper.engine.demo import write_digits
    from hopper.engine.services import Services
    from hopper.engine.store import Store
    from hopper.settings import Settings

    model, configs = "cnn", configs_for("cnn", False)
    runs: dict[str, list[dict]] = {"mop": [], "hopper_auto": [], "task_parallel": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        data.mkdir()
        source = write_digits(data)
        split = None
        for r in range(repeats):
            for method in runs:
                if method == "task_parallel":
                    if split is None:  # the exact split Hopper made in the first MOP run
                        home = tmp / "mop-0"
                        services = Services(Store(f"sqlite:///{home / 'hopper.db'}"),
                                            Settings(home=home, database_url="", data_roots=(data,),
                                                     artifact_dir=home / "artifacts"))
                        split = load_split(services, "digits_cnn")
                    row = run_task_parallel(model, configs, epochs, *split, workers)
                else:
                    plan = "mop" if method == "mop" else "auto"
                    row, _ = run_mop(tmp / f"{plan}-{r}", source, model, configs, epochs, workers, "digits_cnn", plan)
                runs[method].append(row)
                print(f"repeat {r} {method}: {row['makespan_s']} s", file=sys.stderr)
    make = {m: [row["makespan_s"] for row in rows] for m, rows in runs.items()}
    return {"suite": "digits_cnn", "configs": len(configs), "epochs": epochs, "workers": workers, "repeats": repeats,
            "order": "mop, hopper_auto, task_parallel, repeated", "makespans_s": make,
            "hopper_auto_plans": [(row["plan"], row["plan_reason"]) for row in runs["hopper_auto"]],
            "hopper_auto_over_task_parallel": _ratio_summary(
                [a / t for a, t in zip(make["hopper_auto"], make["task_parallel"], strict=True)]),
            "hopper_auto_over_mop": _ratio_summary([a / m for a, m in zip(make["hopper_auto"], make["mop"], strict=True)]),
            "mop_over_task_parallel": _ratio_summary([m / t for m, t in zip(make["mop"], make["task_parallel"],
                                                                             strict=True)]),
            "hopper_auto_over_better_of_both": _ratio_summary(
                [a / min(t, m) for a, t, m in zip(make["hopper_auto"], make["task_parallel"], make["mop"], strict=True)])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the generated tabular dataset")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--interleaved", type=int, default=0, metavar="R",
                        help="only digits: task parallelism, MOP and Hopper's auto plan, R interleaved repeats each")
    args = parser.parse_args()
    if args.interleaved:
        emit("mop_vs_baselines_interleaved", interleaved(args.interleaved, args.epochs, args.workers))
        return
    if args.quick:
        args.rows, args.epochs = 4000, 1
    from hopper.engine.demo import write_digits

    suites, extra = {}, {}
    plots: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        data.mkdir()
        sources = {"digits_cnn": ("cnn", write_digits(data))}
        if not args.quick:  # the smoke run checks one suite's shape: the tabular one only differs in its data
            sources["tabular_mlp"] = ("mlp", make_tabular(data / "tab.npz", args.rows, SEED))
        for suite, (model, source) in sources.items():
            configs = configs_for(model, args.quick)
            mop, log = run_mop(tmp / f"mop-{suite}", source, model, configs, args.epochs, args.workers, suite)
            from hopper.engine.services import Services
            from hopper.engine.store import Store
            from hopper.settings import Settings

            home = tmp / f"mop-{suite}"
            services = Services(Store(f"sqlite:///{home / 'hopper.db'}"),
                                Settings(home=home, database_url="", data_roots=(data,), artifact_dir=home / "artifacts"))
            train, val, info = load_split(services, suite)
            seq = run_sequential(model, configs, args.epochs, train, val, info, tmp / "kt")
            tp = run_task_parallel(model, configs, args.epochs, train, val, info, args.workers)
            for method in (tp, mop):
                method["speedup_over_sequential"] = round(seq["makespan_s"] / method["makespan_s"], 2)
            mop["makespan_over_task_parallel"] = round(mop["makespan_s"] / tp["makespan_s"], 3)
            mop["data_footprint_vs_task_parallel"] = round(mop["train_bytes_per_process"] / tp["train_bytes_per_process"], 3)
            mop["best_accuracy_minus_sequential"] = round(max(mop["val_accuracy_per_config"]) -
                                                          max(seq["val_accuracy_per_config"]), 4)
            suites[suite] = {"model": model, "train_rows": info.n_train, "epochs": args.epochs,
                             "configs": configs, "sequential": seq, "task_parallel": tp, "mop": mop}
            if not args.quick:
                plots.append(plot_gantt(log, suite))
        model, source = sources["digits_cnn"]
        for w in ([] if args.quick else [4, 8]):
            row, _ = run_mop(tmp / f"mop-w{w}", source, model, configs_for(model, False), args.epochs, w, f"digits_w{w}")
            extra[f"W={w}"] = {k: row[k] for k in ("makespan_s", "ideal_makespan_s", "makespan_over_ideal",
                                                    "sub_epochs")}
    if not args.quick:
        plots.append(plot_makespans(suites))
    emit("mop_vs_baselines", {"workers": args.workers, "suites": suites, "oversubscribed_mop": extra,
                              "plots": plots}, write=not args.quick)


if __name__ == "__main__":
    main()
