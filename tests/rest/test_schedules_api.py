"""The schedules resource: create, list, show, enable/disable, runs; 400 when a body does not match the document,
422 when the service refuses what it means, 404 for what does not exist; all of it in the OpenAPI document."""

from datetime import timedelta

import pytest

from hopper.rest import create_app

TOKEN = "schedule-token"
SPEC = {"name": "nightly", "model": "mlp", "dataset": "digits", "space": {"lr": 0.01, "units": 32}, "max_epochs": 1}


@pytest.fixture
def client(services, digits):
    app = create_app(services, token=TOKEN, secret_key="s" * 32)
    app.testing = True
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return c


def _error(response, status: int, field: str | None = None) -> str:
    assert response.status_code == status, response.json
    error = response.json["error"]
    if field is not None:
        assert (error["field"] or "").startswith(field), error
    return error["message"]


def test_schedule_endpoints_and_their_errors(client, services):
    # 400: does not match the document (no cron, an unknown key, a spec that is not a workload spec, enabled: "yes")
    _error(client.post("/api/v1/schedules", json={"spec": SPEC}), 400, "cron")
    _error(client.post("/api/v1/schedules", json={"cron": "0 2 * * *", "spec": SPEC, "every": "day"}), 400, "every")
    _error(client.post("/api/v1/schedules", json={"cron": "0 2 * * *", "spec": {**SPEC, "max_epochs": 0}}), 400,
           "spec.max_epochs")
    _error(client.post("/api/v1/schedules", data="0 2 * * *"), 400, "body")
    # 422: well-formed, refused by the service
    assert "6 fields" in _error(client.post("/api/v1/schedules", json={"cron": "0 2 * * * *", "spec": SPEC}), 422,
                                "cron")
    _error(client.post("/api/v1/schedules", json={"cron": "0 2 * * *", "spec": SPEC, "timezone": "Berlin"}), 422,
           "timezone")
    assert "does not exist" in _error(client.post("/api/v1/schedules", json={
        "cron": "0 2 * * *", "spec": {**SPEC, "dataset": "gone"}}), 422, "dataset")
    assert client.get("/api/v1/schedules").json == []

    created = client.post("/api/v1/schedules", json={"cron": "0 2 * * *", "spec": SPEC, "timezone": "Europe/Berlin"})
    assert created.status_code == 201, created.json
    schedule = created.json
    assert (schedule["name"], schedule["cron"], schedule["timezone"], schedule["enabled"]) == (
        "nightly", "0 2 * * *", "Europe/Berlin", True)
    assert schedule["spec"] == SPEC and schedule["created_by"] == "admin"
    sid = schedule["id"]
    assert [s["id"] for s in client.get("/api/v1/schedules").json] == [sid]
    assert client.get(f"/api/v1/schedules/{sid}").json == schedule
    _error(client.get("/api/v1/schedules/999"), 404, "schedule_id")
    _error(client.patch("/api/v1/schedules/999", json={"enabled": False}), 404)
    _error(client.get("/api/v1/schedules/999/runs"), 404)
    _error(client.patch(f"/api/v1/schedules/{sid}", json={"enabled": "sometimes"}), 400, "enabled")
    _error(client.patch(f"/api/v1/schedules/{sid}", json={}), 400, "enabled")

    assert client.patch(f"/api/v1/schedules/{sid}", json={"enabled": False}).json["enabled"] is False
    assert client.get(f"/api/v1/schedules/{sid}/runs").json == []
    assert client.patch(f"/api/v1/schedules/{sid}", json={"enabled": True}).json["enabled"] is True
    due = services.get_schedule(sid).next_run_at
    [run] = services.fire_due_schedules(now=due + timedelta(seconds=1))
    runs = client.get(f"/api/v1/schedules/{sid}/runs").json
    assert [(r["id"], r["status"], r["workload_id"]) for r in runs] == [(run.id, "launched", run.workload_id)]
    assert client.get(f"/api/v1/workloads/{run.workload_id}").json["owner"] == f"schedule:{sid}"

    document = client.get("/api/openapi.json").json
    post = document["paths"]["/api/v1/schedules"]["post"]
    assert {"201", "400", "422"} <= set(post["responses"])
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ScheduleBody"}
    patch = document["paths"]["/api/v1/schedules/{schedule_id}"]["patch"]
    assert {"200", "400", "404", "422"} <= set(patch["responses"])
    assert {"200", "404"} <= set(document["paths"]["/api/v1/schedules/{schedule_id}/runs"]["get"]["responses"])
