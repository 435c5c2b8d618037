"""Edge jobs in the store (SQLite and PostgreSQL): atomic claims, leases, re-queue, attempts, metrics."""

import threading
import time

import pytest

from hopper.app import open_services
from hopper.engine.errors import Conflict, InvalidState, ValidationError
from hopper.engine.services.edge import pareto_mask
from hopper.engine.store import CheckpointRow, ConfigRow, ExportRow
from tests.support.seed import seed_workload

RESULT = {"latency_p50_ms": 0.5, "latency_p95_ms": 0.9, "size_bytes": 1234, "peak_memory_bytes": 4096,
          "energy_mj": None, "runs": 10, "interpreter": "ai-edge-litert"}


@pytest.fixture
def edge(settings):
    settings = settings.with_overrides(edge_lease_seconds=1.0, edge_max_attempts=2)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    store = services.store
    with store.session() as s:
        wl = seed_workload(s)
        exports = []
        for i in range(3):
            cfg = ConfigRow(workload_id=wl.id, hparams={"lr": 0.1 * (i + 1)}, status="done")
            s.add(cfg)
            s.flush()
            ck = CheckpointRow(config_id=cfg.id, epoch=1, seq=1, path="/c", sha256="0" * 64, bytes=1, epoch_end=True)
            s.add(ck)
            s.flush()
            ex = ExportRow(config_id=cfg.id, checkpoint_id=ck.id, quantization="float32" if i < 2 else "int8",
                           path="/e.tflite", sha256="a" * 64, bytes=1000 * (i + 1), tflite_accuracy=0.9 + 0.01 * i,
                           convert_seconds=1.0)
            s.add(ex)
            s.flush()
            exports.append((ex.id, cfg.id))
    yield services, exports
    store.dispose()


def test_claims_are_atomic_and_results_become_metrics(edge):
    services, exports = edge
    a = services.register_device("pi-a", hardware={"cores": 4}, interpreter="tflite-runtime")
    b = services.register_device("pi-b", hardware={"cores": 2}, interpreter="ai-edge-litert")
    for export_id, _ in exports:
        services.enqueue_profiling(export_id, runs=10)
    claimed: list = []

    def claimer(device_id):
        while (job := services.claim_job(device_id)) is not None:
            claimed.append((device_id, job.id))

    threads = [threading.Thread(target=claimer, args=(d.id,)) for d in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(j for _, j in claimed) == sorted({j for _, j in claimed}) and len(claimed) == 3
    for device_id, job_id in claimed:
        out = services.complete_job(job_id, device_id, RESULT)
        assert out.status == "done"
    config_id = exports[0][1]
    info = services.get_config(config_id)
    device = next(d for d, j in claimed if services.get_job(j).export_id == exports[0][0])
    name = "pi-a" if device == a.id else "pi-b"
    assert info.latest_metrics[f"edge_latency_ms@{name}"] == 0.5
    assert info.latest_metrics["model_bytes"] == 1234
    assert info.version == 1  # edge numbers do not bump the ETag
    int8 = services.get_config(exports[2][1]).latest_metrics
    assert any(k.endswith(":int8") and k.startswith("edge_latency_ms@") for k in int8)
    assert len(services.list_profiles()) == 3 and services.list_profiles(config_id=config_id)[0].runs == 10
    with pytest.raises(Conflict):
        services.complete_job(claimed[0][1], claimed[0][0], RESULT)  # done already


def _poll(predicate, timeout: float, what: str):
    """Call ``predicate`` until it returns something truthy (generous deadline: the machine may be loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_expired_leases_requeue_and_give_up_after_max_attempts(edge):
    """Asserted against the leases' own expiry times, not against sleeps: the job moves to another device
    only once the lease (as extended by the last heartbeat) has run out, however slow the machine is."""
    services, exports = edge
    a = services.register_device("a", interpreter="tflite-runtime")
    b = services.register_device("b", interpreter="ai-edge-litert")
    job = services.enqueue_profiling(exports[0][0])[0]
    first = services.claim_job(a.id)
    assert first.id == job.id and first.attempts == 1
    claimed_until = services.get_job(job.id).lease_expires_at
    assert services.claim_job(b.id) is None
    beat = services.heartbeat(a.id)  # a heartbeat keeps the lease
    assert beat.extended_jobs == 1
    held = services.get_job(job.id)
    assert held.status == "running" and held.claimed_by == a.id and held.lease_expires_at > claimed_until
    # a stops heartbeating: b gets the job, but never before a's extended lease ran out
    again = _poll(lambda: services.claim_job(b.id), 60, "a's lease to run out and b to claim the job")
    assert again.id == job.id and again.attempts == 2 and "stopped responding" in again.error
    assert services.get_job(job.id).claimed_at >= held.lease_expires_at
    with pytest.raises(Conflict, match="not held"):
        services.complete_job(job.id, a.id, RESULT)  # a woke up too late
    # b goes silent too: after max_attempts (2) claims the job fails instead of returning to the queue
    b_until = services.get_job(job.id).lease_expires_at

    def given_up():
        assert services.claim_job(a.id) is None, "a job past its attempts must not be handed out again"
        return (job_now := services.get_job(job.id)).status == "failed" and job_now

    final = _poll(given_up, 60, "the job to be given up")
    assert final.finished_at >= b_until and "gave up after 2 attempts" in final.error


def test_failed_jobs_retry_then_fail_and_targets_are_respected(edge):
    services, exports = edge
    a = services.register_device("a", interpreter="tflite-runtime")
    b = services.register_device("b", interpreter="ai-edge-litert")
    jobs = services.enqueue_profiling(exports[1][0], all_devices=True)
    assert [j.device_id for j in jobs] == [a.id, b.id]
    mine = services.claim_job(a.id)
    assert mine.device_id == a.id and mine.export.sha256 == "a" * 64
    assert services.fail_job(mine.id, a.id, "checksum mismatch").status == "queued"
    assert services.claim_job(a.id).id == mine.id
    failed = services.fail_job(mine.id, a.id, "checksum mismatch")
    assert failed.status == "failed" and "checksum mismatch" in failed.error
    with pytest.raises(ValidationError):
        services.register_device("bad name!", interpreter="tflite-runtime")
    with pytest.raises(ValidationError):
        services.complete_job(jobs[1].id, b.id, {"latency_p50_ms": -1})


def test_a_device_that_signs_off_is_offline_at_once_and_gives_its_jobs_back(edge):
    services, exports = edge
    a = services.register_device("a", interpreter="tflite-runtime")
    b = services.register_device("b", interpreter="ai-edge-litert")
    job = services.enqueue_profiling(exports[0][0])[0]
    assert services.claim_job(a.id).id == job.id
    signed_off = services.sign_off(a.id)
    assert signed_off.device.status == "offline" and signed_off.requeued_jobs == 1
    assert services.get_job(job.id).status == "queued"
    (mine,) = services.enqueue_profiling(exports[1][0], all_devices=True)
    assert mine.device_id == b.id
    assert {services.claim_job(b.id).id, services.claim_job(b.id).id} == {mine.id, job.id}
    assert services.heartbeat(a.id).device.status == "online"  # back when it heartbeats again


def test_enqueue_on_all_devices_needs_a_device(edge):
    services, exports = edge
    with pytest.raises(InvalidState, match="no edge device is online"):
        services.enqueue_profiling(exports[0][0], all_devices=True)


def test_pareto_mask():
    points = [(0.9, 1.0), (0.95, 2.0), (0.85, 1.5), (0.95, 3.0), (0.8, 0.5)]
    assert pareto_mask(points, ("max", "min")) == [True, True, False, False, True]


def test_the_rest_json_and_the_device_tables_keep_their_shape(edge):
    """Entities out of the services, the same JSON out of REST: plain isoformat times, nested export, extras."""
    from datetime import datetime

    from hopper.rest import create_app
    from hopper.webui import callbacks as cb

    services, exports = edge
    client = create_app(services, token="t" * 16, secret_key="s" * 32).test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + "t" * 16
    device = client.post("/api/v1/devices", json={"name": "pi", "interpreter": "ai-edge-litert",
                                                  "hardware": {"cores": 4, "memory_bytes": 2**30}}).json
    assert set(device) == {"id", "name", "hardware", "interpreter", "status", "registered_at", "last_seen",
                           "seconds_since_seen"}
    assert datetime.fromisoformat(device["last_seen"]) and not device["last_seen"].endswith("Z")
    (job,) = client.post(f"/api/v1/exports/{exports[0][0]}/profile", json={"device_id": device["id"]}).json
    assert "export" not in job and job["status"] == "queued"
    claimed = client.post(f"/api/v1/devices/{device['id']}/claim").json["job"]
    assert claimed["id"] == job["id"] and claimed["lease_seconds"] == 1.0
    assert claimed["export"] == {"id": exports[0][0], "config_id": exports[0][1], "quantization": "float32",
                                 "sha256": "a" * 64, "bytes": 1000,
                                 "artifact": f"/api/v1/exports/{exports[0][0]}/artifact"}
    assert datetime.fromisoformat(claimed["lease_expires_at"]) > datetime.fromisoformat(claimed["claimed_at"])
    beat = client.post(f"/api/v1/devices/{device['id']}/heartbeat").json
    assert beat["extended_jobs"] == 1 and beat["lease_seconds"] == 1.0 and beat["device"]["status"] == "online"
    done = client.post(f"/api/v1/jobs/{job['id']}/complete", json={"device_id": device["id"], "result": RESULT}).json
    assert done["status"] == "done" and "export" not in done and done["metrics"]["edge_latency_ms@pi"] == 0.5
    assert client.get(f"/api/v1/jobs/{job['id']}").json["export"]["id"] == exports[0][0]
    (profile,) = client.get("/api/v1/profiles").json
    assert profile["id"] == done["profile_id"] and profile["device"] == "pi" and profile["detail"] == {
        "interpreter": "ai-edge-litert"}
    workload_id = services.get_config(exports[0][1]).workload_id
    front = client.get(f"/api/v1/workloads/{workload_id}/pareto").json
    assert (front["device"], front["devices"], len(front["points"])) == ("pi", ["pi"], 1)
    assert front["points"][0]["pareto"] is True and front["points"][0]["x"] == 0.5
    by_size = client.get(f"/api/v1/workloads/{workload_id}/pareto", query_string={"x": "bytes"}).json
    assert [p["bytes"] for p in by_size["points"]] == [1000, 2000, 3000]
    assert [p["pareto"] for p in by_size["points"]] == [True, True, True]  # bigger, and more accurate
    assert services.pareto(workload_id, x="bytes").to_dict() == by_size

    devices, profiles, jobs, deployments = cb.device_tables(services)
    assert devices[0]["name"] == "pi" and devices[0]["memory"] == "1.0 GiB" and devices[0]["profiles"] == 1
    assert profiles[0]["at"] == profile["created_at"][:19] and jobs[0]["claimed by"] == "pi" and deployments == []
    figure, names = cb.pareto_figure(services, workload_id, "latency", None)
    assert names == ["pi"] and len(figure.data) >= 2
