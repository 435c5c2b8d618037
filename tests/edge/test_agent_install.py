"""The edge agent as devices install it: its own small distribution, in a fresh venv without TensorFlow."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("tensorflow", "keras", "sqlalchemy", "flask", "dash", "hopper-ms", "pyspark")


def test_the_agent_distribution_installs_without_tensorflow_and_profiles(edge_server, tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(ROOT / "agent-dist"),
                    "-w", str(wheels)], check=True, timeout=300)
    (wheel,) = wheels.glob("hopper_edge_agent-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))).decode()
        assert "hopper_edge_agent.py" in zf.namelist()
    requires = [line.split(":", 1)[1].strip().lower() for line in metadata.splitlines() if line.startswith("Requires-Dist")]
    assert requires and not any(r.startswith(HEAVY) for r in requires), requires

    venv = tmp_path / "device-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt")]
    subprocess.run([*pip, f"hopper-edge-agent[litert] @ {wheel.as_uri()}"], check=True, timeout=600)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                               capture_output=True, text=True, check=True).stdout.lower()
    assert "ai-edge-litert" in installed and not any(f"{h}==" in installed for h in HEAVY), installed

    server = edge_server
    log = tmp_path / "agent.log"
    with open(log, "w") as out:
        agent = subprocess.Popen(
            [str(venv / "bin" / "hopper-edge-agent"), "--server", server.base, "--enrol-token",
             server.services.create_enrolment_token(),
             "--name", "standalone", "--interpreter", "ai-edge-litert", "--runs", "30", "--warmup", "3",
             "--poll", "0.2", "--heartbeat", "0.5", "--max-jobs", "1", "--workdir", str(tmp_path / "work")],
            stdout=out, stderr=subprocess.STDOUT, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        try:
            device = server.wait(lambda: next((d for d in server.get("/devices") if d["name"] == "standalone"), None),
                                 60, "the standalone agent to register")
            export = server.exports[0]
            (job,) = server.post(f"/exports/{export.id}/profile", {"device_id": device["id"]}, status=201)
            done = server.wait(lambda: (j := server.get(f"/jobs/{job['id']}"))["status"] in ("done", "failed") and j,
                               120, "the profile")
            assert agent.wait(30) == 0  # --max-jobs 1
        finally:
            if agent.poll() is None:
                agent.kill()
    assert done["status"] == "done", (done, log.read_text())
    profile = next(p for p in server.get("/profiles") if p["device"] == "standalone")
    assert 0 < profile["latency_p50_ms"] <= profile["latency_p95_ms"] and profile["size_bytes"] == export.bytes
