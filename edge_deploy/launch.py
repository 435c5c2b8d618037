"""Start and stop out-of-process work from the web process: model servers and exports.

Imports no TensorFlow: every TensorFlow-using step runs as ``python -m hopper.cli ...`` in a child process that
gets the store and directories of the caller's settings through ``HOPPER_*`` variables.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

from hopper.engine.errors import InvalidState
from hopper.engine.services import Services
from hopper.settings import Settings

log = logging.getLogger("hopper.edge_deploy.launch")

_CHILDREN: dict[int, subprocess.Popen] = {}  # deployment id -> server process started here


def child_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child ``hopper`` see the same store, data roots and artefacts."""
    return {**os.environ, "HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
            "HOPPER_DATA_ROOTS": os.pathsep.join(map(str, settings.data_roots)),
            "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir), "HOPPER_WORKERS": str(settings.workers),
            "TF_CPP_MIN_LOG_LEVEL": "3"}


def launch_deployment(services: Services, config_id: int, *, fmt: str = "tflite", name: str | None = None,
                      host: str = "127.0.0.1", port: int | None = None, actor: str | None = None) -> dict:
    """Record a deployment and start ``hopper serve-model`` for it; the child marks it running (or failed)."""
    row = services.create_deployment(config_id, fmt=fmt, name=name, host=host, port=port, actor=actor)
    logdir = services.settings.artifact_dir / "deployments"
    logdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "hopper.cli", "serve-model", str(config_id), "--format", fmt, "--host", host,
           "--name", row["name"], "--deployment-id", str(row["id"])]
    if port:
        cmd += ["--port", str(port)]
    with open(logdir / f"deployment-{row['id']}.log", "ab") as log_file:
        proc = subprocess.Popen(cmd, env=child_env(services.settings), stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    _CHILDREN[row["id"]] = proc
    return services.mark_deployment(row["id"], status="starting", pid=proc.pid)


def wait_until_serving(services: Services, deployment_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = services.get_deployment(deployment_id)
        if row["status"] in ("running", "failed", "stopped"):
            return row
        proc = _CHILDREN.get(deployment_id)
        if proc is not None and proc.poll() is not None and row["status"] == "starting":
            return services.mark_deployment(deployment_id, status="failed",
                                            error=f"serve-model exited with code {proc.returncode}")
        time.sleep(0.2)
    return services.get_deployment(deployment_id)


def stop_deployment(services: Services, deployment_id: int, timeout: float = 20) -> dict:
    """SIGTERM the model server (it marks itself stopped); a server that is already gone is marked stopped."""
    row = services.get_deployment(deployment_id)
    if row["status"] in ("stopped", "failed"):
        raise InvalidState(f"deployment {deployment_id} is already {row['status']}")
    proc = _CHILDREN.pop(deployment_id, None)
    pid = row["pid"]
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid = None
        except PermissionError as exc:
            raise InvalidState(f"cannot signal deployment {deployment_id} (pid {pid}): {exc}") from exc
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    elif pid:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
    row = services.get_deployment(deployment_id)
    if row["status"] not in ("stopped", "failed"):
        row = services.mark_deployment(deployment_id, status="stopped")
    return row


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
