"""ASHA and PBT with real training on digits, in one scheduler that is killed with kill -9 mid-run and restarted:
ASHA pauses configs at rungs (in the store, the decision log and the audit log), no paused config starts its
next epoch unless promoted, the restarted scheduler applies exactly what the rebuilt procedure decides; PBT's
exploits start from their source's weights (their first epoch scores near the source)."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from sqlalchemy import select

from hopper.engine.search import decisions_for
from hopper.engine.store import DecisionRow, EventRow, SubEpochRow, WorkloadRow
from hopper.engine.store.workloads import observations

pytestmark = pytest.mark.slow

MAX_EPOCHS = 2


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _decisions(services, workload_id, kind=None):
    return [d for d in services.list_decisions(workload_id) if kind is None or d.kind == kind]


def _rebuilt_decisions(services, workload_id):
    """What the workload's procedure, rebuilt from the store as it is now, decides (whatever its status)."""
    with services.store.session() as s:
        from hopper.engine.entities import WorkloadInfo

        info = WorkloadInfo.from_row(s.get(WorkloadRow, workload_id))
        return decisions_for(info, observations(s, workload_id))


def test_asha_and_pbt_decide_with_real_training_and_survive_kill_9(services, digits, settings):
    asha = services.launch_workload({
        "name": "asha", "model": "mlp", "dataset": "digits", "procedure": "asha", "max_epochs": MAX_EPOCHS,
        "max_configs": 4, "procedure_options": {"eta": 2, "min_epochs": 1}, "seed": 3,
        "objectives": {"val_accuracy": "max", "params": "min"},
        "space": {"lr": {"type": "loguniform", "low": 3e-4, "high": 3e-2}, "units": {"type": "choice",
                                                                                     "values": [8, 32]},
                  "layers": 1}}).id
    pbt = services.launch_workload({
        "name": "pbt", "model": "mlp", "dataset": "digits", "procedure": "pbt", "max_epochs": MAX_EPOCHS,
        "procedure_options": {"population": 2, "interval": 1, "resample_probability": 0.0}, "seed": 5,
        "space": {"lr": {"type": "choice", "values": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]}, "units": 32,
                  "layers": 1}}).id
    env = {**os.environ, "HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
           "HOPPER_DATA_ROOTS": str(settings.data_roots[0]), "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir),
           "HOPPER_POLL_INTERVAL": "0.05"}
    command = [sys.executable, "-m", "hopper.cli", "scheduler"]

    # -- first scheduler: killed with kill -9 right after ASHA's first decision at a rung ----------------------
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: _decisions(services, asha), 300, "ASHA's first decision at a rung")
    finally:
        workers = psutil.Process(proc.pid).children()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    _wait(lambda: not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers), 30,
          "orphaned workers to exit")
    before_restart = {d.key for d in _decisions(services, asha) + _decisions(services, pbt)}
    owed = {d.key for wid in (asha, pbt) for d in services.procedure_decisions(wid)}

    # -- restart: finishes both workloads ------------------------------------------------------------------------
    final = subprocess.run([*command, "--until-done", "--timeout", "400"], env=env, capture_output=True, text=True,
                           timeout=500)
    assert final.returncode == 0, final.stderr[-3000:]
    assert services.get_workload(asha).status == "done" and services.get_workload(pbt).status == "done"

    # -- restart equivalence: what was applied stays, what was owed got applied, nothing is owed now -------------
    applied = {d.key for d in _decisions(services, asha) + _decisions(services, pbt)}
    assert before_restart <= applied and owed <= applied
    for wid in (asha, pbt):
        assert {d.key for d in _rebuilt_decisions(services, wid)} <= applied, "a rebuilt procedure decides the same"

    # -- ASHA: pauses at rungs, in the store, the decision log and the audit log ---------------------------------
    configs = {c.id: c for c in services.list_configs(asha)}
    pauses = _decisions(services, asha, "pause")
    assert pauses, "with eta 2, some config must lose a rung"
    assert all(d.actor == "procedure:asha" and d.reason.startswith("asha: rung ") for d in pauses)
    promoted = {d.config_id: d for d in _decisions(services, asha, "promote") if d.key.endswith(":promote")}
    still_paused = [c for c in configs.values() if c.status == "paused"]
    assert still_paused, "a paused config that was never promoted stays paused at the end of the search"
    with services.store.session() as s:
        events = list(s.scalars(select(EventRow).where(EventRow.action == "pause_config")))
        assert {e.object_id for e in events} == {d.config_id for d in pauses}
        assert all(e.actor == "procedure:asha" and e.after["status"] == "paused" and e.after["reason"]
                   for e in events)
        for d in pauses:
            rung_epoch = int(d.reason.split("(epoch ")[1].split(")")[0])
            later = list(s.scalars(select(SubEpochRow).where(SubEpochRow.config_id == d.config_id,
                                                             SubEpochRow.epoch >= rung_epoch)))
            if d.config_id in promoted:
                assert all(x.started_at >= promoted[d.config_id].at for x in later)
            else:
                assert later == [], f"config {d.config_id} was paused at epoch {rung_epoch} but trained on"
                assert configs[d.config_id].epochs_done == rung_epoch
        assert s.scalar(select(DecisionRow.id).where(DecisionRow.workload_id == asha).limit(1))

    # -- PBT: exploits continue from their source's weights -------------------------------------------------------
    exploits = _decisions(services, pbt, "exploit")
    assert exploits, "the bottom of a population of 2 exploits the top"
    for d in exploits:
        clone = services.get_config(d.result_config_id)
        target = services.get_config(d.config_id)
        assert clone.cloned_from_config_id == d.source_config_id and clone.origin == "clone"
        assert target.status == "stopped" and d.actor == "procedure:pbt"
        accuracy = {m["epoch"]: m["value"] for m in clone.metrics if m["name"] == "val_accuracy"}
        first = min(accuracy)
        assert first >= 1, "the clone goes on from its source's epoch count, not from scratch"
        source = {m["epoch"]: m["value"] for m in services.get_config(d.source_config_id).metrics
                  if m["name"] == "val_accuracy"}
        assert accuracy[first] > source[first - 1] - 0.1, (accuracy, source)
