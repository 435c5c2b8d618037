"""Elastic workers on the Spark standalone cluster: one run that starts with one barrier task, gets a second
through ``hopper workers add`` (the barrier job is resubmitted with W = 2), then loses an executor that does not
come back (its worker JVM killed and left down): after the grace setting W shrinks to 1 instead of waiting
forever, and the workload finishes. The MOP invariant over shards holds throughout, from the sub-epoch log."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.running import RunningScheduler

pytestmark = [pytest.mark.spark, pytest.mark.slow]

EPOCHS = 3


def test_spark_grows_by_resubmitting_and_shrinks_when_an_executor_stays_lost(tmp_path, spark_session, spark_cluster):
    from hopper.app import open_services
    from hopper.engine.demo import ensure_digits
    from hopper.mop_scheduler.backends.spark import SparkBackend
    from tests.conftest import make_settings

    settings = make_settings(tmp_path / "home", workers=1, max_workers=2)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    ensure_digits(services)
    assert services.get_dataset("digits").partition_count == 2  # cut for the largest pool
    workload = services.launch_workload({
        "name": "spark-elastic", "model": "mlp", "dataset": "digits", "procedure": "grid", "max_epochs": EPOCHS,
        "space": {"lr": {"type": "choice", "values": [0.003, 0.01]}, "units": 16},
    })
    backend = SparkBackend(1, spark=spark_session, driver_host="127.0.0.1", heartbeat_timeout=20.0,
                           lost_executor_grace=15.0,
                           allowed_roots=(*map(str, settings.data_roots), str(settings.artifact_dir)))

    def ok_on(prefix: str) -> int:
        return sum(1 for v in services.store.schedule.shard_visits(workload.id)
                   if v.worker.startswith(prefix) and v.outcome == "ok")

    try:
        with RunningScheduler(services, backend=backend) as running:
            running.wait_for(lambda: ok_on("spark-0@") >= 1, 300, "the single task's first sub-epoch")
            services.add_workers(1, actor="test")
            running.wait_for(lambda: ok_on("spark-1@") >= 1, 300, "the second task's first sub-epoch")
            jobs_after_add = backend.jobs_started
            spark_cluster.kill_worker(1)  # and never restarted while the run goes on
            running.wait_for(lambda: backend.n_workers == 1, 300, "W to shrink after the grace period")
            running.wait_for(lambda: services.get_workload(workload.id).status == "done", 400,
                             "the workload to finish on the remaining executor")
    finally:
        spark_cluster.restart_worker(1)  # the cluster is shared with the other Spark tests

    assert jobs_after_add >= 2 and backend.jobs_started > jobs_after_add, "resubmitted for each new W"
    configs = services.list_configs(workload.id)
    assert all(c.status == "done" and c.epochs_done == EPOCHS for c in configs)
    visits = services.store.schedule.shard_visits(workload.id)
    ok = Counter((v.config_id, v.epoch, s) for v in visits if v.outcome == "ok" for s in v.shards)
    assert set(ok.values()) == {1}, "a shard was trained twice in one epoch"
    assert set(ok) == {(c.id, e, s) for c in configs for e in range(EPOCHS) for s in (0, 1)}
    assert any(len(v.shards) == 2 for v in visits if v.outcome == "ok"), "one task alone trains both shards at once"
    metrics = services.workload_metrics(workload.id, "val_accuracy")
    assert {cid: sorted(r["epoch"] for r in rows) for cid, rows in metrics.items()} == {
        c.id: list(range(EPOCHS)) for c in configs}
