"""Device tokens reach only their own device's routes and jobs, on the served edge server (real exports, HTTP)."""

from __future__ import annotations

import re

import pytest
import requests

pytestmark = pytest.mark.slow

DEVICE_OPERATIONS = {
    ("post", "/api/v1/devices"), ("post", "/api/v1/devices/{device_id}/heartbeat"),
    ("post", "/api/v1/devices/{device_id}/offline"), ("post", "/api/v1/devices/{device_id}/claim"),
    ("post", "/api/v1/jobs/{job_id}/complete"), ("post", "/api/v1/jobs/{job_id}/fail"),
    ("post", "/api/v1/jobs/{job_id}/release"), ("get", "/api/v1/exports/{export_id}/artifact"),
}


def _call(server, method: str, path: str, token: str, body: dict | None = None) -> requests.Response:
    return requests.request(method.upper(), server.base + path, json=body, timeout=60, allow_redirects=False,
                            headers={"Authorization": f"Bearer {token}"})


def _forbidden(response: requests.Response, what: str) -> None:
    assert response.status_code == 403, (what, response.status_code, response.text[:300])
    assert response.json()["error"]["code"] == "forbidden", what


def _enrol(server, name: str, token: str) -> dict:
    r = _call(server, "post", "/api/v1/devices", token, {"name": name, "interpreter": "ai-edge-litert",
                                                          "hardware": {"cores": 1}})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_device_token_acts_only_for_its_own_device_and_jobs(edge_server):
    server, services = edge_server, edge_server.services
    enrol = services.create_enrolment_token()
    a = _enrol(server, "sec-a", enrol)
    assert a["token"].startswith("hop_")
    _forbidden(_call(server, "post", "/api/v1/devices", enrol, {"name": "sec-x", "interpreter": "ai-edge-litert"}),
               "a spent enrolment token")
    b = _enrol(server, "sec-b", services.create_enrolment_token())
    # an enrolment token does nothing but enrol
    unused = services.create_enrolment_token()
    _forbidden(_call(server, "get", "/api/v1/workloads", unused), "enrolment token on a read")
    _forbidden(_call(server, "post", f"/api/v1/devices/{a['id']}/claim", unused), "enrolment token on a claim")

    export = server.exports[0].to_dict()
    (job,) = server.post(f"/exports/{export['id']}/profile", {"device_id": b["id"]}, status=201)
    assert _call(server, "post", f"/api/v1/devices/{a['id']}/claim", a["token"]).json()["job"] is None
    claimed = _call(server, "post", f"/api/v1/devices/{b['id']}/claim", b["token"]).json()["job"]
    assert claimed["id"] == job["id"]

    # device A against device B's device, job and export
    result = {"latency_p50_ms": 1.0, "latency_p95_ms": 2.0, "size_bytes": 10, "runs": 1}
    for method, path, body in (
            ("post", f"/api/v1/devices/{b['id']}/heartbeat", None),
            ("post", f"/api/v1/devices/{b['id']}/claim", None),
            ("post", f"/api/v1/devices/{b['id']}/offline", None),
            ("post", f"/api/v1/jobs/{job['id']}/complete", {"device_id": b["id"], "result": result}),
            ("post", f"/api/v1/jobs/{job['id']}/complete", {"device_id": a["id"], "result": result}),
            ("post", f"/api/v1/jobs/{job['id']}/fail", {"device_id": b["id"], "error": "forged"}),
            ("post", f"/api/v1/jobs/{job['id']}/release", {"device_id": b["id"]}),
            ("get", f"/api/v1/exports/{export['id']}/artifact", None),
            ("post", "/api/v1/devices", {"name": "sec-b", "interpreter": "tflite-runtime",
                                         "hardware": {"cores": 999}})):
        _forbidden(_call(server, method, path, a["token"], body), f"A: {method} {path}")
    assert server.get(f"/jobs/{job['id']}")["status"] == "running"  # nothing A sent reached the job
    assert server.get(f"/devices/{b['id']}")["hardware"] == {"cores": 1}

    # every operation of the OpenAPI document that is not a device operation is refused to a device token
    document = requests.get(server.base + "/api/openapi.json", timeout=30,
                            headers={"Authorization": f"Bearer {server.token}"}).json()
    values = {"device_id": a["id"], "job_id": job["id"], "export_id": export["id"], "workload_id": server.workload_id,
              "config_id": server.config_ids[0]}
    checked = 0
    for path, operations in document["paths"].items():
        for method in operations:
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            full = path if path.startswith("/api/") else "/api/v1" + path.removeprefix("/api/v1")
            if (method, full) in DEVICE_OPERATIONS:
                continue
            url = re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), 1)), full)
            _forbidden(_call(server, method, url, a["token"], {}), f"A: {method} {url}")
            checked += 1
    assert checked >= 25
    for extra in ("/api/openapi.json", "/api/docs"):
        _forbidden(_call(server, "get", extra, a["token"]), extra)
    r = requests.get(server.base + "/", headers={"Authorization": f"Bearer {a['token']}"}, timeout=30,
                     allow_redirects=False)
    _forbidden(r, "the UI")

    # device B does its own work
    download = _call(server, "get", f"/api/v1/exports/{export['id']}/artifact", b["token"])
    assert download.status_code == 200 and download.headers["X-Hopper-SHA256"] == export["sha256"]
    assert _call(server, "post", f"/api/v1/devices/{b['id']}/heartbeat", b["token"]).status_code == 200
    again = _call(server, "post", "/api/v1/devices", b["token"], {"name": "sec-b", "interpreter": "ai-edge-litert",
                                                                   "hardware": {"cores": 2}})
    assert again.status_code == 201 and "token" not in again.json()
    failed = _call(server, "post", f"/api/v1/jobs/{job['id']}/fail", b["token"],
                   {"device_id": b["id"], "error": "test over", "retryable": False})
    assert failed.status_code == 200 and failed.json()["status"] == "failed"
    # once the job is no longer held, B may not download its export any more
    _forbidden(_call(server, "get", f"/api/v1/exports/{export['id']}/artifact", b["token"]), "B after the job")

    # re-enrolling a name revokes the device's earlier token
    fresh = _enrol(server, "sec-a", services.create_enrolment_token())
    assert fresh["id"] == a["id"]
    _forbidden(_call(server, "post", f"/api/v1/devices/{a['id']}/heartbeat", a["token"]), "A's old token")
    for device in (fresh, b):
        assert _call(server, "post", f"/api/v1/devices/{device['id']}/offline", device["token"]).status_code == 200

    events = server.get("/events", limit=50)
    assert any(e["action"] == "enrol_device" and e["actor"] == "device:sec-a" for e in events)
