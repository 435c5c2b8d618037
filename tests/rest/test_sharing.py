"""Workload-level controls and budgets over REST and the CLI: pause, resume, stop, weight, budget; the 4xx
answers for a wrong state, an unknown id and bad input; and the launch checks (money without a price, a
dataset too large for a worker's data memory budget). No training: the scheduler is not running."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from hopper.cli import main
from hopper.engine.services import Services
from hopper.rest import create_app

TOKEN = "test-token-123"
GRID = {"lr": {"type": "choice", "values": [0.01, 0.001]}, "units": 32}


def _client(services: Services):
    app = create_app(services, token=TOKEN, secret_key="s" * 32)
    app.testing = True
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return client


@pytest.fixture
def client(services, digits):
    return _client(services)


def _launch(client, **extra):
    r = client.post("/api/v1/workloads", json={"name": "w", "model": "mlp", "dataset": "digits", "space": GRID,
                                                "max_epochs": 2, **extra})
    assert r.status_code == 201, r.json
    return r.json


def _error(response, status, field=None):
    assert response.status_code == status, response.json
    error = response.json["error"]
    if field is not None:
        assert error["field"] == field
    return error


def test_workload_controls_weight_and_budget_over_rest(client, services):
    w = _launch(client, weight=2.5, budget={"worker_seconds": 30, "wall_seconds": 3600})
    wid = w["id"]
    assert w["weight"] == 2.5 and w["budget"] == {"worker_seconds": 30.0, "wall_seconds": 3600.0}

    assert client.post(f"/api/v1/workloads/{wid}/pause").json["status"] == "paused"
    assert "it is paused" in _error(client.post(f"/api/v1/workloads/{wid}/pause"), 409)["message"]
    assert client.post(f"/api/v1/workloads/{wid}/resume").json["status"] == "running"
    _error(client.post(f"/api/v1/workloads/{wid}/resume"), 409)
    stopped = client.post(f"/api/v1/workloads/{wid}/stop").json
    assert stopped["status"] == "stopped" and stopped["config_counts"] == {"queued": 2}  # configs kept as they were
    _error(client.post(f"/api/v1/workloads/{wid}/stop"), 409)
    _error(client.post(f"/api/v1/workloads/{wid}/pause"), 409)
    assert client.post(f"/api/v1/workloads/{wid}/resume").json["status"] == "running"
    assert client.patch(f"/api/v1/workloads/{wid}", json={"status": "stopped"}).json["status"] == "stopped"
    assert client.patch(f"/api/v1/workloads/{wid}", json={"status": "running"}).json["status"] == "running"
    for verb in ("pause", "resume", "stop"):
        _error(client.post(f"/api/v1/workloads/999/{verb}"), 404)

    assert client.patch(f"/api/v1/workloads/{wid}", json={"weight": 3}).json["weight"] == 3.0
    _error(client.patch(f"/api/v1/workloads/{wid}", json={"weight": 0}), 400, "weight")
    _error(client.patch(f"/api/v1/workloads/{wid}", json={"weight": "heavy"}), 400, "weight")
    _error(client.patch("/api/v1/workloads/999", json={"weight": 2}), 404)
    assert services.get_workload(wid).weight == 3.0  # the refused patches changed nothing

    budget = client.get(f"/api/v1/workloads/{wid}/budget").json
    assert budget["limits"] == {"wall_seconds": 3600.0, "worker_seconds": 30.0, "money": None}
    assert budget["worker_seconds"] == 0.0 and budget["remaining"]["worker_seconds"] == 30.0
    assert budget["remaining"]["money"] is None and budget["money"] is None and budget["spent"] is False
    # 2 configs x 2 epochs x 2 partitions, nothing measured yet: no ETA
    assert budget["sub_epochs_left"] == 8 and budget["eta_seconds"] is None
    assert budget["worker_share"] == 2.0  # the only running workload has both workers
    # under the replicated plan one dispatch trains a config's whole epoch: 2 configs x 2 epochs
    services.store.workloads.record_plan(wid, {"plan": "replicated", "reason": "test", "basis": "forced"})
    assert client.get(f"/api/v1/workloads/{wid}/budget").json["sub_epochs_left"] == 4
    _error(client.get("/api/v1/workloads/999/budget"), 404)

    actions = [e.action for e in services.list_events(limit=50) if e.object_id == wid]
    for action in ("pause_workload", "resume_workload", "stop_workload", "set_workload_weight"):
        assert action in actions

    # a money budget needs a price per worker-hour; bad budgets are refused naming the field
    r = client.post("/api/v1/workloads", json={"name": "m", "model": "mlp", "dataset": "digits", "space": GRID,
                                                "budget": {"money": 5}})
    assert "price_per_worker_hour" in _error(r, 422, "budget.money")["message"]
    r = client.post("/api/v1/workloads", json={"name": "m", "model": "mlp", "dataset": "digits", "space": GRID,
                                                "budget": {"worker_seconds": -1}})
    _error(r, 400)
    _error(client.post("/api/v1/workloads", json={"name": "m", "model": "mlp", "dataset": "digits",
                                                   "space": GRID, "weight": 0}), 400, "weight")
    assert [x["id"] for x in client.get("/api/v1/workloads").json] == [wid]  # nothing launched by the refusals

    priced = Services(services.store, services.settings.with_overrides(price_per_worker_hour=2.0))
    m = _launch(_client(priced), budget={"money": 0.5})
    assert m["budget"] == {"money": 0.5, "price_per_worker_hour": 2.0}
    assert _client(priced).get(f"/api/v1/workloads/{m['id']}/budget").json["remaining"]["money"] == 0.5


def test_a_dataset_whose_partition_exceeds_the_data_memory_budget_is_refused_at_launch(services, digits):
    rng = np.random.default_rng(0)
    path = services.settings.data_roots[0] / "wide.npz"
    np.savez(path, x=rng.random((12_000, 64), dtype=np.float32), y=rng.integers(0, 3, 12_000))
    services.register_dataset({"name": "wide", "path": str(path)})
    tight = Services(services.store, services.settings.with_overrides(worker_data_memory_mb=1))
    r = _client(tight).post("/api/v1/workloads", json={"name": "w", "model": "mlp", "dataset": "wide",
                                                        "space": GRID})
    message = _error(r, 422, "dataset")["message"]
    assert "worker_data_memory_mb" in message and "1 MiB" in message and "wide" in message
    assert tight.list_workloads() == []
    # digits' partitions fit the same budget
    assert _launch(_client(tight))["status"] == "running"


def test_workload_controls_from_the_cli(services, digits):
    wid = services.launch_workload({"name": "c", "model": "mlp", "dataset": "digits", "space": GRID}).id
    settings = services.settings
    env = {"HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
           "HOPPER_DATA_ROOTS": str(settings.data_roots[0]), "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir),
           "HOPPER_WORKERS": str(settings.workers), "COLUMNS": "200"}
    runner = CliRunner()

    def hopper(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    assert f"workload {wid}: paused" in hopper("workload", "pause", str(wid))
    assert "it is paused" in hopper("workload", "pause", str(wid), code=5)
    assert f"workload {wid}: running" in hopper("workload", "resume", str(wid))
    assert f"workload {wid}: stopped" in hopper("workload", "stop", str(wid))
    assert services.get_workload(wid).status == "stopped"
    assert "weight 1" in hopper("workload", "weight", str(wid))
    assert "weight 4" in hopper("workload", "weight", str(wid), "4")
    assert "weight must be" in hopper("workload", "weight", str(wid), "0", code=2)
    assert services.get_workload(wid).weight == 4.0
    assert '"sub_epochs_left": 12' in hopper("workload", "budget", str(wid))  # 2 configs x 3 epochs x 2 partitions
    hopper("workload", "stop", "999", code=3)
