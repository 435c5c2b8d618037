"""Steering and executor loss on the Spark backend: the local backend's scenario, run on a real cluster."""

from collections import Counter

import pytest
from sqlalchemy import select

from hopper.engine.store import MetricRow
from tests.integration.test_steering import steering_scenario
from tests.support.running import RunningScheduler

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_steering_on_spark(services, digits, spark_backend):
    """Stop, add, clone, resume, drill down, and SIGKILL of a task's Python worker, as on the local backend."""
    steering_scenario(services, lambda: RunningScheduler(services, backend=spark_backend()))


def test_a_killed_spark_worker_jvm_loses_nothing(services, digits, spark_backend, spark_cluster):
    epochs = 2
    workload = services.launch_workload({
        "name": "jvm-kill", "model": "mlp", "dataset": "digits", "procedure": "grid", "max_epochs": epochs,
        "space": {"lr": {"type": "choice", "values": [0.003, 0.01]}, "units": {"type": "choice", "values": [32, 64]}},
    })
    with RunningScheduler(services, backend=spark_backend()) as running:
        scheduler = running.scheduler
        running.wait_for(lambda: scheduler.stats["committed"] >= 2 and scheduler.backend.in_flight(), 300,
                         "training under way on both workers")
        spark_cluster.kill_worker(1)  # the worker JVM and the executor it launched, mid-sub-epoch
        try:
            running.wait_for(lambda: scheduler.stats["lost"] >= 1, 120, "the lost sub-epoch to be noticed")
        finally:
            spark_cluster.restart_worker(1)  # as a supervisor (or docker-compose's restart policy) would
        running.wait_for(lambda: services.get_workload(workload.id).status == "done", 400, "the workload to finish")
        jobs = scheduler.backend.jobs_started

    assert jobs >= 2, "the barrier job was restarted"
    configs = services.list_configs(workload.id)
    assert all(c.status == "done" and c.epochs_done == epochs for c in configs)
    log = services.list_sub_epochs(workload.id)
    assert any(s.outcome == "lost" for s in log)
    visits = Counter((s.config_id, s.epoch, s.partition) for s in log if s.outcome == "ok")
    assert set(visits) == {(c.id, e, p) for c in configs for e in range(epochs) for p in (0, 1)}
    assert set(visits.values()) == {1}
    with services.store.session() as session:
        rows = list(session.scalars(select(MetricRow).where(MetricRow.config_id.in_([c.id for c in configs]))))
    per_key = Counter((m.config_id, m.epoch, m.name) for m in rows)
    assert set(per_key.values()) == {1}
    assert {(c, e) for c, e, n in per_key if n == "val_accuracy"} == {(c.id, e) for c in configs for e in range(epochs)}
