"""Endpoints that make other processes start work are capped: repeats reuse the pending request, and each actor
has a limit on queued exports, queued profiling jobs and active deployments (429 JSON with Retry-After)."""

from __future__ import annotations

import pytest

from hopper.engine.store import CheckpointRow, ExportRequestRow, ExportRow
from hopper.rest import create_app

TOKEN = "caps-token-123456"


@pytest.fixture
def trained(services, digits):
    """Two configs that look trained (an epoch-end checkpoint row each) and one export of the first."""
    wl = services.launch_workload({"name": "caps", "model": "mlp", "dataset": "digits", "max_epochs": 1,
                                   "space": {"lr": {"type": "choice", "values": [0.01, 0.001, 0.1]}}})
    ids = [c.id for c in services.list_configs(wl.id)]
    assert len(ids) == 3
    with services.store.session() as s:
        for cid in ids:
            s.add(CheckpointRow(config_id=cid, epoch=0, seq=1, path=f"/ck/{cid}.npz", sha256="0" * 64, bytes=1,
                                epoch_end=True))
        s.flush()
        ck = s.query(CheckpointRow).filter_by(config_id=ids[0]).one()
        s.add(ExportRow(config_id=ids[0], checkpoint_id=ck.id, quantization="float32", path="/ex/1.tflite",
                        sha256="1" * 64, bytes=1, convert_seconds=0.1))
    with services.store.session() as s:
        export_id = s.query(ExportRow).one().id
    return ids, export_id


def _client(services, **limits):
    services.settings = services.settings.with_overrides(**limits)
    for context in (services.edge, services.data, services.steering, services.admin):
        context.settings = services.settings
    app = create_app(services, token=TOKEN, secret_key="s" * 32)
    app.testing = True
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return c


def _too_busy(response):
    assert response.status_code == 429, response.json
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json["error"]["code"] == "too_busy" and response.json["error"]["field"]
    return response.json["error"]["message"]


def test_a_repeated_export_request_reuses_the_pending_one(services, trained):
    ids, _ = trained
    client = _client(services, max_queued_exports=2)
    first = client.post(f"/api/v1/configs/{ids[0]}/exports", json={"quantizations": ["int8", "float32"]})
    assert first.status_code == 202
    for _ in range(50):  # the attack from the issue: hundreds of identical requests
        again = client.post(f"/api/v1/configs/{ids[0]}/exports", json={"quantizations": ["float32", "int8"]})
        assert again.status_code == 202 and again.json["id"] == first.json["id"] and again.json["reused"]
    with services.store.session() as s:
        assert s.query(ExportRequestRow).count() == 1
    # different work counts against the actor's limit: 2 queued, the third is refused
    assert client.post(f"/api/v1/configs/{ids[1]}/exports", json={"quantizations": ["int8"]}).status_code == 202
    message = _too_busy(client.post(f"/api/v1/configs/{ids[2]}/exports", json={"quantizations": ["int8"]}))
    assert "HOPPER_MAX_QUEUED_EXPORTS" in message
    # another actor is not held by the first one's queue
    services.request_export(ids[2], quantizations=["int8"], actor="someone-else")


def test_a_repeated_deployment_reuses_the_active_one_and_active_ones_are_capped(services, trained):
    ids, _ = trained
    client = _client(services, max_running_deployments=2)
    first = client.post(f"/api/v1/configs/{ids[0]}/deploy", json={"format": "tflite"})
    assert first.status_code == 202
    for _ in range(20):
        again = client.post(f"/api/v1/configs/{ids[0]}/deploy", json={"format": "tflite"})
        assert again.json["id"] == first.json["id"] and again.json["reused"]
    assert client.post(f"/api/v1/configs/{ids[0]}/deploy", json={"format": "keras"}).status_code == 202
    message = _too_busy(client.post(f"/api/v1/configs/{ids[1]}/deploy", json={"format": "tflite"}))
    assert "HOPPER_MAX_RUNNING_DEPLOYMENTS" in message
    # stopping one frees a slot
    assert client.post(f"/api/v1/deployments/{first.json['id']}/stop", json={}).status_code == 200
    assert client.post(f"/api/v1/configs/{ids[1]}/deploy", json={"format": "tflite"}).status_code == 202
    assert len(services.list_deployments()) == 3


def test_queued_profiling_jobs_are_capped_per_actor(services, trained):
    _, export_id = trained
    client = _client(services, max_queued_profiles=3)
    for _ in range(3):
        assert client.post(f"/api/v1/exports/{export_id}/profile", json={}).status_code == 201
    message = _too_busy(client.post(f"/api/v1/exports/{export_id}/profile", json={}))
    assert "HOPPER_MAX_QUEUED_PROFILES" in message
    assert len(services.list_jobs()) == 3
