"""kill -9 the scheduler of a private workload mid-run and restart it: every epoch's epsilon equals what the
committed DP blocks give, and equals the no-crash value (a lost sub-epoch is neither counted nor doubled)."""

import math
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from sqlalchemy import select

from hopper.engine import privacy
from hopper.engine.data import read_partition
from hopper.engine.store import MetricRow, SubEpochRow

pytestmark = pytest.mark.slow

EPOCHS, DELTA, BATCH, SIGMA = 2, 1e-5, 64, 1.1


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _count(services, outcome):
    with services.store.session() as s:
        return len(s.scalars(select(SubEpochRow.id).where(SubEpochRow.outcome == outcome)).all())


def test_kill_9_the_scheduler_of_a_private_workload(services, digits, settings):
    workload = services.launch_workload({
        "name": "private-crash", "model": "mlp", "dataset": "digits", "max_epochs": EPOCHS,
        "space": {"lr": {"type": "choice", "values": [0.01, 0.03]}, "units": {"type": "fixed", "value": 32},
                  "batch_size": {"type": "fixed", "value": BATCH}},
        "privacy": {"noise_multiplier": SIGMA, "delta": DELTA}})
    env = {**os.environ, "HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
           "HOPPER_DATA_ROOTS": str(settings.data_roots[0]), "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir),
           "HOPPER_POLL_INTERVAL": "0.05"}
    command = [sys.executable, "-m", "hopper.cli", "scheduler"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # kill once some sub-epochs are committed and others are running: those are lost and re-run
    _wait(lambda: _count(services, "ok") >= 1 and _count(services, "running") >= 1, 180, "a commit, then a start")
    workers = psutil.Process(proc.pid).children()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    _wait(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), 30,
          "orphaned workers to exit")
    assert services.get_workload(workload.id).status == "running"
    final = subprocess.run([*command, "--until-done", "--timeout", "300"], env=env, capture_output=True, text=True,
                           timeout=400)
    assert final.returncode == 0, final.stderr[-2000:]

    layout = services.store.datasets.layout(digits.id)
    rows = {p: len(read_partition(path, layout.feature_shape)[1]) for p, path in enumerate(layout.partition_paths)}
    configs = services.list_configs(workload.id)
    assert all(c.status == "done" and c.epochs_done == EPOCHS for c in configs)
    with services.store.session() as s:
        log = list(s.scalars(select(SubEpochRow).order_by(SubEpochRow.id)))
        assert any(x.outcome == "lost" for x in log), "the kill interrupted a sub-epoch"
        assert all(x.dp_steps is None for x in log if x.outcome != "ok"), "a lost sub-epoch recorded a DP block"
        for config in configs:
            ok = [x for x in log if x.config_id == config.id and x.outcome == "ok"]
            assert len(ok) == EPOCHS * len(rows)
            eps = [m.value for m in s.scalars(select(MetricRow).where(
                MetricRow.config_id == config.id, MetricRow.name == "epsilon").order_by(MetricRow.epoch))]
            assert len(eps) == EPOCHS
            for epoch in range(EPOCHS):
                # from the committed rows...
                committed = max(privacy.epsilon_of_events(
                    [(x.dp_q, x.dp_sigma, x.dp_steps) for x in ok if x.partition == p and x.epoch <= epoch], DELTA)
                    for p in rows)
                # ...and from first principles: (epoch + 1) visits per partition, no more
                clean = max(privacy.epsilon(BATCH / n, SIGMA, (epoch + 1) * math.ceil(n / BATCH), DELTA)
                            for n in rows.values())
                assert eps[epoch] == pytest.approx(committed, rel=1e-9)
                assert eps[epoch] == pytest.approx(clean, rel=1e-9)
