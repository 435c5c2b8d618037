"""An objective added to a workload after it trained: its kept epoch-end checkpoints are re-evaluated by a worker
(the export worker's child process, not this one), every config is ranked on it, nothing retrains.

Also the worker's own computed objectives at an epoch end (``flops`` here), and the REST and CLI forms.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hopper.engine.errors import Conflict, ValidationError
from hopper.rest import create_app
from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

EPOCHS = 2
TOKEN = "objective-token"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from hopper.app import open_services
    from hopper.engine.demo import ensure_digits
    from tests.conftest import make_settings

    settings = make_settings(tmp_path_factory.mktemp("objective") / "home", workers=1)  # one TF process to start
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    ensure_digits(services)
    workload = services.launch_workload({
        "name": "objectives", "model": "mlp", "dataset": "digits", "procedure": "grid", "max_epochs": EPOCHS,
        "space": {"lr": {"type": "choice", "values": [0.001, 0.01]}, "units": 16, "layers": 1, "batch_size": 64},
        "objectives": {"val_accuracy": "max", "flops": "min"}})
    with RunningScheduler(services) as running:
        running.wait_for(lambda: services.get_workload(workload.id).status == "done", 300, "the grid to finish")
    yield services, workload.id
    services.store.dispose()


def test_added_objective_is_measured_on_every_kept_checkpoint_by_a_worker(trained):
    from hopper.edge_deploy.runner import ExportWorker

    services, wid = trained
    configs = services.list_configs(wid)
    assert len(configs) == 2
    flops = services.workload_metrics(wid, "flops")
    # The worker counted the same forward FLOPs at every epoch end: dense 64 -> 16 -> 10.
    assert {(cid, m["epoch"]) for cid, rows in flops.items() for m in rows} == {
        (c.id, e) for c in configs for e in range(EPOCHS)}
    assert {m["value"] for rows in flops.values() for m in rows} == {2 * 64 * 16 + 16 + 2 * 16 * 10 + 10}

    request = services.add_objective(wid, {"metric": "val_balanced_accuracy", "direction": "max"}, actor="alice")
    assert request.status == "queued" and request.n_expected == len(configs) * EPOCHS
    assert services.get_workload(wid).objectives[-1] == {"metric": "val_balanced_accuracy", "direction": "max"}
    with pytest.raises(Conflict):
        services.add_objective(wid, {"metric": "val_balanced_accuracy", "direction": "max"})
    with pytest.raises(ValidationError, match="no class 'eleven'") as caught:
        services.add_objective(wid, {"metric": "val_recall@eleven", "direction": "max"})
    assert caught.value.field == "metric"
    with pytest.raises(ValidationError, match="cannot compute it") as caught:
        services.add_objective(wid, {"metric": "val_auc", "direction": "max"})

    worker = ExportWorker(services, poll=0.05)
    done = worker.run_once()  # the child process `hopper objective evaluate` does the work
    assert done.id == request.id and done.status == "done", done.error
    assert done.n_done == done.n_expected == len(configs) * EPOCHS
    assert worker.run_once() is None  # nothing left: no evaluation twice

    balanced = services.workload_metrics(wid, "val_balanced_accuracy")
    accuracy = {(cid, m["epoch"]): m["value"] for cid, rows in services.workload_metrics(wid, "val_accuracy").items()
                for m in rows}
    measured = {(cid, m["epoch"]): m["value"] for cid, rows in balanced.items() for m in rows}
    assert set(measured) == set(accuracy)
    for key, value in measured.items():
        # digits' classes are balanced, so a trained checkpoint scores about its accuracy (an untrained one ~0.1)
        assert abs(value - accuracy[key]) < 0.05, (key, value, accuracy[key])
    ranking = services.rank_configs(wid, "val_balanced_accuracy")
    values = [c.latest_metrics["val_balanced_accuracy"] for c in ranking]
    assert values == sorted(values, reverse=True)
    assert [c.id for c in services.rank_configs(wid, "flops")] == sorted(c.id for c in configs)  # a tie: by id
    front = services.objective_front(wid)  # the Pareto front now spans the added objective too
    assert [o["metric"] for o in front.objectives] == ["val_accuracy", "flops", "val_balanced_accuracy"]
    assert {p["config_id"] for p in front.points} == {c.id for c in configs}
    events = [e for e in services.list_events(limit=50) if e.action == "add_objective"]
    assert events and events[0].actor == "alice" and events[0].after["checkpoints"] == len(configs) * EPOCHS


def test_objectives_over_rest_and_the_cli(trained, tmp_path):
    from hopper.cli import main

    services, wid = trained
    client = create_app(services, token=TOKEN, secret_key="s" * 32).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    r = client.post(f"/api/v1/workloads/{wid}/objectives",
                    json={"metric": "val_cost", "direction": "min", "cost_matrix": [[0, 1]] * 2})
    assert r.status_code == 422 and r.json["error"]["field"] == "cost_matrix"  # well-formed, wrong for 10 classes
    assert "10 x 10" in r.json["error"]["message"]
    assert client.post(f"/api/v1/workloads/{wid}/objectives", json={"metric": "flops"}).status_code == 400
    r = client.post(f"/api/v1/workloads/{wid}/objectives", json={"metric": "flops", "direction": "min"})
    assert r.status_code == 409
    assert client.post("/api/v1/workloads/999/objectives", json={"metric": "flops", "direction": "min"}
                       ).status_code == 404
    r = client.post(f"/api/v1/workloads/{wid}/objectives", json={"metric": "val_loss", "direction": "min"})
    assert r.status_code == 202 and r.json["n_expected"] == 0 and r.json["status"] == "done"  # Keras reports it
    listed = client.get(f"/api/v1/workloads/{wid}/objectives").json
    assert [o["metric"] for o in listed["objectives"]][-1] == "val_loss"
    ranked = client.get(f"/api/v1/workloads/{wid}/ranking", query_string={"metric": "val_loss"}).json
    assert [c["latest_metrics"]["val_loss"] for c in ranked] == sorted(c["latest_metrics"]["val_loss"] for c in ranked)
    assert client.get(f"/api/v1/workloads/{wid}/ranking", query_string={"metric": "nope"}).status_code == 422

    env = {"HOPPER_HOME": str(services.settings.home), "HOPPER_DATABASE_URL": services.settings.database_url,
           "HOPPER_DATA_ROOTS": str(services.settings.data_roots[0]),
           "HOPPER_ARTIFACT_DIR": str(services.settings.artifact_dir), "COLUMNS": "200"}
    runner = CliRunner()
    result = runner.invoke(main, ["objective", "add", str(wid), "val_recall@7", "--direction", "max"], env=env)
    assert result.exit_code == 0, result.output
    assert "4 checkpoint(s) to re-evaluate (queued)" in " ".join(result.output.split())  # rich wraps lines
    first = services.list_evaluations(wid)[0]  # the export worker ran it (`hopper objective evaluate` as a child)
    result = runner.invoke(main, ["objective", "evaluate", str(first.id)], env=env)
    assert result.exit_code == 2 and "already done" in result.output
    result = runner.invoke(main, ["objective", "list", str(wid)], env=env)
    assert result.exit_code == 0 and "val_recall@7" in result.output and "0/4" in result.output
    result = runner.invoke(main, ["objective", "add", str(wid), "val_cost", "--direction", "min",
                                  "--cost-matrix", "[[0, 1]"], env=env)
    assert result.exit_code == 2 and "not JSON" in result.output
