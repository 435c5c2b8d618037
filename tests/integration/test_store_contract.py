"""The store's contract, through its named methods only, on SQLite and on PostgreSQL (as Optuna tests its
storages): the same calls must give the same entities and the same errors on both."""

from __future__ import annotations

import pytest

from hopper.engine.entities import Proposal, SubEpochStats
from hopper.engine.errors import Conflict, InvalidState, NotFound, ValidationError
from hopper.engine.services.edge import metric_names
from hopper.engine.status import ConfigStatus, DeploymentStatus, JobStatus, SubEpochOutcome, WorkloadStatus

GRID = [{"lr": 0.1}, {"lr": 0.01}]


def _dataset(store, name="d", partitions=2):
    return store.datasets.add(
        actor="t", name=name, source_path="/x", format="npz", feature_columns=["x"], label_column="y",
        task="classification", n_rows=10, n_train=8, n_validation=2, feature_shape=[4], classes=[0, 1],
        partition_count=partitions, partition_paths=[f"p{i}" for i in range(partitions)], validation_path="v",
        schema={"feature_dtype": "float32"})


def _workload(store, dataset_id, proposals=GRID, max_epochs=1, **extra):
    return store.workloads.create(
        actor="alice", spec_record={"name": "w"}, propose=lambda w, configs: Proposal(list(proposals)),
        name="w", description="", procedure="grid", search_space={"lr": {"type": "choice", "values": [0.1, 0.01]}},
        objectives=[{"metric": "val_accuracy", "direction": "max"}], max_epochs=max_epochs, max_configs=None,
        seed=3, dataset_id=dataset_id, model_ref="mlp", script_id=None, parent_workload_id=None,
        parent_config_id=None, warm_start_checkpoint_id=None, export_top_k=None, **extra)


def _train_epoch(store, config_id, n=2, accuracy=0.5):
    """Start and commit one sub-epoch per partition; returns the last commit."""
    done = None
    for partition in range(n):
        start = store.schedule.start_sub_epoch(config_id, partition, f"w{partition}", n_partitions=n,
                                               layouts={}, scripts={})
        done = store.schedule.commit_ok(
            sub_epoch_id=start.sub_epoch_id, config_id=config_id, n_partitions=n,
            checkpoint_path=f"/ck/{config_id}-{start.epoch}-{partition}", checkpoint_sha256="0" * 64,
            checkpoint_bytes=10, stats=SubEpochStats(4, 1.0, 0.25 * (partition + 1), 0.5, 0.01),
            val_metrics={"val_accuracy": accuracy} if partition == n - 1 else {},
            summarize=lambda subs, val: {"train_accuracy": sum(s.train_accuracy for s in subs) / len(subs), **val})
    return done


def test_datasets_and_scripts(migrated_store):
    store = migrated_store
    ds = _dataset(store)
    assert store.datasets.name_taken("d") and not store.datasets.name_taken("e")
    assert store.datasets.get("d") == store.datasets.get(ds.id) == store.datasets.list()[0]
    with pytest.raises(Conflict):
        _dataset(store)
    with pytest.raises(NotFound):
        store.datasets.get("nope")
    with pytest.raises(ValidationError):
        store.datasets.get(999, referenced=True)
    layout = store.datasets.layout(ds.id)
    assert layout.partition_paths == ("p0", "p1") and layout.n_outputs == 2
    script = store.scripts.add(name="s.py", sha256="a" * 64, path="/srv/s.py", entry_point="build", kind="hp",
                               valid=True, validation={"ok": True}, actor="bob", message="ok")
    assert store.scripts.get(script.id).entry_point == "build"
    assert store.scripts.location(script.id) == ("/srv/s.py", "build")
    assert [e.action for e in store.events.list()] == ["upload_script", "register_dataset", "register_dataset"][:2]


def test_workload_lifecycle_and_the_transition_table(migrated_store):
    store = migrated_store
    wl = _workload(store, _dataset(store).id)
    assert wl.status == WorkloadStatus.RUNNING and wl.owner == "alice"
    configs, total = store.configs.page(wl.id)
    assert total == 2 and {c.status for c in configs} == {ConfigStatus.QUEUED}
    assert store.workloads.get(wl.id).config_counts == {"queued": 2}
    store.workloads.set_status(wl.id, WorkloadStatus.PAUSED, action="pause_workload", actor="alice")
    assert store.schedule.runnable() == []  # a paused workload offers nothing
    with pytest.raises(InvalidState, match="it is paused"):
        store.workloads.set_status(wl.id, WorkloadStatus.PAUSED, action="pause_workload", actor="alice")
    store.workloads.set_status(wl.id, WorkloadStatus.RUNNING, action="resume_workload", actor="alice")
    assert len(store.schedule.runnable()) == 2
    for c in configs:
        _train_epoch(store, c.id)
    assert {store.configs.get(c.id).status for c in configs} == {ConfigStatus.DONE}
    assert store.workloads.finish_idle([wl.id]) == [wl.id]
    assert store.workloads.get(wl.id).status == WorkloadStatus.DONE
    assert not store.workloads.any_running([wl.id])
    with pytest.raises(InvalidState):
        store.workloads.set_status(wl.id, WorkloadStatus.PAUSED, action="pause_workload", actor="alice")
    # raising max_epochs queues done configs again and reopens the workload
    store.workloads.update_budget(wl.id, actor="alice", max_epochs=2)
    assert store.workloads.get(wl.id).status == WorkloadStatus.RUNNING
    assert {store.configs.get(c.id).status for c in configs} == {ConfigStatus.QUEUED}
    store.workloads.fail(wl.id, "procedure failed: boom")
    with pytest.raises(InvalidState):
        store.configs.add(wl.id, {"lr": 1.0}, priority=0, origin="user", actor="a", action="add_config")


def test_config_steering_versions_and_audit(migrated_store):
    store = migrated_store
    wl = _workload(store, _dataset(store).id)
    config = store.configs.page(wl.id)[0][0]
    stopped = store.configs.transition(config.id, ConfigStatus.STOPPED, action="stop", actor="alice",
                                       expected_version=config.version)
    assert stopped.status == ConfigStatus.STOPPED and stopped.version == config.version + 1
    with pytest.raises(InvalidState, match=f"cannot stop config {config.id}: it is stopped"):
        store.configs.transition(config.id, ConfigStatus.STOPPED, action="stop", actor="alice")
    with pytest.raises(Conflict):
        store.configs.set_priority(config.id, 5, actor="alice", expected_version=config.version)
    resumed = store.configs.transition(config.id, ConfigStatus.QUEUED, action="resume", actor="alice")
    assert resumed.status == ConfigStatus.QUEUED
    assert store.configs.set_priority(config.id, 5, actor="bob").priority == 5
    clone = store.configs.add(wl.id, {"lr": 0.5}, priority=1, origin="clone", actor="bob", action="clone_config",
                              cloned_from=config.id, source_version=resumed.version + 1)
    assert clone.cloned_from_config_id == config.id
    with pytest.raises(Conflict):  # the source moved on since that version was read
        store.configs.add(wl.id, {"lr": 0.5}, priority=1, origin="clone", actor="bob", action="clone_config",
                          cloned_from=config.id, source_version=1)
    actions = [(e.actor, e.action) for e in store.events.list(object_type="config")]
    assert actions[:4] == [("bob", "clone_config"), ("bob", "set_priority"), ("alice", "resume_config"),
                           ("alice", "stop_config")]
    with pytest.raises(NotFound):
        store.configs.get(10**6)


def test_schedule_commits_epochs_once_and_refuses_stale_results(migrated_store):
    store = migrated_store
    wl = _workload(store, _dataset(store).id, proposals=[{"lr": 0.1}], max_epochs=2)
    config_id = store.configs.page(wl.id)[0][0].id
    store.schedule.start_sub_epoch(config_id, 0, "w0", n_partitions=2, layouts={}, scripts={})
    assert store.configs.get(config_id).status == ConfigStatus.RUNNING
    assert store.schedule.start_sub_epoch(config_id, 0, "w0", n_partitions=3, layouts={}, scripts={}) is None
    assert store.workloads.get(wl.id).status == WorkloadStatus.FAILED  # 2 partitions for 3 workers
    assert "has 2 partitions but the scheduler runs 3 workers" in store.workloads.get(wl.id).error
    wl = _workload(store, store.datasets.get("d").id, proposals=[{"lr": 0.1}], max_epochs=2)
    config_id = store.configs.page(wl.id)[0][0].id
    done = _train_epoch(store, config_id, accuracy=0.7)
    assert done.committed and done.epoch_end and done.metrics["val_accuracy"] == 0.7
    assert done.metrics["train_accuracy"] == pytest.approx(0.375)
    config = store.configs.get(config_id)
    assert config.epochs_done == 1 and config.latest_metrics["val_accuracy"] == 0.7
    assert store.configs.latest_checkpoint(config_id).epoch_end
    # a duplicate report of an already committed sub-epoch changes nothing
    sub = store.schedule.list_sub_epochs(wl.id)[-1]
    stale = store.schedule.commit_ok(sub_epoch_id=sub.id, config_id=config_id, n_partitions=2, checkpoint_path="/x",
                                     checkpoint_sha256="0" * 64, checkpoint_bytes=1,
                                     stats=SubEpochStats(1, None, None, 0, 0), val_metrics={},
                                     summarize=lambda s, v: {})
    assert not stale.committed
    # failures and losses
    start = store.schedule.start_sub_epoch(config_id, 0, "w0", n_partitions=2, layouts={}, scripts={})
    assert store.schedule.commit_failed(sub_epoch_id=start.sub_epoch_id, config_id=config_id, detail="disk full",
                                        error="disk full", retryable=True, window=3) == 1
    assert store.configs.get(config_id).status == ConfigStatus.RUNNING
    start = store.schedule.start_sub_epoch(config_id, 0, "w0", n_partitions=2, layouts={}, scripts={})
    lost, visited = store.schedule.recover_interrupted()
    assert lost == 2 and visited == {}  # this one, and the first workload's that never finished
    assert store.schedule.list_sub_epochs(config_id=config_id)[-1].outcome == SubEpochOutcome.LOST
    assert not store.schedule.commit_lost(sub_epoch_id=start.sub_epoch_id, config_id=config_id, hung=False,
                                          reason="x", fatal=False, max_losses=3)
    start = store.schedule.start_sub_epoch(config_id, 0, "w0", n_partitions=2, layouts={}, scripts={})
    assert store.schedule.commit_lost(sub_epoch_id=start.sub_epoch_id, config_id=config_id, hung=True,
                                      reason="hung for 30 s", fatal=True, max_losses=3)
    config = store.configs.get(config_id)
    assert config.status == ConfigStatus.FAILED and config.error == "hung for 30 s"
    outcomes = [s.outcome for s in store.schedule.list_sub_epochs(config_id=config_id)]
    assert outcomes == ["ok", "ok", "failed", "lost", "timeout"]


def test_top_up_rebuilds_from_every_config_in_one_transaction(migrated_store):
    store = migrated_store
    wl = _workload(store, _dataset(store).id, proposals=[])
    seen = []

    def propose(workload, configs):
        seen.append(len(configs))
        return Proposal([{"lr": 0.5}], exhausted=len(configs) >= 1)

    assert store.workloads.top_up(wl.id, propose) is False
    assert store.workloads.top_up(wl.id, propose) is True
    assert seen == [0, 1] and store.configs.page(wl.id)[1] == 2


def test_edge_jobs_leases_and_profiles(migrated_store):
    store = migrated_store
    wl = _workload(store, _dataset(store).id, proposals=[{"lr": 0.1}])
    config_id = store.configs.page(wl.id)[0][0].id
    _train_epoch(store, config_id)
    checkpoint = store.configs.latest_checkpoint(config_id)
    export = store.edge.record_export(config_id=config_id, checkpoint_id=checkpoint.id, quantization="int8",
                                      path="/e.tflite", sha256="e" * 64, size=100, keras_accuracy=0.9,
                                      tflite_accuracy=0.88, seconds=1.0, actor="t")
    a = store.edge.register_device("pi-a", hardware={}, interpreter="ai-edge-litert", actor="agent", offline_after=90)
    b = store.edge.register_device("pi-b", hardware={}, interpreter="ai-edge-litert", actor="agent", offline_after=90)
    jobs = store.edge.enqueue_profiling(export.id, [a.id, None], max_attempts=2, runs=5, warmup=1, actor="t")
    assert [j.status for j in jobs] == [JobStatus.QUEUED, JobStatus.QUEUED]
    claimed_b = store.edge.claim_job(b.id, lease_seconds=60)
    assert claimed_b.id == jobs[1].id  # b may only take the job for any device
    assert store.edge.claim_job(b.id, lease_seconds=60) is None
    with pytest.raises(Conflict):  # a device cannot complete a job it does not hold
        store.edge.complete_job(claimed_b.id, a.id, {"latency_p50_ms": 1, "latency_p95_ms": 2,
                                                     "size_bytes": 100}, metric_names=metric_names)
    done = store.edge.complete_job(claimed_b.id, b.id, {"latency_p50_ms": 1.5, "latency_p95_ms": 2.0,
                                                        "size_bytes": 100}, metric_names=metric_names)
    assert done.metrics["edge_latency_ms@pi-b:int8"] == 1.5
    assert store.configs.get(config_id).latest_metrics["edge_latency_ms@pi-b:int8"] == 1.5
    claimed_a = store.edge.claim_job(a.id, lease_seconds=-1)  # a lease that has already run out
    assert store.edge.requeue_expired_jobs() == 1
    assert store.edge.get_job(claimed_a.id).status == JobStatus.QUEUED
    deployment = store.edge.add_deployment(config_id, fmt="tflite", name="m", host="127.0.0.1", port=None,
                                           actor="t", status=DeploymentStatus.REQUESTED)
    assert store.edge.claim_deployment().status == DeploymentStatus.STARTING
    assert store.edge.claim_deployment() is None
    stopping = store.edge.request_stop_deployment(deployment.id, actor="alice")
    assert stopping.status == DeploymentStatus.STOPPING
    # the server finishing its start-up after the stop was asked for does not undo the stop
    assert store.edge.mark_deployment(deployment.id, status=DeploymentStatus.RUNNING, port=9).status == \
        DeploymentStatus.STOPPING
    store.edge.mark_deployment(deployment.id, status=DeploymentStatus.STOPPED)
    with pytest.raises(InvalidState):  # a stopped deployment is not resurrected
        store.edge.mark_deployment(deployment.id, status=DeploymentStatus.RUNNING)
    with pytest.raises(InvalidState):
        store.edge.request_stop_deployment(deployment.id, actor="alice")
    assert [e.action for e in store.events.list(object_type="deployment")] == ["stop_deployment"]


def test_privacy_blocks_are_committed_with_their_sub_epoch_and_inherited_by_clones(migrated_store):
    """The DP-SGD columns round-trip on both databases; the epoch's epsilon comes from the committed blocks of
    the config and of its warm-start source up to the checkpoint it started from; the stop rule is terminal."""
    from hopper.engine import privacy

    store = migrated_store
    options = {"noise_multiplier": 1.0, "l2_norm_clip": 1.0, "target_epsilon": None, "delta": 1e-5,
               "microbatches": None, "accountant": "rdp", "partition_rows": [4]}
    wl = store.workloads.create(
        actor="alice", spec_record={"name": "p"}, propose=lambda w, configs: Proposal([{"lr": 0.1}]),
        name="p", description="", procedure="grid", search_space={"lr": {"type": "choice", "values": [0.1]}},
        objectives=[{"metric": "epsilon", "direction": "min"}], max_epochs=3, max_configs=None, seed=0,
        dataset_id=_dataset(store).id, model_ref="mlp", script_id=None, parent_workload_id=None,
        parent_config_id=None, warm_start_checkpoint_id=None, export_top_k=None, privacy=options,
        warnings=["privacy.delta is large"])
    assert store.workloads.get(wl.id).privacy == options
    assert store.workloads.get(wl.id).warnings == ["privacy.delta is large"]
    config_id = store.configs.page(wl.id)[0][0].id
    seen: list[dict] = []

    def account(events, opts):
        seen.append({p: list(e) for p, e in events.items()})
        return privacy.account(events, opts)

    def epoch(config, sigma):
        done = None
        for partition in range(2):
            start = store.schedule.start_sub_epoch(config, partition, f"w{partition}", n_partitions=2, layouts={},
                                                   scripts={})
            assert start.privacy == store.workloads.get(start.workload_id).privacy
            done = store.schedule.commit_ok(
                sub_epoch_id=start.sub_epoch_id, config_id=config, n_partitions=2,
                checkpoint_path=f"/ck/{config}-{start.epoch}-{partition}", checkpoint_sha256="0" * 64,
                checkpoint_bytes=1, stats=SubEpochStats(4, 1.0, 0.5, 0.1, 0.0), val_metrics={},
                summarize=lambda subs, val: {}, dp_event=(0.5, sigma, 2 + partition), account=account)
        return done

    first = epoch(config_id, 1.0)
    expected = max(privacy.epsilon(0.5, 1.0, 2, 1e-5), privacy.epsilon(0.5, 1.0, 3, 1e-5))
    assert first.metrics["epsilon"] == pytest.approx(expected, rel=1e-12)
    assert seen[-1] == {0: [(0.5, 1.0, 2)], 1: [(0.5, 1.0, 3)]}
    assert store.configs.get(config_id).latest_metrics["epsilon"] == first.metrics["epsilon"]
    assert store.workloads.get(wl.id).best == {"config_id": config_id, "metric": "epsilon",
                                                "value": first.metrics["epsilon"]}
    # a clone from the epoch-end checkpoint inherits the source's blocks, then composes its own
    checkpoint = store.configs.latest_checkpoint(config_id)
    assert store.schedule.inherited_dp_events(checkpoint.id) == {0: [(0.5, 1.0, 2)], 1: [(0.5, 1.0, 3)]}
    clone = store.configs.add(wl.id, {"lr": 0.1}, priority=0, origin="clone", actor="a", action="clone_config",
                              cloned_from=config_id, warm_start_checkpoint_id=checkpoint.id)
    epoch(config_id, 1.0)  # the source trains on: none of this reaches the clone
    cloned = epoch(clone.id, 2.0)
    assert seen[-1] == {0: [(0.5, 1.0, 2), (0.5, 2.0, 2)], 1: [(0.5, 1.0, 3), (0.5, 2.0, 3)]}
    assert cloned.metrics["epsilon"] > first.metrics["epsilon"]
    # the stop rule: with a target the next epoch would pass, the config ends privacy_spent (terminal)
    tight = store.workloads.create(
        actor="alice", spec_record={"name": "t"}, propose=lambda w, configs: Proposal([{"lr": 0.1}]),
        name="t", description="", procedure="grid", search_space={}, objectives=[{"metric": "epsilon",
                                                                                   "direction": "min"}],
        max_epochs=5, max_configs=None, seed=0, dataset_id=store.datasets.get("d").id, model_ref="mlp",
        script_id=None, parent_workload_id=None, parent_config_id=None, warm_start_checkpoint_id=None,
        export_top_k=None, privacy={**options, "target_epsilon": 1.05 * first.metrics["epsilon"]})
    tight_config = store.configs.page(tight.id)[0][0].id
    done = epoch(tight_config, 1.0)
    assert done.status == ConfigStatus.PRIVACY_SPENT and done.metrics["epsilon"] <= 1.05 * first.metrics["epsilon"]
    info = store.configs.get(tight_config)
    assert info.status == "privacy_spent" and "privacy.target_epsilon" in info.notes
    assert store.schedule.start_sub_epoch(tight_config, 0, "w0", n_partitions=2, layouts={}, scripts={}) is None
    with pytest.raises(InvalidState, match="it is privacy_spent"):
        store.configs.transition(tight_config, ConfigStatus.QUEUED, action="resume", actor="a")
    rows = store.schedule.list_sub_epochs(config_id=tight_config)
    assert [r.outcome for r in rows] == ["ok", "ok"]


def test_scheduler_lease_compare_and_set(migrated_store):
    """One holder at a time; the holder renews; an expired lease is taken over; only the holder releases."""
    import threading
    import time

    store = migrated_store
    assert store.lease.holder() is None
    # Eight schedulers race for a free lease: exactly one wins, and all agree on who.
    results: list[tuple[bool, str]] = []
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        barrier.wait()
        taken, info = store.lease.acquire(f"h{i}", "host", 1000 + i, 30)
        results.append((taken, info.holder))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [holder for taken, holder in results if taken]
    assert len(results) == 8 and len(winners) == 1 and {h for _, h in results} == {winners[0]}
    winner = winners[0]
    assert store.lease.renew(winner, 0.3) and not store.lease.renew("someone", 0.3)
    assert not store.lease.release("someone") and store.lease.holder().holder == winner
    deadline = time.monotonic() + 10
    while not store.lease.acquire("late", "host2", 7, 30)[0]:
        assert time.monotonic() < deadline, "the expired lease was never taken over"
        time.sleep(0.05)
    assert not store.lease.renew(winner, 30), "the old holder lost it"
    info = store.lease.holder()
    assert (info.holder, info.host, info.pid) == ("late", "host2", 7) and info.expires_at > info.heartbeat_at
    assert store.lease.release("late") and store.lease.holder() is None


def test_a_scheduler_commit_between_read_and_write_does_not_lose_a_persons_unversioned_change(migrated_store):
    """The race the browser test met: a person stops a config while the scheduler commits to the same row.
    Without an asserted version the stop is re-applied on the new row; with one, the conflict is the answer."""
    from sqlalchemy import event, update
    from sqlalchemy.orm import Session

    from hopper.engine.store.models import ConfigRow

    store = migrated_store
    wl = _workload(store, _dataset(store).id, proposals=[{"lr": 0.1}])
    config = store.configs.page(wl.id)[0][0]
    races = {"left": 1}

    def scheduler_commits_first(session, flush_context, instances) -> None:  # noqa: ANN001
        if races["left"] and any(isinstance(o, ConfigRow) for o in session.dirty):
            races["left"] -= 1
            with store.engine.begin() as other:  # another process's transaction, committed before our UPDATE
                other.execute(update(ConfigRow).where(ConfigRow.id == config.id)
                              .values(priority=7, version=ConfigRow.version + 1))

    event.listen(Session, "before_flush", scheduler_commits_first)
    try:
        stopped = store.configs.transition(config.id, ConfigStatus.STOPPED, action="stop", actor="alice")
        assert races["left"] == 0, "the race was not staged"
        assert stopped.status == ConfigStatus.STOPPED and stopped.priority == 7  # re-applied on the new row
        races["left"] = 1
        current = store.configs.get(config.id)
        with pytest.raises(Conflict):
            store.configs.set_priority(config.id, 3, actor="alice", expected_version=current.version)
        assert store.configs.get(config.id).priority == 7
    finally:
        event.remove(Session, "before_flush", scheduler_commits_first)


def test_schedule_claims_and_the_webhook_outbox(migrated_store):
    """A due run is claimed once by racing firers (each on its own engine); a webhook delivery is queued once
    per ending, held while it is being sent, and retried or given up as recorded."""
    import threading
    from datetime import datetime, timedelta

    from hopper.engine.status import ScheduleRunStatus, WebhookStatus
    from hopper.engine.store import Store

    store = migrated_store
    due = datetime(2026, 11, 27, 1, 0)
    schedule = store.schedules.add(actor="alice", name="nightly", cron="0 2 * * *", timezone="Europe/Berlin",
                                   spec={"name": "n"}, next_run_at=due)
    assert [s.id for s in store.schedules.due(due)] == [schedule.id] and store.schedules.due(due - timedelta(1)) == []
    firers = [Store(store.url) for _ in range(4)]
    barrier, claims = threading.Barrier(4), []

    def claim(firer: Store, i: int) -> None:
        barrier.wait()
        claims.append(firer.schedules.claim(schedule.id, due, due + timedelta(days=1), f"firer {i}"))

    threads = [threading.Thread(target=claim, args=(f, i)) for i, f in enumerate(firers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for firer in firers:
        firer.dispose()
    won = [c for c in claims if c is not None]
    assert len(claims) == 4 and len(won) == 1 and won[0].status == ScheduleRunStatus.CLAIMED
    assert store.schedules.get(schedule.id).next_run_at == due + timedelta(days=1)
    assert store.schedules.claim(schedule.id, due, due + timedelta(days=2), "late") is None
    run = store.schedules.finish_run(won[0].id, error="dataset 'digits' does not exist")
    assert (run.status, run.error) == (ScheduleRunStatus.FAILED, "dataset 'digits' does not exist")
    with pytest.raises(InvalidState):
        store.schedules.finish_run(run.id, workload_id=None)
    assert [r.id for r in store.schedules.runs(schedule.id)] == [run.id]
    with pytest.raises(NotFound):
        store.schedules.runs(999)

    dataset = _dataset(store)
    quiet = _workload(store, dataset.id)
    loud = _workload(store, dataset.id, notify={"webhook": "http://127.0.0.1:9/hook"})  # as a spec's notify
    assert store.webhooks.enqueue_ended() == []  # nothing has ended yet
    store.workloads.fail(quiet.id, "no webhook")
    store.workloads.fail(loud.id, "boom")
    [queued] = store.webhooks.enqueue_ended(now=due)
    assert (queued.workload_id, queued.event, queued.status, queued.attempts) == (loud.id, "failed",
                                                                                  WebhookStatus.PENDING, 0)
    assert queued.payload["workload"]["error"] == "boom" and queued.payload["compute"]["worker_seconds"] == 0
    assert store.webhooks.enqueue_ended() == []  # once per ending
    [held] = store.webhooks.claim_due(due, hold_seconds=40)
    assert held.attempts == 1 and held.next_attempt_at == due + timedelta(seconds=40)
    assert store.webhooks.claim_due(due + timedelta(seconds=39), hold_seconds=40) == []  # held by its sender
    retry = store.webhooks.record_attempt(held.id, error="HTTP 500", retry_at=due + timedelta(seconds=5))
    assert (retry.status, retry.next_attempt_at, retry.last_error) == (WebhookStatus.PENDING,
                                                                      due + timedelta(seconds=5), "HTTP 500")
    [again] = store.webhooks.claim_due(due + timedelta(seconds=5), hold_seconds=40)
    gave_up = store.webhooks.record_attempt(again.id, error="HTTP 503", retry_at=None)
    assert (gave_up.status, gave_up.attempts) == (WebhookStatus.FAILED, 2)
    with pytest.raises(InvalidState):
        store.webhooks.record_attempt(again.id, error=None, retry_at=None)
    assert store.webhooks.claim_due(due + timedelta(days=1), hold_seconds=40) == []


def test_sharing_weights_budgets_stop_and_use_of_the_workers(migrated_store):
    store = migrated_store
    ds = _dataset(store)
    wl = store.workloads.create(
        actor="alice", spec_record={"name": "w"}, propose=lambda w, configs: Proposal(list(GRID)), name="w",
        description="", procedure="grid", search_space={"lr": {"type": "choice", "values": [0.1, 0.01]}},
        objectives=[{"metric": "val_accuracy", "direction": "max"}], max_epochs=2, max_configs=None, seed=3,
        dataset_id=ds.id, model_ref="mlp", weight=2.5, budget={"worker_seconds": 10.0})
    assert (wl.weight, wl.budget) == (2.5, {"worker_seconds": 10.0})
    assert [(r[0], r[1], r[2], r[3]) for r in store.workloads.sharing()] == [(wl.id, 2.5, "alice",
                                                                              {"worker_seconds": 10.0})]
    store.workloads.set_weight(wl.id, 4.0, actor="bob")
    assert store.workloads.get(wl.id).weight == 4.0
    config_id = store.configs.page(wl.id)[0][0].id
    done = _train_epoch(store, config_id)
    assert done.seconds >= 0.0
    seconds, count = store.schedule.committed_seconds()[wl.id]
    assert count == 2 and seconds >= 0.0
    usage = store.workloads.usage(wl.id)
    # 2 configs x 2 epochs x 2 partitions, 2 committed
    assert (usage.sub_epochs_done, usage.running, usage.sub_epochs_left) == (2, 0, 6)
    store.schedule.start_sub_epoch(config_id, 0, "w0", n_partitions=2, layouts={}, scripts={})
    assert store.workloads.usage(wl.id).running == 1
    store.workloads.set_status(wl.id, WorkloadStatus.STOPPED, action="stop_workload", actor="alice")
    assert store.schedule.runnable() == [] and store.workloads.sharing() == []
    assert not store.workloads.spend_budget(wl.id, "budget spent: too late")  # only a running workload
    store.workloads.set_status(wl.id, WorkloadStatus.RUNNING, action="resume_workload", actor="alice")
    assert store.workloads.spend_budget(wl.id, "budget spent: worker_seconds 11 reached its limit 10")
    spent = store.workloads.get(wl.id)
    assert spent.status == WorkloadStatus.BUDGET_SPENT and "worker_seconds" in spent.error
    for target in (WorkloadStatus.RUNNING, WorkloadStatus.STOPPED):
        with pytest.raises(InvalidState, match="it is budget_spent"):
            store.workloads.set_status(wl.id, target, action="resume_workload", actor="alice")
    with pytest.raises(InvalidState):
        store.workloads.set_weight(wl.id, 1.0, actor="bob")
    with pytest.raises(NotFound):
        store.workloads.set_weight(10**6, 1.0, actor="bob")
    actions = [e.action for e in store.events.list(object_type="workload")]
    assert actions[:5] == ["budget_spent", "resume_workload", "stop_workload", "set_workload_weight",
                           "launch_workload"]
