"""Start and stop out-of-process work for the export worker: model servers and exports.

Only the export worker (``hopper.edge_deploy.runner``) calls these: the web process writes request rows and
never starts or signals a process itself.

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

import psutil

from hopper.engine.entities import DeploymentInfo
from hopper.engine.services import Services
from hopper.engine.status import DeploymentStatus
from hopper.settings import Settings

log = logging.getLogger("hopper.edge_deploy.launch")

_CHILDREN: dict[int, subprocess.Popen] = {}  # deployment id -> model server started by this process
_FINISHED = (DeploymentStatus.STOPPED, DeploymentStatus.FAILED)


def child_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child ``hopper`` see the same store, data roots and artefacts."""
    return {**os.environ, "HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
            "HOPPER_DATA_ROOTS": os.pathsep.join(map(str, settings.data_roots)),
            "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir), "HOPPER_WORKERS": str(settings.workers),
            "TF_CPP_MIN_LOG_LEVEL": "3"}


def start_deployment(services: Services, row: DeploymentInfo) -> DeploymentInfo:
    """Start ``hopper serve-model`` for a claimed (``starting``) deployment; the child marks it running or failed."""
    logdir = services.settings.artifact_dir / "deployments"
    logdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "hopper.cli", "serve-model", str(row.config_id), "--format", row.format,
           "--host", row.host, "--name", row.name, "--deployment-id", str(row.id)]
    if row.port:
        cmd += ["--port", str(row.port)]
    try:
        with open(logdir / f"deployment-{row.id}.log", "ab") as log_file:
            proc = subprocess.Popen(cmd, env=child_env(services.settings), stdout=log_file,
                                    stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return services.mark_deployment(row.id, status=DeploymentStatus.FAILED, error=f"cannot start: {exc}")
    _CHILDREN[row.id] = proc
    # status None: a stop asked for meanwhile (``stopping``) must not be overwritten by ``starting``
    return services.mark_deployment(row.id, pid=proc.pid)


def stop_deployment(services: Services, row: DeploymentInfo, timeout: float = 20) -> DeploymentInfo:
    """SIGTERM the model server of a ``stopping`` deployment (it marks itself stopped); a gone one is marked."""
    proc = _CHILDREN.pop(row.id, None)
    pid = row.pid
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid = None
        except PermissionError as exc:
            return services.mark_deployment(row.id, status=DeploymentStatus.FAILED,
                                            error=f"cannot signal the model server (pid {pid}): {exc}")
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    elif pid:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and psutil.pid_exists(pid):
            time.sleep(0.1)
    current = services.get_deployment(row.id)
    if current.status not in _FINISHED:
        current = services.mark_deployment(row.id, status=DeploymentStatus.STOPPED)
    return current


def reap_deployments(services: Services) -> list[DeploymentInfo]:
    """Record servers started here that exited on their own (crash, kill -9) and did not record it themselves."""
    out = []
    for deployment_id, proc in list(_CHILDREN.items()):
        if proc.poll() is None:
            continue
        del _CHILDREN[deployment_id]
        row = services.get_deployment(deployment_id)
        if row.status == DeploymentStatus.STOPPING:
            out.append(services.mark_deployment(deployment_id, status=DeploymentStatus.STOPPED))
        elif row.status not in _FINISHED:
            out.append(services.mark_deployment(deployment_id, status=DeploymentStatus.FAILED,
                                                error=f"serve-model exited with code {proc.returncode}"))
    return out
