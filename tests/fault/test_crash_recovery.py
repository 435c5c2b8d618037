"""kill -9 workers and the scheduler itself at seeded random points while two workloads on two datasets share
the workers; a restart finishes both with every epoch's metrics exactly once, the MOP invariants per workload,
and an intact, hash-verified checkpoint chain."""

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import psutil
import pytest
from sqlalchemy import func, select

from hopper.engine.store import CheckpointRow, ConfigRow, MetricRow, SubEpochRow
from hopper.mop_scheduler.worker.checkpoints import file_sha256

pytestmark = pytest.mark.slow

EPOCHS, ROUNDS = 4, 3
METRICS = {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "params", "epoch_seconds"}


def _running_sub_epochs(services, after: int = 0):
    """A sub-epoch running now, started after sub-epoch ``after`` (a killed scheduler leaves its own "running"
    until the next one recovers them)."""
    with services.store.session() as s:
        return s.scalar(select(SubEpochRow.id).where(SubEpochRow.outcome == "running", SubEpochRow.id > after)
                        .limit(1))


def _last_sub_epoch(services) -> int:
    with services.store.session() as s:
        return s.scalar(select(func.max(SubEpochRow.id))) or 0


def _workers(scheduler: psutil.Process) -> list[psutil.Process]:
    """The scheduler's training workers: the children multiprocessing spawned to run the worker loop (their
    command line calls ``spawn_main``), never its resource tracker (``resource_tracker import main``) nor
    anything else it may start."""
    workers = []
    for child in scheduler.children():
        try:
            command = " ".join(child.cmdline())
        except psutil.Error:
            continue  # gone already
        if "multiprocessing.spawn import spawn_main" in command and "resource_tracker" not in command:
            workers.append(child)
    return workers


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _wine(services, settings):
    import numpy as np
    from sklearn.datasets import load_wine

    wine = load_wine()
    path = settings.data_roots[0] / "wine.npz"
    np.savez(path, x=((wine.data - wine.data.mean(0)) / wine.data.std(0)).astype(np.float32), y=wine.target)
    return services.register_dataset({"name": "wine", "path": str(path)})


def test_kill_9_workers_and_scheduler_then_restart(services, digits, settings):
    rng = random.Random(20261125)
    workload = services.launch_workload({
        "name": "crash", "model": "mlp", "dataset": "digits", "max_epochs": EPOCHS,
        "space": {"lr": {"type": "choice", "values": [0.003, 0.01]}, "units": {"type": "choice", "values": [32, 64]}}})
    # a second workload, on another dataset, shares the two workers throughout (fair share between the two)
    beside = services.launch_workload({
        "name": "beside", "model": "mlp", "dataset": _wine(services, settings).id, "max_epochs": EPOCHS,
        "space": {"lr": {"type": "choice", "values": [0.003, 0.01]}, "units": 16}})
    env = {**os.environ, "HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
           "HOPPER_DATA_ROOTS": str(settings.data_roots[0]), "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir),
           "HOPPER_POLL_INTERVAL": "0.05"}
    command = [sys.executable, "-m", "hopper.cli", "scheduler"]
    kills = {"worker": 0, "scheduler": 0}
    for round_ in range(ROUNDS):
        log_path = settings.home / f"scheduler-{round_}.log"
        last = _last_sub_epoch(services)
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
        _wait(lambda last=last: _running_sub_epochs(services, last), 120, "a sub-epoch of this scheduler to start")
        time.sleep(rng.uniform(0.0, 0.4))
        workers = _workers(psutil.Process(proc.pid))
        assert len(workers) == 2, [" ".join(c.cmdline()) for c in psutil.Process(proc.pid).children()]
        if rng.random() < 0.8:
            victim = rng.choice(workers).pid
            os.kill(victim, signal.SIGKILL)
            kills["worker"] += 1
            # the scheduler itself names the process it lost as one of its workers
            _wait(lambda v=victim, p=log_path: f"worker process {v} exited with code -9" in p.read_text(), 60,
                  f"the scheduler to report worker {victim} lost")
            last = _last_sub_epoch(services)
            _wait(lambda last=last: _running_sub_epochs(services, last), 120, "work to resume after the worker kill")
            time.sleep(rng.uniform(0.0, 0.4))
        workers = _workers(psutil.Process(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        kills["scheduler"] += 1
        # orphaned workers notice their scheduler is gone and exit on their own
        _wait(lambda ws=workers: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in ws), 20,
              "orphaned workers to exit")
    assert services.get_workload(workload.id).status == "running"
    assert services.get_workload(beside.id).status in ("running", "done")

    final = subprocess.run([*command, "--until-done", "--timeout", "400"], env=env, capture_output=True, text=True,
                           timeout=500)
    assert final.returncode == 0, final.stderr[-2000:]
    assert kills["scheduler"] == ROUNDS and kills["worker"] >= 1

    every = services.list_configs(workload.id) + services.list_configs(beside.id)
    assert services.get_workload(workload.id).status == "done" and services.get_workload(beside.id).status == "done"
    # A config whose worker the kills hit three times in a row before it committed anything is given up on, as
    # the loss policy says (fault/test_give_up_paths.py); at most one may meet that fate, every other one trains
    # to the end, and none loses or doubles anything below.
    configs = [c for c in every if c.status == "done"]
    gave_up = [c for c in every if c.status == "failed" and "died 3 times in a row" in (c.error or "")]
    assert len(configs) + len(gave_up) == len(every) and len(gave_up) <= 1, [
        (c.id, c.status, c.epochs_done, c.error) for c in every]
    assert all(c.epochs_done == EPOCHS for c in configs)
    with services.store.session() as s:
        metrics = Counter((m.config_id, m.epoch, m.name) for m in s.scalars(select(MetricRow)))
        assert set(metrics.values()) == {1}, "a metric row was duplicated"
        assert set(metrics) == {(c.id, e, n) for c in configs for e in range(EPOCHS) for n in METRICS}
        log = list(s.scalars(select(SubEpochRow).order_by(SubEpochRow.id)))
        # per workload: every config visits each of its dataset's partitions exactly once per epoch
        visits = Counter((x.config_id, x.epoch, x.partition) for x in log if x.outcome == "ok")
        assert not any(x.outcome == "ok" for x in log if x.config_id in {c.id for c in gave_up})
        assert set(visits.values()) == {1}
        assert set(visits) == {(c.id, e, p) for c in configs for e in range(EPOCHS) for p in (0, 1)}
        assert any(x.outcome == "lost" for x in log), "the kills interrupted sub-epochs"
        for config in s.scalars(select(ConfigRow).where(ConfigRow.id.in_([c.id for c in configs]))):
            chain = [x for x in log if x.config_id == config.id and x.outcome == "ok"]
            for previous, current in zip(chain, chain[1:], strict=False):
                assert current.input_checkpoint_id == previous.output_checkpoint_id
            kept = list(s.scalars(select(CheckpointRow).where(CheckpointRow.config_id == config.id,
                                                               CheckpointRow.epoch_end.is_(True))))
            assert [k.epoch for k in sorted(kept, key=lambda k: k.seq)] == list(range(EPOCHS))
            for ck in kept + [s.get(CheckpointRow, config.current_checkpoint_id)]:
                assert not ck.path.endswith(".partial")
                assert file_sha256(ck.path) == ck.sha256
