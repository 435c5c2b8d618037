"""The ``hopper`` commands nothing else runs: each as a user runs it (a subprocess), checked by its exit code,
its output and what it left in the store (read with plain SQL, so the tests outlive the store's refactoring)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hopper(tmp_path):
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    env = {**os.environ, "HOPPER_HOME": str(home), "HOPPER_DATA_ROOTS": str(home / "data"),
           "HOPPER_POLL_INTERVAL": "0.05", "HOPPER_WORKERS": "2", "COLUMNS": "200"}

    def run(*args, ok=True, extra_env=None, timeout=600):
        proc = subprocess.run([sys.executable, "-m", "hopper.cli", *args], env={**env, **(extra_env or {})},
                              capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
        if ok:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc
    run.home = home
    run.env = env
    run.url = f"sqlite:///{home / 'hopper.db'}"
    return run


def query(url: str, sql: str, **params) -> list[sa.Row]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def test_store_unavailable_exits_7_with_one_line_and_no_password(hopper):
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://hopper:s3cret-pw@127.0.0.1:{port}/hopper"
    for args in (("workloads",), ("db", "current")):
        proc = hopper(*args, ok=False, extra_env={"HOPPER_DATABASE_URL": url})
        assert proc.returncode == 7, proc.stdout + proc.stderr
        assert "cannot reach the config store" in proc.stderr and f"127.0.0.1:{port}" in proc.stderr
        assert "s3cret-pw" not in proc.stderr and "Traceback" not in proc.stderr


def test_dataset_register_with_label_and_features(hopper):
    hopper("db", "upgrade")
    csv = hopper.home / "data" / "plants.csv"
    lines = ["height,width,colour_code,row_id,species"]
    for i in range(60):
        lines.append(f"{1 + i % 7}.5,{2 + i % 5}.25,{i % 3},{i},{'ab'[i % 2]}")
    csv.write_text("\n".join(lines) + "\n")

    out = hopper("dataset", "register", "plants", str(csv), "--label", "species", "--features", "height,width",
                 "--validation-fraction", "0.25").stdout
    assert "dataset 1 plants: 60 rows (classification, features (2,))" in out and "15 validation rows" in out
    (row,) = query(hopper.url, "SELECT feature_columns, label_column, task, n_rows, n_validation, classes "
                               "FROM dataset WHERE name = 'plants'")
    assert row.label_column == "species" and row.task == "classification"
    assert json.loads(row.feature_columns) == ["height", "width"]  # SQLite hands JSON back as text
    assert (row.n_rows, row.n_validation) == (60, 15)
    assert "plants" in hopper("datasets").stdout

    # without --features: every column but the label
    out = hopper("dataset", "register", "plants-all", str(csv), "--label", "species").stdout
    assert "features (4,)" in out
    # several label columns: k values per row (two numbers: multi-output regression)
    out = hopper("dataset", "register", "plants-2d", str(csv), "--label", "height,width", "--features", "row_id").stdout
    assert "plants-2d" in out and "regression" in out
    # precise errors naming the option's field
    proc = hopper("dataset", "register", "x", str(csv), "--label", "genus", ok=False)
    assert proc.returncode == 2 and "[label_column]" in proc.stderr and "genus" in proc.stderr
    proc = hopper("dataset", "register", "y", str(csv), "--label", "species", "--features", "height,nope", ok=False)
    assert proc.returncode == 2 and "[feature_columns]" in proc.stderr and "nope" in proc.stderr
    proc = hopper("dataset", "register", "z", str(csv), "--label", "species", "--features", "species", ok=False)
    assert proc.returncode == 2 and "both a feature and the label" in proc.stderr
    assert [r.name for r in query(hopper.url, "SELECT name FROM dataset ORDER BY id")] == ["plants", "plants-all", "plants-2d"]


def test_script_upload_accepts_a_valid_script_and_rejects_a_broken_one(hopper, tmp_path):
    hopper("db", "upgrade")
    hopper("demo", "--epochs", "1")  # registers digits for --dataset
    out = hopper("script", "upload", str(ROOT / "examples/scripts/config_fn.py"), "--dataset", "digits").stdout
    assert re.search(r"script 1 accepted: ", out), out
    (row,) = query(hopper.url, "SELECT name, entry_point, valid, sha256 FROM script WHERE id = 1")
    assert row.name == "config_fn.py" and row.entry_point == "build_model" and row.valid
    import hashlib

    assert row.sha256 == hashlib.sha256((ROOT / "examples/scripts/config_fn.py").read_bytes()).hexdigest()

    broken = tmp_path / "broken.py"
    broken.write_text("import keras\n\ndef build_model(hp=None):\n    raise RuntimeError('no model today')\n")
    proc = hopper("script", "upload", str(broken), ok=False)
    assert proc.returncode == 2 and "no model today" in proc.stdout + proc.stderr
    proc = hopper("script", "upload", str(ROOT / "examples/scripts/config_fn.py"), "--entry", "missing_fn", ok=False)
    assert proc.returncode == 2 and "missing_fn" in proc.stderr
    proc = hopper("script", "upload", str(tmp_path / "absent.py"), ok=False)
    assert proc.returncode == 2 and "[file]" in proc.stderr and "does not exist" in proc.stderr
    assert [r.valid for r in query(hopper.url, "SELECT valid FROM script WHERE valid")] == [True]


def test_db_downgrade_and_upgrade_keep_a_populated_store_usable(hopper):
    hopper("db", "upgrade")
    hopper("demo", "--epochs", "1")
    head = hopper("db", "current").stdout.split()[1]
    # a revision that does not exist, or lies on the wrong side of the current one: one line, exit code 2
    proc = hopper("db", "downgrade", "nonsense", ok=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "error [revision]: Can't locate revision identified by 'nonsense'" in proc.stderr
    assert "known revisions: base, 0001" in proc.stderr and f"{head}, head" in proc.stderr
    proc = hopper("events", "--limit", "-1", ok=False)
    assert proc.returncode == 2 and "-1 is not in the range" in proc.stderr
    assert "config store at revision 0003" in hopper("db", "downgrade", "0003").stdout
    proc = hopper("workloads", ok=False)
    assert proc.returncode == 6 and "is at revision 0003" in proc.stderr and "hopper db upgrade" in proc.stderr
    assert f"config store at revision {head}" in hopper("db", "upgrade").stdout
    assert "demo: mlp on digits" in hopper("workloads").stdout  # the data came through
    # all the way down on a store with data (SQLite refused this before 0001/0002's downgrades were fixed)
    assert "config store at revision None" in hopper("db", "downgrade").stdout
    assert set(sa.inspect(sa.create_engine(hopper.url)).get_table_names()) <= {"alembic_version"}
    assert hopper("workloads", ok=False).returncode == 6


@pytest.mark.slow
def test_steering_a_workload_from_the_cli_then_exporting_through_the_worker(hopper):
    """pause/update/resume a workload, resume a config, then the export worker fulfils a REST request."""
    hopper("db", "upgrade")
    hopper("demo", "--epochs", "3")  # workload 1: configs 1-4 queued
    assert "max_epochs=1 max_configs=None" in hopper("workload", "update", "1", "--max-epochs", "1").stdout
    proc = hopper("workload", "update", "1", "--max-epochs", "0", ok=False)
    assert proc.returncode == 2 and "[max_epochs]" in proc.stderr
    assert hopper("workload", "update", "999", "--max-epochs", "2", ok=False).returncode == 3
    for config_id in (2, 3, 4):
        hopper("stop", str(config_id))

    # resume a stopped config; a queued one cannot be resumed; a stale version is a conflict
    assert "config 2: queued (continues after epoch 0)" in hopper("resume", "2").stdout
    proc = hopper("resume", "2", ok=False)
    assert proc.returncode == 5 and "it is queued" in proc.stderr
    proc = hopper("resume", "3", "--version", "0", ok=False)
    assert proc.returncode == 4 and "version" in proc.stderr
    assert hopper("resume", "999", ok=False).returncode == 3
    hopper("stop", "2")

    # a paused workload trains nothing: the scheduler has no running workload and exits at once
    assert "workload 1: paused" in hopper("workload", "pause", "1").stdout
    assert query(hopper.url, "SELECT status FROM workload WHERE id = 1")[0].status == "paused"
    hopper("scheduler", "--until-done", "--timeout", "120")
    assert query(hopper.url, "SELECT count(*) AS n FROM metric")[0].n == 0
    assert query(hopper.url, "SELECT status, epochs_done FROM config WHERE id = 1")[0] == ("queued", 0)

    assert "workload 1: running" in hopper("workload", "resume", "1").stdout
    hopper("scheduler", "--until-done", "--timeout", "300")
    rows = {r.id: (r.status, r.epochs_done) for r in query(hopper.url, "SELECT id, status, epochs_done FROM config")}
    assert rows == {1: ("done", 1), 2: ("stopped", 0), 3: ("stopped", 0), 4: ("stopped", 0)}  # update took hold
    proc = hopper("resume", "1", ok=False)
    assert proc.returncode == 5 and "has trained all 1 epochs" in proc.stderr
    actions = [r.action for r in query(hopper.url, "SELECT action FROM event ORDER BY id")]
    assert {"pause_workload", "resume_workload", "resume_config", "update_workload"} <= set(actions)

    # an export request made through the REST API, fulfilled by `hopper export-worker --once`
    from hopper.engine.services import open_services
    from hopper.rest import create_app
    from hopper.settings import load_settings

    services = open_services(load_settings(hopper.env))
    try:
        client = create_app(services, token=None, secret_key="k" * 32).test_client()
        r = client.post("/api/v1/configs/1/exports", json={"quantizations": ["float32"]})
        assert r.status_code in (200, 201, 202), r.json
        request_id = r.json["id"]
        assert hopper("export-worker", "--once").stdout.strip().startswith(f"export request {request_id}: done")
        done = client.get(f"/api/v1/export-requests/{request_id}").json
        assert done["status"] == "done" and len(done["export_ids"]) == 1
        (export,) = client.get("/api/v1/configs/1/exports").json
        assert export["id"] == done["export_ids"][0] and export["quantization"] == "float32"
        assert Path(export["path"]).is_file() and Path(export["path"]).stat().st_size == export["bytes"] > 0
        assert export["tflite_accuracy"] is not None and export["tflite_accuracy"] > 0.5
    finally:
        services.store.dispose()
    assert hopper("export-worker", "--once").stdout.strip() == ""  # nothing left to do

    # more epochs re-queue the finished config and wake the workload
    hopper("workload", "update", "1", "--max-epochs", "2")
    assert query(hopper.url, "SELECT status FROM config WHERE id = 1")[0].status == "queued"
    assert query(hopper.url, "SELECT status FROM workload WHERE id = 1")[0].status == "running"


@pytest.mark.spark
def test_spark_cluster_starts_serves_and_stops_on_sigterm(hopper):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hopper.cli", "spark-cluster", "--workers", "1", "--memory", "512m",
                             "--port", str(port)], env=hopper.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    daemons: list[psutil.Process] = []
    try:
        line = proc.stdout.readline()
        deadline = time.monotonic() + 120
        while "Spark master" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        assert f"Spark master spark://127.0.0.1:{port} with 1 worker(s)" in line, line
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the master accepts connections
        daemons = [c for c in psutil.Process(proc.pid).children(recursive=True) if "java" in c.name()]
        assert len(daemons) == 2  # a master and one worker JVM
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0 and "Spark cluster stopped" in rest, rest
    psutil.wait_procs(daemons, timeout=20)
    assert not [d for d in daemons if d.is_running() and d.status() != psutil.STATUS_ZOMBIE]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_inventory_records_commands_and_routes_in_every_process(hopper, tmp_path):
    """The recorder behind the suite's 'every command and route is tested' check (tests/conftest.py)."""
    from tests.conftest import unexercised

    recording = tmp_path / "inventory.txt"
    env = {"HOPPER_TEST_INVENTORY": str(recording)}
    hopper("db", "upgrade", extra_env=env)
    hopper("workload", "pause", "5", ok=False, extra_env=env)  # a failing command is still exercised
    lines = recording.read_text().splitlines()
    assert lines == ["cli db upgrade", "cli workload pause"]

    from hopper.engine.services import open_services
    from hopper.rest import create_app
    from hopper.settings import load_settings

    services = open_services(load_settings(hopper.env))
    try:
        old = os.environ["HOPPER_TEST_INVENTORY"]
        os.environ["HOPPER_TEST_INVENTORY"] = str(recording)
        try:
            client = create_app(services, token="t" * 32, secret_key="k" * 32).test_client()
            assert client.get("/api/v1/workloads").status_code == 401
            assert client.get("/api/v1/workloads", headers={"Authorization": "Bearer " + "t" * 32}).status_code == 200
            assert client.get("/api/v1/workloads/9", headers={"Authorization": "Bearer " + "t" * 32}).status_code == 404
        finally:
            os.environ["HOPPER_TEST_INVENTORY"] = old
    finally:
        services.store.dispose()
    assert recording.read_text().splitlines()[2:] == [
        "api GET /api/v1/workloads 401", "api GET /api/v1/workloads 200",
        "api GET /api/v1/workloads/<int:workload_id> 404"]
    missing = unexercised(recording)
    assert "cli db upgrade" not in missing and "cli workload pause" not in missing and "cli token" in missing
    assert "GET /api/v1/workloads" not in missing and "GET /api/v1/workloads/<int:workload_id>" not in missing
    assert "POST /api/v1/workloads" in missing and "GET /api/openapi.json" in missing


@pytest.mark.spark
def test_spark_daemon_runs_a_master_in_the_foreground(hopper):
    """What the containers run (docker-compose.yml): the daemon stays in the foreground until signalled."""
    port, ui_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hopper.cli", "spark-daemon", "master", "--host", "127.0.0.1",
                             "--port", str(port), "--webui-port", str(ui_port)], env=hopper.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        # the web UI's port too: the master binds it after it logs "Starting Spark master" (a SIGTERM between the
        # RPC port opening and that line left the line unwritten once)
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                for listening in (port, ui_port):
                    socket.create_connection(("127.0.0.1", listening), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("the Spark master did not open its ports")
        # the Python process became the JVM (exec): the same pid is the master
        assert "java" in psutil.Process(proc.pid).name()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert f"Starting Spark master at spark://127.0.0.1:{port}" in out, out[-2000:]
