"""Elastic workers on the local backend: a real run (digits, a tiny MLP, 4 shards) that starts with one worker,
gets a second through ``POST /workers`` while the first trains, and loses one again through ``hopper workers
remove`` mid-epoch; the scheduler is stopped a few sub-epochs later (the workload has epochs to spare, so the
test never races its end on a fast machine).

The MOP invariant over shards is checked from the sub-epoch log: every config visits every shard exactly once
per committed epoch, at most once in the epoch it was in when the scheduler stopped, and nothing is lost or
doubled. The requests go through the store (the scheduler reads the requested count at every step), as they do
from a separate web server.
"""

from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner

from hopper.cli import main
from hopper.rest import create_app
from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

TOKEN = "elastic-token-123"
MAX_EPOCHS = 30
SHARDS = 4  # max_workers 2 x shards_per_worker 2


@pytest.fixture(scope="module")
def elastic_run(tmp_path_factory):
    from hopper.app import open_services
    from hopper.engine.demo import ensure_digits
    from tests.conftest import make_settings

    settings = make_settings(tmp_path_factory.mktemp("elastic") / "home", workers=1, max_workers=2,
                             shards_per_worker=2)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    ensure_digits(services)
    app = create_app(services, token=TOKEN, secret_key="s" * 32)
    app.testing = True
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    env = {"HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
           "HOPPER_DATA_ROOTS": str(settings.data_roots[0]), "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir),
           "HOPPER_WORKERS": "1", "HOPPER_MAX_WORKERS": "2", "COLUMNS": "200"}
    workload = services.launch_workload({
        "name": "elastic", "model": "mlp", "dataset": "digits", "procedure": "grid", "max_epochs": MAX_EPOCHS,
        "space": {"lr": {"type": "choice", "values": [0.003, 0.01, 0.03]}, "units": 16},
    })

    def on(worker: str, outcome: str = "ok") -> int:
        return sum(1 for v in services.store.schedule.shard_visits(workload.id)
                   if v.worker == worker and v.outcome == outcome)

    with RunningScheduler(services) as running:
        # as soon as the first worker trains: the second starts up (imports TensorFlow) while it does
        running.wait_for(lambda: on("local-0", "running"), 240, "the first worker's first sub-epoch")
        added = client.post("/api/v1/workers", json={"add": 1})
        running.wait_for(lambda: on("local-1") >= 1, 240, "the added worker's first sub-epoch")
        # mid-epoch: with two workers a config's epoch takes two hops, and one has just been committed
        removed = CliRunner().invoke(main, ["workers", "remove", "1"], env=env)
        running.wait_for(lambda: [w["state"] for w in services.list_workers().workers] == ["active"], 120,
                         "the pool to drain to one worker")
        during = services.list_workers()
        # Which one stays is the scheduler's choice: it drains an idle worker first (no work lost), else the
        # highest id; on a loaded machine worker 0 is sometimes the idle one at that moment.
        remaining = during.workers[0]["name"]
        after_drain = on(remaining)
        running.wait_for(lambda: on(remaining) >= after_drain + 2, 120, f"the remaining worker {remaining} to carry on")
        # the drained worker's process exited and was reaped (it is not a zombie, nor restarted)
        running.wait_for(lambda: not running.scheduler.backend._exiting, 60, "the removed worker's exit")
        pids = running.scheduler.backend.worker_pids()
    listed = CliRunner().invoke(main, ["workers", "list"], env=env)
    return services, workload.id, client, added, removed, during, listed, pids, remaining


def test_every_config_visits_every_shard_exactly_once_per_epoch_across_a_join_and_a_leave(elastic_run):
    services, workload_id, *_ = elastic_run
    configs = {c.id: c for c in services.list_configs(workload_id)}
    assert len(configs) == 3 and all(c.epochs_done >= 1 for c in configs.values())
    visits = services.store.schedule.shard_visits(workload_id)
    ok = [v for v in visits if v.outcome == "ok"]
    per_epoch = Counter((v.config_id, v.epoch, shard) for v in ok for shard in v.shards)
    assert set(per_epoch.values()) == {1}, "a shard was trained twice in one epoch"
    committed = {(c.id, e, s) for c in configs.values() for e in range(c.epochs_done) for s in range(SHARDS)}
    assert committed <= set(per_epoch), "a committed epoch missed a shard"
    assert all(e == configs[c].epochs_done for c, e, _ in set(per_epoch) - committed), "work past its epoch"
    # a drained worker finishes its sub-epoch: nothing is lost (the one row left running is what the remaining
    # worker was training when the test stopped the scheduler)
    assert Counter(v.outcome for v in visits if v.outcome != "ok") <= Counter({"running": 1})
    workers = {v.worker for v in ok}
    assert workers == {"local-0", "local-1"}
    # one worker alone owns every shard: one hop per epoch; two share them: two hops
    assert any(len(v.shards) == SHARDS for v in ok) and any(len(v.shards) == SHARDS // 2 for v in ok)
    metrics = services.workload_metrics(workload_id, "val_accuracy")
    assert {cid: sorted(row["epoch"] for row in rows) for cid, rows in metrics.items()} == {
        c.id: list(range(c.epochs_done)) for c in configs.values()}, "one validation result per committed epoch"


def test_the_pool_grew_and_shrank_through_rest_and_cli(elastic_run):
    _, _, client, added, removed, during, listed, pids, remaining = elastic_run
    assert added.status_code == 202 and added.json["desired"] == 2, added.json
    assert removed.exit_code == 0 and "requested 1 workers" in removed.output, removed.output
    assert [(w["state"], sorted(w["shards"]["4"])) for w in during.workers] == [("active", [0, 1, 2, 3])]
    assert [f"local-{index}" for index in pids] == [remaining], "only the remaining worker has a process"
    assert listed.exit_code == 0 and "0, 1, 2, 3 of 4" in listed.output, listed.output
    body = client.get("/api/v1/workers").json
    assert body["desired"] == 1 and len(body["workers"]) == 1 and body["requested_by"]


def test_bad_resizes_are_refused_with_precise_errors_and_change_nothing(elastic_run):
    services, _, client, *_ = elastic_run
    for payload, status, field in (({"remove": 1}, 422, "remove"), ({"add": 5}, 422, "add"), ({"add": 0}, 400, None),
                                   ({"add": 1, "remove": 1}, 400, None), ({}, 400, None),
                                   ({"add": 1, "now": True}, 400, None)):
        r = client.post("/api/v1/workers", json=payload)
        assert r.status_code == status, (payload, r.json)
        assert r.json["error"]["message"]
        if field:
            assert r.json["error"]["field"] == field
    assert services.list_workers().desired == 1
    result = CliRunner().invoke(main, ["workers", "remove", "1"],
                                env={"HOPPER_DATABASE_URL": services.settings.database_url,
                                     "HOPPER_HOME": str(services.settings.home),
                                     "HOPPER_ARTIFACT_DIR": str(services.settings.artifact_dir)})
    assert result.exit_code == 2 and "at least one worker must stay" in " ".join(result.output.split())
    result = CliRunner().invoke(main, ["workers", "add", "0"], env={"HOPPER_HOME": str(services.settings.home)})
    assert result.exit_code == 2
    # and a good one from the CLI: the request is stored (no scheduler runs now to act on it), then taken back
    env = {"HOPPER_DATABASE_URL": services.settings.database_url, "HOPPER_HOME": str(services.settings.home),
           "HOPPER_ARTIFACT_DIR": str(services.settings.artifact_dir)}
    result = CliRunner().invoke(main, ["workers", "add", "1"], env=env)
    assert result.exit_code == 0 and services.list_workers().desired == 2, result.output
    assert CliRunner().invoke(main, ["workers", "remove", "1"], env=env).exit_code == 0
    assert services.list_workers().desired == 1
