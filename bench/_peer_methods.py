"""The methods the peer benchmarks compare, each run in a process of its own.

``python bench/_peer_methods.py SPEC.json OUT.json`` runs one method (Hopper with a procedure, Ray Tune,
Optuna, KerasTuner's distributed mode or plain task parallelism) on the same Keras model (Hopper's roster
builder) and the same train/validation split, with W workers of one TensorFlow thread each, and writes:

- ``ready_at``: the wall clock (``time.time()``) when its workers were up (TensorFlow imported, data loaded,
  Ray started...), from which ``makespan_s`` runs to the end of the last trial;
- ``events``: one row per trained epoch: ``t`` (wall clock at its end), ``compute`` (the worker-seconds it took:
  build or restore, fit, validation, checkpoints and the tool's own reporting), ``acc`` (validation
  accuracy), ``trial`` and ``epoch``; for Hopper these come from its schedule log and metrics;
- per-method details (trials, what a worker holds, the final accuracy per fixed config).

The Ray methods need ``.venv-peers`` (``bench/peers_env.sh``); the others run on the project venv. Every
process appends its epoch events to a JSON-lines file under ``SPEC["events_dir"]``, so Ray actors, Optuna and
KerasTuner workers and pool processes report the same way.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BENCH = Path(__file__).resolve().parent
METRIC = "val_accuracy"

_DATA: dict = {}
_THREADS_SET = False


# -- shared by every peer: data, model, threads, per-epoch events -------------------------------------------------

def pin_threads() -> None:
    """One TensorFlow thread per worker, like Hopper's workers (a no-op once TensorFlow has started)."""
    global _THREADS_SET
    if _THREADS_SET:
        return
    from hopper.mop_scheduler.worker.runner import configure_threads

    try:
        configure_threads(1)
    except RuntimeError:  # a reused Ray actor already ran TensorFlow with the same setting
        pass
    _THREADS_SET = True


def split(data: dict) -> tuple:
    """The benchmark's train and validation arrays (Hopper's own split, exported once), cached per process."""
    if "train" not in _DATA:
        import numpy as np

        with np.load(data["train"]) as f:
            _DATA["train"] = (f["x"], f["y"])
        with np.load(data["val"]) as f:
            _DATA["val"] = (f["x"], f["y"])
    return _DATA["train"], _DATA["val"]


def train_bytes(data: dict) -> int:
    (x, y), _ = split(data)
    return int(x.nbytes + y.nbytes)


def build(spec: dict, hparams: dict):  # noqa: ANN201
    """Hopper's roster model for these hparams, compiled as Hopper compiles it."""
    from hopper.mop_scheduler.worker.factory import ModelFactory

    data = spec["data"]
    factory = ModelFactory(spec["model"], tuple(data["feature_shape"]), data["n_outputs"], data["task"])
    return factory.build(dict(hparams))


class EventLog:
    """Appends one process's epoch events to its own JSON-lines file (no locking between processes)."""

    def __init__(self, events_dir: str) -> None:
        self.path = Path(events_dir) / f"{os.getpid()}.jsonl"

    def write(self, **event: Any) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(event) + "\n")


def read_events(events_dir: str | Path) -> list[dict]:
    rows = []
    for path in sorted(Path(events_dir).glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["t"])


def epoch_clock(events_dir: str, trial: str, started: float, on_epoch=None):  # noqa: ANN001, ANN201
    """A Keras callback that logs each epoch's validation accuracy and the busy seconds since the last one.

    ``started`` is when the trial began (before its model was built or restored), so a trial's events add
    up to its whole busy time. ``on_epoch(epoch, acc, model)`` is the tool's hook (report, prune,
    checkpoint); its own time counts towards the next epoch.
    """
    import keras

    log = EventLog(events_dir)

    class EpochClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.last = started

        def on_epoch_end(self, epoch, logs=None):  # noqa: ANN001, ANN202
            now = time.time()
            acc = float((logs or {})[METRIC])
            log.write(t=now, compute=now - self.last, acc=acc, trial=trial, epoch=epoch + 1)
            if on_epoch is not None:
                on_epoch(epoch + 1, acc, self.model)
            self.last = time.time()

    return EpochClock()


def fit(spec: dict, model, hparams: dict, callbacks: list, *, initial_epoch: int = 0, epochs: int | None = None):  # noqa: ANN001, ANN201
    (x, y), val = split(spec["data"])
    return model.fit(x, y, batch_size=int(hparams["batch_size"]), epochs=epochs or spec["max_epochs"],
                     initial_epoch=initial_epoch, validation_data=val, shuffle=True, verbose=0, callbacks=callbacks)


def fixed_trials(spec: dict) -> list[dict]:
    """The benchmark's fixed configs (peers.py), or None when the method samples from the space."""
    return spec.get("configs") or []


def space_values(spec: dict) -> dict[str, list]:
    """The space as name -> its values (the benchmark's spaces are discrete: choices and fixed values)."""
    out = {}
    for name, definition in spec["space"].items():
        if isinstance(definition, dict):
            if definition.get("type") != "choice":
                raise SystemExit(f"space.{name}: the peer benchmarks use discrete spaces (choice or fixed)")
            out[name] = list(definition["values"])
        else:
            out[name] = [definition]
    return out


# -- task parallelism -------------------------------------------------------------------------------------------

def _tp_init(spec: dict) -> None:
    pin_threads()
    split(spec["data"])
    import keras  # noqa: F401 - imported here so that the start-up is outside the makespan



def _tp_train(item: tuple[dict, int, dict]) -> dict:
    import keras

    spec, index, hparams = item
    started = time.time()
    keras.utils.set_random_seed(spec["seed"])
    model = build(spec, hparams)
    fit(spec, model, hparams, [epoch_clock(spec["events_dir"], str(index), started)])
    return {"index": index, "pid": os.getpid()}


def run_task_parallel(common: dict, runs: list[dict]) -> dict:
    ctx = mp.get_context("spawn")
    out = {}
    with ctx.Pool(common["workers"], initializer=_tp_init, initargs=(common,)) as pool:
        pool.map(time.sleep, [0.5] * common["workers"])  # every process has run its initialiser
        for spec in runs:
            ready = time.time()
            pool.map(_tp_train, [(spec, i, c) for i, c in enumerate(fixed_trials(spec))], chunksize=1)
            out[spec["label"]] = {"ready_at": ready, "end_at": time.time(), "trials": len(fixed_trials(spec)),
                                  "train_bytes_per_worker": train_bytes(spec["data"])}
    return out


# -- Optuna: W processes on one journal storage -----------------------------------------------------------------

def _optuna_pruner(spec: dict):  # noqa: ANN202
    import optuna

    options = spec.get("options", {})
    kind = options.get("pruner", "none")
    if kind == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=options.get("min_epochs", 1),
                                                      reduction_factor=options.get("eta", 3))
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=options.get("min_epochs", 1),
                                              max_resource=spec["max_epochs"], reduction_factor=options.get("eta", 3))
    return optuna.pruners.NopPruner()


def _optuna_storage(spec: dict):  # noqa: ANN202
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(Path(spec["home"]) / f"optuna-{spec['label']}.log")))


def _optuna_space(spec: dict) -> dict[str, list]:
    if fixed_trials(spec):  # enqueued configs: each parameter's values as a categorical distribution
        return {k: sorted({c[k] for c in spec["configs"]}, key=str) for k in spec["configs"][0]}
    return space_values(spec)


def _optuna_worker(runs: list[dict], index: int, barrier) -> None:  # noqa: ANN001
    try:
        _optuna_runs(runs, index, barrier)
    except BaseException:
        barrier.abort()  # the main process stops waiting at once
        raise


def _optuna_runs(runs: list[dict], index: int, barrier) -> None:  # noqa: ANN001
    import optuna
    from optuna.trial import TrialState

    pin_threads()
    split(runs[0]["data"])
    import keras

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for spec in runs:
        values = _optuna_space(spec)
        # Each worker its own TPE stream: two processes with one seed would propose the same configs.
        sampler = optuna.samplers.TPESampler(seed=spec["seed"] * 1000 + index)
        study = optuna.load_study(study_name="bench", storage=_optuna_storage(spec), sampler=sampler,
                                  pruner=_optuna_pruner(spec))

        def objective(trial: optuna.Trial, spec: dict = spec, values: dict = values) -> float:
            started = time.time()
            hparams = {name: trial.suggest_categorical(name, options) if len(options) > 1 else options[0]
                       for name, options in values.items()}
            keras.utils.set_random_seed(spec["seed"])
            model = build(spec, hparams)
            pruned = []

            def report(epoch: int, acc: float, model) -> None:  # noqa: ANN001
                trial.report(acc, epoch)
                if trial.should_prune():
                    pruned.append(epoch)
                    model.stop_training = True

            history = fit(spec, model, hparams, [epoch_clock(spec["events_dir"], str(trial.number), started, report)])
            if pruned:
                raise optuna.TrialPruned(f"pruned at epoch {pruned[0]}")
            return float(history.history[METRIC][-1])

        barrier.wait()  # both workers are up: the run starts
        # Stop once every trial is finished or taken by a worker. Not states=None: that counts the enqueued configs
        # still WAITING, so each worker stopped after its first trial (2 of 8 configs trained, found by peers.py).
        taken = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
        study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(spec["n_trials"], states=taken)])
        barrier.wait()  # both are done: the run ends


def run_optuna(common: dict, runs: list[dict]) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for spec in runs:
        study = optuna.create_study(study_name="bench", storage=_optuna_storage(spec), direction="maximize")
        for hparams in fixed_trials(spec):
            study.enqueue_trial(hparams)
        if fixed_trials(spec):
            spec["n_trials"] = len(fixed_trials(spec))
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(common["workers"] + 1)
    procs = [ctx.Process(target=_optuna_worker, args=(runs, i, barrier)) for i in range(common["workers"])]
    for p in procs:
        p.start()
    out = {}
    for spec in runs:
        barrier.wait(timeout=1800)
        ready = time.time()
        barrier.wait(timeout=7200)
        trials = optuna.load_study(study_name="bench", storage=_optuna_storage(spec)).trials
        states: dict[str, int] = {}
        for t in trials:
            states[t.state.name] = states.get(t.state.name, 0) + 1
        out[spec["label"]] = {"ready_at": ready, "end_at": time.time(), "trials": len(trials), "trial_states": states,
                              "train_bytes_per_worker": train_bytes(spec["data"]), "storage": "JournalFileBackend"}
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit(f"an Optuna worker failed: exit codes {[p.exitcode for p in procs]}")
    return out


# -- Ray Tune: W concurrent trials of one CPU each ----------------------------------------------------------------

def _ray_trainable(config: dict, spec: dict) -> None:
    import tempfile

    import keras
    from ray import tune

    pin_threads()
    started = time.time()
    hparams = dict(config["cfg"]) if "cfg" in config else dict(config)
    interval = spec.get("options", {}).get("interval")
    trial = tune.get_context().get_trial_id()
    checkpoint = tune.get_checkpoint()
    start_epoch = 0
    if checkpoint is not None:
        # PBT exploits: continue from the donor's weights and optimizer state with the explored lr.
        with checkpoint.as_directory() as folder:
            model = keras.models.load_model(Path(folder) / "model.keras")
            start_epoch = json.loads((Path(folder) / "epoch.json").read_text())["epoch"]
        model.optimizer.learning_rate = float(hparams["lr"])
        for layer in model.layers:
            if isinstance(layer, keras.layers.Dropout) and "dropout" in hparams:
                layer.rate = float(hparams["dropout"])  # read when the restored model's step is traced
    else:
        keras.utils.set_random_seed(spec["seed"])
        model = build(spec, hparams)

    def report(epoch: int, acc: float, model) -> None:  # noqa: ANN001
        if interval and epoch % interval == 0 and epoch < spec["max_epochs"]:
            with tempfile.TemporaryDirectory() as folder:
                model.save(Path(folder) / "model.keras")
                (Path(folder) / "epoch.json").write_text(json.dumps({"epoch": epoch}))
                tune.report({METRIC: acc, "epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report({METRIC: acc, "epoch": epoch})

    if start_epoch < spec["max_epochs"]:
        fit(spec, model, hparams, [epoch_clock(spec["events_dir"], trial, started, report)], initial_epoch=start_epoch)


def _ray_tuner(spec: dict):  # noqa: ANN202
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining
    from ray.tune.search.basic_variant import BasicVariantGenerator

    options = spec.get("options", {})
    if fixed_trials(spec):
        param_space: dict = {"cfg": tune.grid_search(fixed_trials(spec))}
        scheduler, samples = FIFOScheduler(), 1
    else:
        values = space_values(spec)
        param_space = {name: tune.choice(v) if len(v) > 1 else v[0] for name, v in values.items()}
        samples = spec["n_trials"]
        if options.get("scheduler") == "pbt":
            scheduler = PopulationBasedTraining(
                time_attr="training_iteration", perturbation_interval=options["interval"],
                hyperparam_mutations={name: values[name] for name in options["mutate"]},
                quantile_fraction=options.get("quantile", 0.25), resample_probability=options.get("resample", 0.25))
        else:
            scheduler = ASHAScheduler(time_attr="training_iteration", max_t=spec["max_epochs"],
                                      grace_period=options.get("min_epochs", 1), reduction_factor=options.get("eta", 3))
    # 2 CPUs of 1 each run 2 trials at once. PBT also needs its whole population created up front (it pauses
    # members at exploit points to share the slots); a limit on created trials would run it 2 at a time.
    concurrency = None if options.get("scheduler") == "pbt" else spec["workers"]
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(_ray_trainable, spec=spec), {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", scheduler=scheduler, num_samples=samples,
                                    max_concurrent_trials=concurrency, reuse_actors=True,
                                    search_alg=BasicVariantGenerator(random_state=spec["seed"])),
        # max_failures: a trial that fails anyway (a worker lost) is started again, as a user's run would, and the
        # makespan pays for it.
        run_config=tune.RunConfig(name=spec["label"], storage_path=str(Path(spec["home"]) / "ray_results"),
                                  verbose=0, stop={"training_iteration": spec["max_epochs"]},
                                  failure_config=tune.FailureConfig(max_failures=2)),
    )


def run_ray(common: dict, runs: list[dict]) -> dict:
    import random

    import numpy as np
    import ray

    from hopper.mop_scheduler.worker.runner import MIN_INTEROP_THREADS

    # Ray's workers inherit this process's environment: quiet TensorFlow, one compute thread (and the inter-op pool
    # of Hopper's workers), this folder importable.
    os.environ.update({"TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1",
                       "TF_NUM_INTEROP_THREADS": str(MIN_INTEROP_THREADS), "RAY_AIR_NEW_OUTPUT": "0",
                       # A reused actor waits this long for the previous trial's function thread to end (Ray's
                       # default 2 s: a 200k-row trial still winding down after its last report failed the next
                       # trial with "Trainable runner reuse requires reset_config() to ... return True").
                       "TUNE_FUNCTION_THREAD_TIMEOUT_S": "60",
                       "PYTHONPATH": os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")])})
    ray.init(num_cpus=common["workers"], include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=100 * 2**20, _temp_dir=str(Path(common["home"]) / "ray"))
    out = {}
    for spec in runs:
        random.seed(spec["seed"])  # PBT draws its explorations from these
        np.random.seed(spec["seed"])
        ready = time.time()
        grid = _ray_tuner(spec).fit()
        errors = [str(r.error) for r in grid if r.error is not None]
        if errors:
            raise SystemExit(f"Ray Tune trials failed: {errors[:2]}")
        out[spec["label"]] = {"ready_at": ready, "end_at": time.time(), "trials": len(grid),
                              "train_bytes_per_worker": train_bytes(spec["data"])}
    ray.shutdown()
    return out


# -- KerasTuner's distributed mode: a chief oracle and W worker processes ------------------------------------------

def _kt_tuner(spec: dict, directory: str):  # noqa: ANN202
    import keras_tuner as kt
    from _common import fixed_trials_oracle  # bench/ is on the path: this file runs as a script from there

    configs = fixed_trials(spec)

    FixedTrials = fixed_trials_oracle(configs)

    class Roster(kt.HyperModel):
        def build(self, hp):  # noqa: ANN001, ANN202
            _KT["started"] = time.time()
            return build(spec, dict(hp.values))

        def fit(self, hp, model, *args, callbacks=None, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            clock = epoch_clock(spec["events_dir"], f"{os.environ['KERASTUNER_TUNER_ID']}-{_KT['n']}", _KT["started"])
            _KT["n"] += 1
            return model.fit(*args, batch_size=int(hp.values["batch_size"]), shuffle=True,
                             callbacks=[*(callbacks or []), clock], **kwargs)

    oracle = FixedTrials(max_trials=len(configs), objective=kt.Objective(METRIC, "max"), seed=spec["seed"])
    return kt.Tuner(oracle=oracle, hypermodel=Roster(), directory=directory, project_name="distributed",
                    overwrite=True)


_KT: dict = {"n": 0, "started": 0.0}


def _kt_process(spec: dict, tuner_id: str, port: int, barrier) -> None:  # noqa: ANN001
    os.environ.update({"KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": "127.0.0.1",
                       "KERASTUNER_ORACLE_PORT": str(port)})
    pin_threads()
    import keras

    directory = str(Path(spec["home"]) / f"kt-{spec['label']}-{tuner_id}")
    if tuner_id == "chief":
        _kt_tuner(spec, directory).search()  # serves the oracle until every trial has ended
        return
    (x, y), val = split(spec["data"])
    tuner = _kt_tuner(spec, directory)
    barrier.wait()
    keras.utils.set_random_seed(spec["seed"])
    tuner.search(x, y, epochs=spec["max_epochs"], validation_data=val, verbose=0)


def run_kerastuner_distributed(common: dict, runs: list[dict]) -> dict:
    return {spec["label"]: _kerastuner_distributed(spec) for spec in runs}


def _kerastuner_distributed(spec: dict) -> dict:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(spec["workers"] + 1)
    chief = ctx.Process(target=_kt_process, args=(spec, "chief", port, None))
    chief.start()
    workers = [ctx.Process(target=_kt_process, args=(spec, f"tuner{i}", port, barrier))
               for i in range(spec["workers"])]
    for p in workers:
        p.start()
    barrier.wait(timeout=600)
    ready = time.time()
    for p in workers:
        p.join()
    end = time.time()
    # The search is over when the workers are; the chief would only poll for its exit every 20 s.
    chief.join(timeout=2)
    if chief.is_alive():
        chief.terminate()
        chief.join()
    if any(p.exitcode != 0 for p in workers):
        raise SystemExit(f"a KerasTuner worker failed: exit codes {[p.exitcode for p in workers]}")
    return {"ready_at": ready, "end_at": end, "trials": len(fixed_trials(spec)),
            "train_bytes_per_worker": train_bytes(spec["data"]), "processes": f"1 chief + {spec['workers']} workers"}


# -- Hopper -------------------------------------------------------------------------------------------------------

def run_hopper(common: dict, runs: list[dict]) -> dict:
    """Each run is a workload launched into one running Hopper (scheduler and workers started once) after the
    previous one has finished, so worker start-up is paid once and every run starts on warm workers."""
    import threading

    from hopper.app import open_services
    from hopper.engine.status import WorkloadStatus
    from hopper.mop_scheduler import Scheduler
    from hopper.mop_scheduler.backends import LocalBackend
    from hopper.settings import Settings

    home = Path(common["home"]) / "hopper"
    source = Path(common["data"]["source"])
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'hopper.db'}", data_roots=(source.parent,),
                        artifact_dir=home / "artifacts", workers=common["workers"], poll_interval=0.02)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    services.register_dataset({"name": "bench", "path": str(source)})
    backend = LocalBackend(common["workers"], threads_per_worker=1)
    backend.start()
    backend.wait_ready()
    stop = threading.Event()
    failure: list[BaseException] = []

    def schedule() -> None:
        try:
            Scheduler(services, backend).run(stop_event=stop, timeout=7200)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failure.append(exc)

    thread = threading.Thread(target=schedule, daemon=True)
    out = {}
    try:
        for spec in runs:
            launch = {"name": spec["label"], "model": spec["model"], "dataset": "bench",
                      "max_epochs": spec["max_epochs"], "seed": spec["seed"], **spec.get("workload", {})}
            if fixed_trials(spec):
                if thread.is_alive():
                    # A running scheduler would finish the still empty manual workload before its configs arrive.
                    raise SystemExit("a run with fixed configs must be the first of a Hopper runner")
                launch["procedure"] = "manual"
            else:
                launch["space"] = spec["space"]
            ready = time.time()
            workload = services.launch_workload(launch)
            for hparams in fixed_trials(spec):
                services.add_config(workload.id, hparams)
            if not thread.is_alive():
                thread.start()
            while services.get_workload(workload.id).status == WorkloadStatus.RUNNING:
                _check_alive(thread, failure)
                time.sleep(0.05)
            out[spec["label"]] = {"ready_at": ready, "end_at": time.time(),
                                  **_hopper_result(services, workload.id, spec)}
    finally:
        stop.set()
        thread.join(timeout=120)
    services.store.dispose()
    return out


def _check_alive(thread, failure: list) -> None:  # noqa: ANN001
    if failure:
        raise failure[0]
    if not thread.is_alive():
        raise SystemExit("Hopper's scheduler stopped before the workload was done")


def _hopper_result(services, workload_id: int, spec: dict) -> dict:  # noqa: ANN001
    from datetime import UTC

    import numpy as np

    log = [s for s in services.list_sub_epochs(workload_id) if s.outcome == "ok"]
    accuracy = services.workload_metrics(workload_id, METRIC)
    params = services.workload_metrics(workload_id, "params")
    ends: dict[tuple[int, int], list] = {}
    for s in log:
        row = ends.setdefault((s.config_id, s.epoch), [0.0, 0.0])
        row[0] = max(row[0], s.finished_at.replace(tzinfo=UTC).timestamp())
        row[1] += (s.compute_seconds or 0) + (s.hop_seconds or 0)
    events = []
    for config_id, rows in accuracy.items():
        for m in rows:
            if (config_id, m["epoch"]) in ends:
                t, compute = ends[(config_id, m["epoch"])]
                # Hopper counts epochs from 0 in its log and metrics; the events count them from 1 as Keras shows.
                events.append({"t": t, "compute": compute, "acc": float(m["value"]), "trial": str(config_id),
                               "epoch": m["epoch"] + 1})
    configs = services.list_configs(workload_id)
    info = services.get_dataset("bench")
    size = {cid: rows[-1]["value"] for cid, rows in params.items() if rows}
    # The plan the workload ran (auto chooses): under the replicated plan every worker holds all the training rows.
    choice = services.get_workload(workload_id).plan_choice or {}
    held_by = 1 if choice.get("plan") == "replicated" else spec["workers"]
    return {
        "events": events, "trials": len(configs), "sub_epochs": len(log),
        "configs": [{"id": c.id, "hparams": c.hparams, "status": c.status, "origin": c.origin, "epochs": c.epochs_done,
                     "final_accuracy": c.latest_metrics.get(METRIC), "params": size.get(c.id)} for c in configs],
        "train_bytes_per_worker": int(info.n_train * (int(np.prod(info.feature_shape)) * 4 + 8) // held_by),
        "plan": choice.get("plan"), "plan_reason": choice.get("reason"),
    }


RUNNERS = {"hopper": run_hopper, "ray": run_ray, "optuna": run_optuna,
           "kerastuner_distributed": run_kerastuner_distributed, "task_parallel": run_task_parallel}


def main() -> None:
    """Run every run of the spec with one runner and write their results, keyed by label."""
    spec = json.loads(Path(sys.argv[1]).read_text())
    common = {k: v for k, v in spec.items() if k != "runs"}
    runs = []
    for run in spec["runs"]:
        run = {**common, **run, "events_dir": str(Path(spec["events_dir"]) / run["label"])}
        Path(run["events_dir"]).mkdir(parents=True, exist_ok=True)
        runs.append(run)
    started = time.time()
    results = RUNNERS[spec["runner"]](common, runs)
    for run in runs:
        result = results[run["label"]]
        if "events" not in result:
            result["events"] = read_events(run["events_dir"])
        result["makespan_s"] = result["end_at"] - result["ready_at"]
    Path(sys.argv[2]).write_text(json.dumps({"started_at": started, "end_at": time.time(), "runs": results}))


if __name__ == "__main__":
    # Run as the importable module, not as __main__: Ray and spawned processes then find every function by
    # reference (bench/ is on their path) instead of pickling copies of this file's globals.
    import _peer_methods

    _peer_methods.main()
