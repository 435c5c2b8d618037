"""Steering a running workload: stop, resume, add, clone, drill down, a failing config, a killed worker.

Everything runs against the real scheduler and real worker processes; assertions read the store.
"""

import os
import signal
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from hopper.engine.store import EventRow, MetricRow, SubEpochRow, utcnow
from tests.integration.conftest import SQLITE_ONLY
from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

SPACE = {"lr": {"type": "choice", "values": [0.003, 0.01]}, "units": 64, "batch_size": 16}
EPOCHS = 4


def _metric(services, config_id, name):
    info = services.get_config(config_id)
    return {m["epoch"]: m["value"] for m in info.metrics if m["name"] == name}


def _sub_epochs(services, config_id):
    return services.list_sub_epochs(config_id=config_id)


def test_steering_while_running(services, digits):
    steering_scenario(services, lambda: RunningScheduler(services))


def steering_scenario(services, start_scheduler):
    """Stop, add, a failing config, kill -9 a worker, resume, clone, drill down; shared with the Spark tests."""
    workload = services.launch_workload({"name": "steer", "model": "mlp", "dataset": "digits", "procedure": "grid",
                                         "space": SPACE, "max_epochs": EPOCHS})
    wid = workload.id
    with start_scheduler() as running:
        wait = running.wait_for
        configs = wait(lambda: services.list_configs(wid), what="the grid's configs")
        a, b = configs[0].id, configs[1].id

        # -- stop: takes effect at the end of the running sub-epoch --------------------------------------
        wait(lambda: services.get_config(a).epochs_done >= 1, what="config a's first epoch")
        wait(lambda: any(s.outcome == "running" for s in _sub_epochs(services, a)), what="a mid-sub-epoch")
        stopped_at = utcnow()
        services.stop_config(a)
        wait(lambda: all(s.outcome != "running" for s in _sub_epochs(services, a)), what="a's sub-epoch to end")
        in_flight = [s for s in _sub_epochs(services, a) if s.started_at <= stopped_at and s.finished_at >= stopped_at]
        assert in_flight and all(s.outcome == "ok" for s in in_flight), "the running sub-epoch is committed"
        epochs_at_stop = services.get_config(a).epochs_done

        # -- add: a person's config starts within one sub-epoch --------------------------------------------
        added_at = utcnow()
        added = services.add_config(wid, {"lr": 0.005, "units": 32, "batch_size": 16})
        first = wait(lambda: [s for s in _sub_epochs(services, added.id)], what="the added config to start")[0]
        others_started_between = [s for s in services.list_sub_epochs(wid)
                                  if added_at <= s.started_at < first.started_at and s.config_id != added.id]
        assert len(others_started_between) <= 1

        # -- a failing config fails alone, with the reason -------------------------------------------------
        garbage = services.settings.data_roots[0] / "garbage.weights.h5"
        garbage.write_bytes(b"these are not weights")
        broken = services.add_config(wid, {"lr": 0.01, "units": 32, "batch_size": 16, "weights_path": str(garbage)})
        wait(lambda: services.get_config(broken.id).status == "failed", what="the broken config to fail")
        error = services.get_config(broken.id).error
        assert "file signature not found" in error, error

        # -- kill -9 a worker mid-sub-epoch: the sub-epoch is re-run, nothing is lost or doubled ----------
        wait(lambda: running.scheduler.backend.in_flight(), what="a busy worker")
        victim = next(iter(running.scheduler.backend.in_flight()))
        os.kill(running.scheduler.backend.worker_pids()[victim], signal.SIGKILL)
        wait(lambda: running.scheduler.stats["lost"] >= 1, what="the lost sub-epoch to be noticed")

        # no sub-epoch of the stopped config started after the stop
        assert all(s.started_at <= stopped_at for s in _sub_epochs(services, a))
        assert services.get_config(a).epochs_done == epochs_at_stop

        # -- resume: continues from the last checkpoint ----------------------------------------------------
        services.resume_config(a)
        wait(lambda: services.get_config(a).status == "done", 240, "a to finish after resuming")
        losses = _metric(services, a, "train_loss")
        assert sorted(losses) == list(range(EPOCHS))
        assert losses[epochs_at_stop] < losses[0], "resumed from the checkpoint, not from scratch"

        # -- clone with a tiny learning rate: only carried-over weights can score well ----------------------
        wait(lambda: services.get_config(b).epochs_done >= 2, what="b's second epoch")
        source_acc = _metric(services, b, "val_accuracy")
        clone = services.clone_config(b, {"lr": 1e-6})
        assert clone.origin == "clone" and clone.cloned_from_config_id == b and clone.hparams["lr"] == 1e-6
        wait(lambda: services.get_config(clone.id).epochs_done >= 1, what="the clone's first epoch")
        clone_acc = _metric(services, clone.id, "val_accuracy")[0]
        assert clone_acc >= max(source_acc.values()) - 0.05 and clone_acc > 0.8
        assert "warm start: 6/6" in services.get_config(clone.id).notes

        # -- drill down: child workload on a narrower space, linked and warm-started ------------------------
        child = services.drill_down(b, {"lr": {"type": "choice", "values": [0.003]}, "units": 64,
                                        "batch_size": 16}, max_epochs=1)
        assert child.parent_workload_id == wid and child.parent_config_id == b
        wait(lambda: services.get_workload(child.id).status == "done", 240, "the child workload")
        (child_config,) = services.list_configs(child.id)
        assert child_config.latest_metrics["val_accuracy"] > 0.85
        assert "warm start" in child_config.notes

        wait(lambda: services.get_workload(wid).status == "done", 300, "the parent workload to finish")

    # exactly one metric row per (config, epoch, name); every finished config has all its epochs
    with services.store.session() as session:
        rows = list(session.scalars(select(MetricRow)))
        assert set(Counter((m.config_id, m.epoch, m.name) for m in rows).values()) == {1}
        lost = list(session.scalars(select(SubEpochRow).where(SubEpochRow.outcome == "lost")))
        actions = [e.action for e in session.scalars(select(EventRow).order_by(EventRow.id))]
    assert lost, "the killed worker's sub-epoch is logged as lost"
    for config in services.list_configs(wid):
        if config.status == "done":
            assert config.epochs_done == EPOCHS
            assert len(_metric(services, config.id, "val_accuracy")) == EPOCHS
    for action in ("launch_workload", "stop_config", "add_config", "resume_config", "clone_config"):
        assert action in actions


@SQLITE_ONLY
def test_epoch_barrier_keeps_epochs_in_lockstep(services, digits):
    workload = services.launch_workload({"name": "barrier", "model": "mlp", "dataset": "digits",
                                         "space": {"lr": {"type": "choice", "values": [0.001, 0.003, 0.01]},
                                                   "units": 32}, "max_epochs": 2})
    with RunningScheduler(services, epoch_barrier=True) as running:
        running.wait_for(lambda: services.get_workload(workload.id).status == "done", 240, "the workload")
    log = sorted((s for s in services.list_sub_epochs(workload.id) if s.outcome == "ok"), key=lambda s: s.started_at)
    last_epoch0_end = max(s.finished_at for s in log if s.epoch == 0)
    first_epoch1_start = min(s.started_at for s in log if s.epoch == 1)
    assert first_epoch1_start >= last_epoch0_end - timedelta(milliseconds=5)


@SQLITE_ONLY
def test_priority_decides_who_gets_the_next_free_worker(services, digits):
    workload = services.launch_workload({"name": "prio", "model": "mlp", "dataset": "digits", "procedure": "manual",
                                         "max_epochs": 1})
    low = [services.add_config(workload.id, {"lr": 0.01}) for _ in range(3)]
    high = services.add_config(workload.id, {"lr": 0.01}, priority=5)
    boosted = services.set_priority(low[2].id, 10)
    assert boosted.version == low[2].version + 1
    with RunningScheduler(services) as running:
        running.wait_for(lambda: services.get_workload(workload.id).status == "done", 240, "the workload")
    starts = {c: min(s.started_at for s in services.list_sub_epochs(config_id=c)) for c in
              (low[0].id, low[1].id, low[2].id, high.id)}
    order = sorted(starts, key=starts.get)
    assert set(order[:2]) == {low[2].id, high.id}
