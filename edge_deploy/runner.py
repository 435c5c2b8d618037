"""The export worker: runs export requests and deployment requests (REST, UI, ``export_top_k``) out of the web.

The web process never imports TensorFlow, so a request made there is a row (``export_request``). This worker,
a thread of ``hopper serve`` or its own ``hopper export-worker`` process, claims each row atomically and runs
``python -m hopper.cli export CONFIG --request-id ID`` for it; the child converts, measures and records the
exports and marks the request done (or failed, with the reason). The worker also turns finished workloads
with ``export_top_k`` into requests. Deployments go the same way: the worker claims each ``requested`` one
(compare-and-set) and starts ``hopper serve-model`` for it, and ends the server of each ``stopping`` one.
Imports no TensorFlow.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

from hopper.edge_deploy.launch import child_env, reap_deployments, start_deployment, stop_deployment
from hopper.engine.entities import DeploymentInfo, EvaluationInfo, ExportRequestInfo
from hopper.engine.errors import HopperError
from hopper.engine.services import Services
from hopper.engine.status import DeploymentStatus, JobStatus

log = logging.getLogger("hopper.edge_deploy.runner")


class ExportWorker:
    """Poll for deployment and export requests; exports run in a child process, one at a time.

    Args:
        exports: False leaves export requests alone (a test that runs exports by hand beside this worker).
    """

    def __init__(self, services: Services, *, poll: float = 1.0, timeout: float = 1800.0,
                 exports: bool = True) -> None:
        self.services = services
        self.poll = poll
        self.timeout = timeout
        self.exports = exports
        self.done = 0

    def run_deployments(self) -> list[DeploymentInfo]:
        """Start every requested deployment and end every stopping one; returns the rows it changed.

        Deployments go first in each round: starting a server takes a moment, an export may take minutes.
        """
        changed = reap_deployments(self.services)
        while (row := self.services.claim_deployment()) is not None:
            log.info("deployment %s: starting serve-model for config %s", row.id, row.config_id)
            changed.append(start_deployment(self.services, row))
        for row in self.services.list_deployments(status=DeploymentStatus.STOPPING):
            log.info("deployment %s: stopping", row.id)
            changed.append(stop_deployment(self.services, row))
        return changed

    def run_once(self) -> DeploymentInfo | EvaluationInfo | ExportRequestInfo | None:
        """Handle deployments, queue top-k exports, then run the next evaluation request (an objective added to a
        running workload), else the next export request; returns it (or None)."""
        changed = self.run_deployments()
        if not self.exports:
            return changed[-1] if changed else None
        try:
            self.services.enqueue_top_k_exports()
        except HopperError as exc:
            log.warning("export_top_k: %s", exc.message)
        evaluation = self.run_evaluation()
        if evaluation is not None:
            return evaluation
        request = self.services.claim_export_request()
        if request is None:
            return None
        cmd = [sys.executable, "-m", "hopper.cli", "export", str(request.config_id), "--request-id",
               str(request.id)]
        for q in request.quantizations:
            cmd += ["--quantization", q]
        log.info("export request %s: %s", request.id, " ".join(cmd[2:]))
        try:
            proc = subprocess.run(cmd, env=child_env(self.services.settings), capture_output=True, text=True,
                                  timeout=self.timeout)
            tail = (proc.stderr or proc.stdout or "")[-2000:]
            code = proc.returncode
        except subprocess.TimeoutExpired:
            tail, code = f"the export took longer than {self.timeout:.0f} s", -1
        current = self.services.get_export_request(request.id)
        if current.status == JobStatus.RUNNING:  # the child died before recording its outcome
            current = self.services.finish_export_request(request.id, error=f"export exited with code {code}: "
                                                                                  f"{tail.strip()}")
        self.done += 1
        return current

    def run_evaluation(self) -> EvaluationInfo | None:
        """Measure the next objective added to a running workload on its kept checkpoints, in a child process
        (TensorFlow stays out of this one); returns the finished request, or None when none was queued."""
        request = self.services.claim_evaluation()
        if request is None:
            return None
        cmd = [sys.executable, "-m", "hopper.cli", "objective", "evaluate", str(request.id)]
        log.info("evaluation request %s: %s", request.id, " ".join(cmd[2:]))
        try:
            proc = subprocess.run(cmd, env=child_env(self.services.settings), capture_output=True, text=True,
                                  timeout=self.timeout)
            tail, code = (proc.stderr or proc.stdout or "")[-2000:], proc.returncode
        except subprocess.TimeoutExpired:
            tail, code = f"the evaluation took longer than {self.timeout:.0f} s", -1
        current = self.services.get_evaluation(request.id)
        if current.status == JobStatus.RUNNING:  # the child died before recording its outcome
            current = self.services.finish_evaluation(request.id, error=f"evaluation exited with code {code}: "
                                                                         f"{tail.strip()}")
        self.done += 1
        return current

    def run(self, stop_event: threading.Event) -> None:
        while not stop_event.is_set():
            try:
                if self.run_once() is not None:
                    continue
            except HopperError as exc:
                log.warning("export worker: %s", exc.message)
            except Exception:  # noqa: BLE001 - keep the worker alive, the next poll retries
                log.exception("export worker step failed")
            stop_event.wait(self.poll)
