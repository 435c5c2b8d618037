"""GET /api/v1/workloads/{id}/sub-epochs after real training: the schedule log the Gantt chart draws."""

from datetime import datetime

import pytest

from hopper.rest import create_app
from tests.support.running import RunningScheduler

TOKEN = "sub-epoch-token-123"
pytestmark = pytest.mark.slow


@pytest.fixture
def client(services, digits):
    app = create_app(services, token=TOKEN, secret_key="s" * 32)
    app.testing = True
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return c


def test_sub_epochs_of_a_trained_workload(client, services, digits):
    space = {"lr": {"type": "choice", "values": [0.01, 0.003]}, "units": 16}
    r = client.post("/api/v1/workloads", json={"name": "gantt", "model": "mlp", "dataset": "digits", "space": space,
                                               "max_epochs": 2})
    assert r.status_code == 201, r.json
    wid = r.json["id"]
    other = client.post("/api/v1/workloads", json={"name": "other", "model": "mlp", "dataset": "digits",
                                                   "space": {"lr": 0.01, "units": 8}, "max_epochs": 1}).json["id"]
    client.patch(f"/api/v1/workloads/{other}", json={"status": "paused"})  # never trains: must not show up
    assert client.get(f"/api/v1/workloads/{wid}/sub-epochs").json == []

    with RunningScheduler(services) as running:
        running.wait_for(lambda: client.get(f"/api/v1/workloads/{wid}").json["status"] == "done", 300,
                         "the workload to finish")

    r = client.get(f"/api/v1/workloads/{wid}/sub-epochs")
    assert r.status_code == 200
    rows = r.json
    configs = [c["id"] for c in client.get(f"/api/v1/workloads/{wid}/configs").json["items"]]
    assert len(configs) == 2
    parts = digits.partition_count
    # MOP: every config visits every partition once per epoch, each visit one row, all of them ok
    assert len(rows) == len(configs) * 2 * parts
    assert {row["outcome"] for row in rows} == {"ok"}
    assert {(row["config_id"], row["epoch"], row["partition"]) for row in rows} == {
        (c, e, p) for c in configs for e in (0, 1) for p in range(parts)}
    assert [row["id"] for row in rows] == sorted(row["id"] for row in rows)  # oldest first
    for row in rows:
        started, finished = datetime.fromisoformat(row["started_at"]), datetime.fromisoformat(row["finished_at"])
        assert started <= finished and row["compute_seconds"] > 0 and row["worker"]
        assert "Traceback" not in (row["detail"] or "")  # ok rows carry notes at most ("model reused ...")
    # a config's epoch 1 starts only after its epoch 0 finished on every partition
    for c in configs:
        epoch0_end = max(datetime.fromisoformat(r["finished_at"]) for r in rows if r["config_id"] == c and r["epoch"] == 0)
        epoch1_start = min(datetime.fromisoformat(r["started_at"]) for r in rows if r["config_id"] == c and r["epoch"] == 1)
        assert epoch0_end <= epoch1_start

    limited = client.get(f"/api/v1/workloads/{wid}/sub-epochs?limit=3").json
    assert [row["id"] for row in limited] == [row["id"] for row in rows[:3]]
    assert client.get(f"/api/v1/workloads/{wid}/sub-epochs?limit=0").status_code == 400
    page = client.get(f"/api/v1/workloads/{wid}/sub-epochs?limit=3&offset=3").json
    assert [row["id"] for row in page] == [row["id"] for row in rows[3:6]]
    columnar = client.get(f"/api/v1/workloads/{wid}/sub-epochs?columnar=1").json
    assert [dict(zip(columnar["fields"], values, strict=True)) for values in columnar["rows"]] == rows
    assert client.get(f"/api/v1/workloads/{other}/sub-epochs").json == []
