"""Edge agents as real subprocesses (tflite-runtime and ai-edge-litert) against a real HTTP server."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


class Agents:
    """Starts `hopper edge-agent` processes and stops every one of them at the end of the test."""

    def __init__(self, server, tmp_path: Path) -> None:
        self.server, self.tmp_path, self.procs = server, tmp_path, {}

    def start(self, name: str, interpreter: str, *extra: str, enrol: bool = True) -> subprocess.Popen:
        log = open(self.tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        # each agent enrols with its own one-time token, then works with the device token it received
        credential = ["--enrol-token", self.server.services.create_enrolment_token()] if enrol else []
        proc = subprocess.Popen(
            [sys.executable, "-m", "hopper.cli", "edge-agent", "--server", self.server.base, *credential, "--name", name, "--interpreter", interpreter, "--poll", "0.2", "--heartbeat", "0.5",
             "--workdir", str(self.tmp_path / name), *extra],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.procs[name] = proc
        self.server.wait(lambda: any(d["name"] == name for d in self.server.get("/devices")), 60,
                         f"agent {name} to register")
        return proc

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def agents(edge_server, tmp_path):
    a = Agents(edge_server, tmp_path)
    yield a
    a.stop_all()


def _device(server, name):
    return next(d for d in server.get("/devices") if d["name"] == name)


def test_two_agents_on_two_interpreters_profile_three_exports(edge_server, agents):
    server = edge_server
    agents.start("lite-rt", "tflite-runtime", "--runs", "50", "--warmup", "5")
    agents.start("litert", "ai-edge-litert", "--runs", "50", "--warmup", "5")
    for name, interpreter in (("lite-rt", "tflite-runtime"), ("litert", "ai-edge-litert")):
        device = _device(server, name)
        assert device["status"] == "online" and device["interpreter"] == interpreter
        hw = device["hardware"]
        assert hw["cores"] >= 1 and hw["memory_bytes"] > 0 and hw["cpu"] and hw["interpreter_version"]
    # agents of earlier tests signed off when they stopped: "all devices" means these two
    assert {d["name"] for d in server.get("/devices") if d["status"] == "online"} == {"lite-rt", "litert"}
    jobs = []
    for export in server.exports:
        jobs += server.post(f"/exports/{export.id}/profile", {"all_devices": True}, status=201)
    assert len(jobs) >= 6
    ids = {j["id"] for j in jobs}
    server.wait(lambda: all(j["status"] == "done" for j in server.get("/jobs") if j["id"] in ids), 120,
                "six profiling jobs")

    profiles = [p for p in server.get("/profiles", workload_id=server.workload_id) if p["job_id"] in ids]
    assert len(profiles) == 6
    assert {(p["export_id"], p["device"]) for p in profiles} == {
        (e.id, d) for e in server.exports for d in ("lite-rt", "litert")}
    for p in profiles:
        assert 0 < p["latency_p50_ms"] <= p["latency_p95_ms"] and p["runs"] == 50
        export = next(e for e in server.exports if e.id == p["export_id"])
        assert p["size_bytes"] == export.bytes
        assert p["peak_memory_bytes"] is not None and p["peak_memory_bytes"] >= 0
        assert p["detail"]["interpreter"] == ("tflite-runtime" if p["device"] == "lite-rt" else "ai-edge-litert")
    int8 = next(e for e in server.exports if e.quantization == "int8")
    float_a = next(e for e in server.exports if e.quantization == "float32" and e.config_id == int8.config_id)
    assert int8.bytes < float_a.bytes

    # the numbers are metrics of the configs (objectives can name them)
    config = server.get(f"/configs/{float_a.config_id}")
    names = {m["name"] for m in config["metrics"]}
    assert {"edge_latency_ms@lite-rt", "edge_latency_ms@litert", "model_bytes", "edge_latency_ms@litert:int8",
            "model_bytes:int8", "edge_latency_p95_ms@litert"} <= names
    assert config["latest_metrics"]["model_bytes"] == float_a.bytes

    pareto = server.get(f"/workloads/{server.workload_id}/pareto", device="litert")
    assert len(pareto["points"]) == 3 and any(p["pareto"] for p in pareto["points"])
    assert {"lite-rt", "litert"} <= set(pareto["devices"])


def test_a_killed_agent_loses_its_job_to_another_after_the_lease(edge_server, agents):
    server = edge_server
    slow = agents.start("doomed", "ai-edge-litert", "--runs", "50000000", "--warmup", "0")
    doomed = _device(server, "doomed")["id"]
    job = server.post(f"/exports/{server.exports[0].id}/profile", {}, status=201)[0]
    held = server.wait(lambda: (j := server.get(f"/jobs/{job['id']}"))["claimed_by"] == doomed and j, 30,
                       "the doomed agent to claim")
    slow.send_signal(signal.SIGKILL)
    slow.wait(10)
    # Nobody knows yet: the job stays the dead agent's until its lease (2 s, extended by each heartbeat) runs
    # out. Read after the kill (no heartbeat can extend it any more), unless a loaded machine took longer
    # than the lease to get here and the job was re-queued already.
    after_kill = server.get(f"/jobs/{job['id']}")
    if after_kill["status"] == "running" and after_kill["claimed_by"] == doomed:
        held = after_kill
    lease_ran_out = datetime.fromisoformat(held["lease_expires_at"])
    agents.start("rescuer", "tflite-runtime", "--runs", "30", "--warmup", "2")
    rescuer = _device(server, "rescuer")["id"]
    done = server.wait(lambda: (j := server.get(f"/jobs/{job['id']}"))["status"] == "done" and j, 60,
                       "the re-queued job to finish")
    assert done["attempts"] == 2 and done["claimed_by"] == rescuer
    assert datetime.fromisoformat(done["claimed_at"]) >= lease_ran_out, (done["claimed_at"], lease_ran_out)
    assert done["result"]["runs"] == 30
    server.wait(lambda: _device(server, "doomed")["status"] == "offline", 10, "the dead device to show offline")
    assert _device(server, "rescuer")["status"] == "online"


def test_a_corrupted_artifact_is_caught_by_its_checksum(edge_server, agents, tmp_path):
    server = edge_server
    export = next(e for e in server.exports if e.quantization == "float32" and e.config_id ==
                  server.config_ids[1])
    path = Path(export.path)
    backup = tmp_path / "good.tflite"
    shutil.copy(path, backup)
    try:
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0xFF  # one flipped byte after the sha256 was recorded
        path.write_bytes(bytes(blob))
        agents.start("checker", "ai-edge-litert", "--runs", "20", "--warmup", "1", "--download-retries", "2")
        job = server.post(f"/exports/{export.id}/profile", {}, status=201)[0]
        failed = server.wait(lambda: (j := server.get(f"/jobs/{job['id']}"))["status"] == "failed" and j, 60,
                             "the job to fail")
        assert failed["attempts"] == 3
        corrupted_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        # both sums, in full: the one recorded at export and the one of what was downloaded
        assert "checksum mismatch on all 2 downloads" in failed["error"]
        assert f"expected sha256 {export.sha256}, got {corrupted_sha256}" in failed["error"], failed["error"]
        log = agents.log("checker")
        assert log.count("checksum mismatch on download") == 6  # 2 downloads x 3 attempts, each retried
    finally:
        shutil.copy(backup, path)
    job = server.post(f"/exports/{export.id}/profile", {}, status=201)[0]
    server.wait(lambda: server.get(f"/jobs/{job['id']}")["status"] == "done", 60, "the repaired export to profile")


def test_an_agent_enrols_once_and_restarts_on_its_saved_device_token(edge_server, agents, tmp_path):
    import stat

    server = edge_server
    first = agents.start("enrolled", "ai-edge-litert", "--runs", "10", "--warmup", "1")
    token_file = tmp_path / "enrolled" / "device-token"
    device_token = token_file.read_text().strip()
    assert device_token.startswith("hop_") and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert device_token not in agents.log("enrolled")
    device = _device(server, "enrolled")
    first.terminate()
    first.wait(15)
    server.wait(lambda: _device(server, "enrolled")["status"] == "offline", 10, "the agent to sign off")
    # restart without any enrolment token: the saved device token registers it again, same device
    agents.start("enrolled", "ai-edge-litert", "--runs", "10", "--warmup", "1", enrol=False)
    server.wait(lambda: _device(server, "enrolled")["status"] == "online", 30, "the restarted agent")
    assert _device(server, "enrolled")["id"] == device["id"]
    job = server.post(f"/exports/{server.exports[0].id}/profile", {"device_id": device["id"]}, status=201)[0]
    done = server.wait(lambda: (j := server.get(f"/jobs/{job['id']}"))["status"] == "done" and j, 60,
                       "the restarted agent to profile")
    assert done["claimed_by"] == device["id"]
    enrolments = [e for e in server.get("/events", limit=200) if e["action"] == "enrol_device"
                  and e["object_id"] == device["id"]]
    assert len(enrolments) == 1  # enrolled once; the restart used the device token


def test_the_agent_imports_no_tensorflow_sqlalchemy_or_engine():
    code = ("import sys, json, hopper.edge_deploy.agent as a; a.load_interpreter('tflite-runtime'); "
            "a.load_interpreter('ai-edge-litert'); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'sqlalchemy', 'flask', 'alembic') or m.startswith('hopper.engine'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
    # and the standalone file runs without the hopper package at all
    agent_file = Path(__file__).resolve().parents[2] / "edge_deploy" / "agent.py"
    out = subprocess.run([sys.executable, str(agent_file), "--help"], capture_output=True, text=True, check=True,
                         cwd="/")
    assert "--interpreter" in out.stdout
