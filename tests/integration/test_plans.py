"""Execution plans on the local backend with real training (issue 19 item 1): two workers, two workloads of two
configs x two epochs sharing them. One forces the replicated plan on digits; the other is ``auto`` on a dataset
larger than the workers' tiny data memory budget (1 MiB), so the scheduler runs it with MOP. Checked from the
schedule log: a replicated config-epoch is one sub-epoch holding every shard, a MOP one a sub-epoch per worker
holding that worker's shard; the choice and its reason are on the workload over REST, in the audit log and on
the UI's workload page; a forced replicated plan that cannot fit is refused with a precise error.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from hopper.cli import main
from hopper.rest import create_app
from hopper.webui import callbacks
from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

TOKEN = "plans-token-123"
SPACE = {"lr": {"type": "choice", "values": [0.01, 0.03]}, "units": 8}


@pytest.fixture(scope="module")
def plans_run(tmp_path_factory):
    from hopper.app import open_services
    from hopper.engine.demo import ensure_digits
    from tests.conftest import make_settings

    settings = make_settings(tmp_path_factory.mktemp("plans") / "home", workers=2, worker_data_memory_mb=1)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    ensure_digits(services)
    # 3000 rows x 128 features: about 1.5 MiB whole, over the 1 MiB budget; a half of its training rows fits
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 128)).astype(np.float32)
    path = settings.data_roots[0] / "wide.npz"
    np.savez(path, x=x, y=(x[:, 0] > 0).astype(np.int64))
    services.register_dataset({"name": "wide", "path": str(path)})
    app = create_app(services, token=TOKEN, secret_key="s" * 32)
    app.testing = True
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    spec = {"model": "mlp", "procedure": "grid", "max_epochs": 2, "space": SPACE}
    replicated = client.post("/api/v1/workloads", json={**spec, "name": "replicated digits", "dataset": "digits",
                                                         "plan": "replicated"})
    auto = client.post("/api/v1/workloads", json={**spec, "name": "auto wide", "dataset": "wide", "plan": "auto"})
    assert replicated.status_code == auto.status_code == 201, (replicated.json, auto.json)
    ids = [replicated.json["id"], auto.json["id"]]
    with RunningScheduler(services) as running:
        running.wait_for(lambda: not services.store.workloads.any_running(ids), 240, "both workloads to finish")
    return services, client, settings, *ids


def _epochs(services, workload_id: int) -> dict[tuple[int, int], list[tuple[str, tuple[int, ...]]]]:
    """(config, epoch) -> the (worker, shards) of its committed sub-epochs."""
    out: dict[tuple[int, int], list] = {}
    for visit in services.store.schedule.shard_visits(workload_id):
        if visit.outcome == "ok":
            out.setdefault((visit.config_id, visit.epoch), []).append((visit.worker, visit.shards))
    return out


def test_a_replicated_workload_commits_one_sub_epoch_per_config_epoch_holding_every_shard(plans_run):
    services, client, _, replicated_id, _ = plans_run
    epochs = _epochs(services, replicated_id)
    assert len(epochs) == 2 * 2  # 2 configs x 2 epochs
    assert all(len(subs) == 1 and subs[0][1] == (0, 1) for subs in epochs.values()), epochs
    body = client.get(f"/api/v1/workloads/{replicated_id}").json
    assert body["status"] == "done" and body["plan"] == "replicated"
    assert body["plan_choice"]["plan"] == "replicated"
    assert body["plan_choice"]["reason"] == ("replicated: the workload's plan asks for it (digits is 463.3 KiB, "
                                             "all of it on every worker)")
    assert all(c["epochs_done"] == 2 for c in client.get(f"/api/v1/workloads/{replicated_id}/configs").json["items"])


def test_an_auto_workload_on_data_over_the_worker_budget_runs_mop_and_says_why(plans_run):
    services, client, _, replicated_id, auto_id = plans_run
    epochs = _epochs(services, auto_id)
    assert len(epochs) == 2 * 2
    for subs in epochs.values():  # one sub-epoch per worker, each on the shard that worker owns
        assert sorted(shards for _, shards in subs) == [(0,), (1,)], epochs
        assert {worker for worker, _ in subs} == {"local-0", "local-1"}
    body = client.get(f"/api/v1/workloads/{auto_id}").json
    assert body["status"] == "done" and body["plan"] == "auto"
    reason = "mop: wide is 1.5 MiB, over the 1 MiB worker data budget"
    assert (body["plan_choice"]["plan"], body["plan_choice"]["basis"], body["plan_choice"]["reason"]) == (
        "mop", "too_big", reason)
    chosen = [e for e in client.get("/api/v1/events?limit=1000").json if e["action"] == "choose_plan"]
    assert sorted((e["object_id"], e["actor"], e["after"]["plan"]) for e in chosen) == [
        (replicated_id, "scheduler", "replicated"), (auto_id, "scheduler", "mop")]  # recorded once each
    summary = callbacks.workload_detail(services, auto_id)[1]
    assert summary.endswith(f" · plan {reason}")


def test_a_replicated_plan_that_cannot_fit_is_refused_and_the_cli_sets_the_plan(plans_run, tmp_path):
    services, client, settings, *_ = plans_run
    refused = client.post("/api/v1/workloads", json={"name": "too big", "model": "mlp", "dataset": "wide",
                                                     "plan": "replicated", "space": SPACE})
    assert refused.status_code == 422, refused.json
    assert refused.json["error"]["field"] == "plan"
    assert refused.json["error"]["message"].startswith("plan: replicated puts all of dataset 'wide' on every worker")
    bad = client.post("/api/v1/workloads", json={"name": "typo", "model": "mlp", "dataset": "digits",
                                                 "plan": "fastest", "space": SPACE})
    assert bad.status_code == 400 and bad.json["error"]["field"] == "plan"
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: cli mop\nmodel: mlp\ndataset: digits\nspace: {lr: 0.01, units: 8}\n")
    env = {"HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
           "HOPPER_DATA_ROOTS": str(settings.data_roots[0]), "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir),
           "HOPPER_WORKERS": "2", "HOPPER_WORKER_DATA_MEMORY_MB": "1", "COLUMNS": "200"}
    launched = CliRunner().invoke(main, ["submit", str(spec), "--plan", "mop"], env=env)
    assert launched.exit_code == 0, launched.output
    assert "plan mop" in launched.output
    assert [w.plan for w in services.list_workloads() if w.name == "cli mop"] == ["mop"]
    unlimited = CliRunner().invoke(main, ["submit", str(spec), "--plan", "replicated"],
                                 env={**env, "HOPPER_WORKER_DATA_MEMORY_MB": "0"})
    assert unlimited.exit_code == 0, unlimited.output  # no budget: digits may sit whole on every worker
    assert [w.plan for w in services.list_workloads() if w.name == "cli mop"] == ["mop", "replicated"]
    # a spec without a plan takes the deployment's default_plan setting
    default = CliRunner().invoke(main, ["submit", str(spec)], env={**env, "HOPPER_DEFAULT_PLAN": "auto"})
    assert default.exit_code == 0 and "plan auto" in default.output, default.output
    broken = CliRunner().invoke(main, ["submit", str(spec)], env={**env, "HOPPER_DEFAULT_PLAN": "fastest"})
    assert broken.exit_code != 0 and "HOPPER_DEFAULT_PLAN) must be auto, mop or replicated, not 'fastest'" in (
        broken.output), broken.output
    wrong = CliRunner().invoke(main, ["submit", str(spec), "--plan", "sometimes"], env=env)
    assert wrong.exit_code == 2 and "'sometimes' is not one of 'auto', 'mop', 'replicated'" in wrong.output


def test_the_store_keeps_plans_their_choices_and_sub_epoch_costs(migrated_store):
    """On SQLite and PostgreSQL: the plan asked at launch, the scheduler's choice (audited), and the sums the
    chooser reads at recovery."""
    from tests.integration.test_store_contract import _dataset, _train_epoch, _workload

    store = migrated_store
    ds = _dataset(store)
    forced = _workload(store, ds.id, plan="replicated")
    private = _workload(store, ds.id, privacy={"noise_multiplier": 1.0})
    assert forced.plan == "replicated" and (private.plan, private.plan_choice) == ("auto", None)
    assert store.workloads.plan_settings([forced.id, private.id]) == {
        forced.id: ("replicated", ds.id, False, None), private.id: ("auto", ds.id, True, None)}
    assert store.workloads.plan_settings([]) == {}
    record = {"plan": "replicated", "reason": "replicated: the workload's plan asks for it ✓", "basis": "forced",
              "decided_at": "2026-11-26T12:00:00+00:00"}
    store.workloads.record_plan(forced.id, record)
    assert store.workloads.get(forced.id).plan_choice == record
    [event] = store.events.list(object_type="workload", object_id=forced.id, limit=1)
    assert (event.actor, event.action, event.before, event.after) == ("scheduler", "choose_plan", None, record)
    _train_epoch(store, store.configs.page(forced.id)[0][0].id)  # 2 sub-epochs of 4 rows, 0.5 s + 0.01 s hop each
    wall, hop, compute, rows, count = store.schedule.sub_epoch_costs()[forced.id]
    assert (round(hop, 6), round(compute, 6), rows, count) == (0.02, 1.0, 8, 2) and wall >= 0.0
    assert private.id not in store.schedule.sub_epoch_costs()
