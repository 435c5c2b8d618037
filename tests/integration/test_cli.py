"""The ``hopper`` command as a user runs it: subprocesses, exit codes, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hopper(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "HOPPER_HOME": str(home), "HOPPER_DATA_ROOTS": str(home / "data"),
           "HOPPER_POLL_INTERVAL": "0.05", "COLUMNS": "200"}

    def run(*args, ok=True):
        proc = subprocess.run([sys.executable, "-m", "hopper.cli", *args], env=env, capture_output=True, text=True,
                              timeout=600, cwd=tmp_path)
        if ok:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc
    run.home = home
    return run


def test_unmigrated_store_tells_the_user_what_to_run(hopper):
    proc = hopper("workloads", ok=False)
    assert proc.returncode == 6
    assert "run `hopper db upgrade`" in proc.stderr and "Traceback" not in proc.stderr
    assert "up to date" not in hopper("db", "current").stdout
    hopper("db", "upgrade")
    assert "up to date" in hopper("db", "current").stdout


def test_full_cli_session(hopper, tmp_path):
    hopper("db", "upgrade")
    assert "demo workload 1" in hopper("demo", "--epochs", "1").stdout
    assert "digits" in hopper("datasets").stdout

    # a spec file for a batch submission, and precise errors for bad ones
    spec = tmp_path / "spec.yaml"
    spec.write_text((ROOT / "examples/specs/digits_tpe.yaml").read_text().replace("max_epochs: 4", "max_epochs: 1")
                    .replace("max_configs: 8", "max_configs: 2"))
    assert "workload 2" in hopper("submit", str(spec)).stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: vgg99\ndataset: digits\nspace: {lr: 0.1}\n")
    proc = hopper("submit", str(bad), ok=False)
    assert proc.returncode == 2 and "unknown roster model 'vgg99'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2 and "Traceback" not in proc.stderr
    bad.write_text("name: [unclosed\n")
    proc = hopper("submit", str(bad), ok=False)
    assert proc.returncode == 2 and "not valid YAML" in proc.stderr
    assert hopper("submit", str(tmp_path / "missing.yaml"), ok=False).returncode == 2

    # steering commands before the scheduler runs
    added = hopper("add", "1", "--set", "lr=0.002", "--set", "units=32", "--set", "batch_size=32").stdout
    assert "config 7 queued" in added
    assert "stopped" in hopper("stop", "7").stdout
    proc = hopper("stop", "7", ok=False)
    assert proc.returncode == 5 and "it is stopped" in proc.stderr
    proc = hopper("priority", "1", "3", "--version", "99", ok=False)
    assert proc.returncode == 4 and "version" in proc.stderr
    assert hopper("stop", "999", ok=False).returncode == 3
    proc = hopper("add", "1", "--set", "lr", ok=False)
    assert proc.returncode == 2 and "KEY=VALUE" in proc.stderr

    out = hopper("scheduler", "--until-done", "--timeout", "300").stdout
    assert "epoch 1: " in out and "val_accuracy=" in out

    workloads = hopper("workloads").stdout
    assert "done" in workloads and "val_accuracy=" in workloads
    assert "val_accuracy" in hopper("show", "1").stdout
    listed = hopper("configs", "1").stdout
    assert "stopped" in listed and "done" in listed
    shown = json.loads(hopper("workload", "show", "2").stdout)
    assert shown["procedure"] == "tpe" and shown["config_counts"] == {"done": 2}

    cloned = hopper("clone", "1", "--set", "lr=0.0005").stdout
    assert "cloned from 1" in cloned and "lr=0.0005" in cloned
    drilled = hopper("drill-down", "1", "--space", '{"lr": 0.001, "units": 64, "batch_size": 32}').stdout
    assert "parent workload 1" in drilled
    proc = hopper("drill-down", "1", "--space", '{"lr": 0.5, "units": 64, "batch_size": 32}', ok=False)
    assert proc.returncode == 2 and "[space.lr]" in proc.stderr
    events = hopper("events").stdout
    assert "clone_config" in events and "stop_config" in events


def test_help_documents_every_command(hopper):
    out = hopper("--help").stdout
    for command in ("add", "clone", "configs", "dataset", "db", "demo", "drill-down", "events", "priority",
                    "resume", "run", "scheduler", "script", "show", "stop", "submit", "workload", "workloads"):
        assert command in out
        assert hopper(*command.split(), "--help").returncode == 0


def test_token_is_private_and_auth_cannot_be_disabled_off_loopback(hopper):
    hopper("db", "upgrade")
    token = hopper("token").stdout.strip()
    path = hopper.home / "api-token"
    assert path.read_text().strip() == token and len(token) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert hopper("token").stdout.strip() == token  # stable across calls
    proc = hopper("serve", "--host", "0.0.0.0", "--no-auth", "--no-tensorboard", ok=False)
    assert proc.returncode == 2 and "only allowed on loopback" in proc.stderr


def test_make_run_path_trains_the_demo_and_opens_the_ui(hopper, tmp_path):
    """What `make run` runs: `hopper run` migrates, launches the demo, trains and serves the UI."""
    import re
    import time

    import psutil
    import requests

    from tests.support.postgres import free_port

    out = hopper("run", "--epochs", "1", "--until-done").stdout
    assert "demo workload 1" in out and re.search(r"epoch 1: .*val_accuracy=0\.\d+", out)
    port = free_port()
    env = {**os.environ, "HOPPER_HOME": str(hopper.home), "HOPPER_DATA_ROOTS": str(hopper.home / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "hopper.cli", "run", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("hopper token" in line for line in lines):
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in text
        token = (hopper.home / "api-token").read_text().strip()
        assert token not in text and "hopper token" in text  # where it is, never the token itself
        assert requests.get(f"http://127.0.0.1:{port}/login", timeout=10).status_code == 200
        r = requests.get(f"http://127.0.0.1:{port}/api/v1/workloads", headers={"Authorization": f"Bearer {token}"},
                         timeout=10)
        assert r.status_code == 200 and r.json()[0]["status"] == "done"  # the demo from the first run
        assert r.json()[0]["plan"] == "mop"  # the demo shows hopping (auto would replicate digits and end in seconds)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("tensorboard" in " ".join(c.cmdline()) for c in children)
    finally:
        proc.terminate()
        proc.wait(30)
    # a plain `kill` shuts everything down: no TensorBoard or worker is left behind (waited for, generously:
    # they exit on their own once their parent is gone, which takes longer on a loaded machine)
    def alive() -> list[psutil.Process]:
        running = []
        for child in children:
            try:
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    running.append(child)
            except psutil.NoSuchProcess:
                pass
        return running

    deadline = time.monotonic() + 60
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(), [c.cmdline() for c in alive()]
