"""Edge deployment actions: exports, export requests, devices (agents), profiling jobs, profiles, deployments.

Nothing here imports TensorFlow: exports run in an export worker's child process (``hopper.edge_deploy.runner``),
profiling runs on the agents (``hopper.edge_deploy.agent``), serving in ``hopper serve-model`` processes. A
finished profiling job writes a ``profile`` row and the same numbers as metrics of the config
(``edge_latency_ms@<device>``, ``model_bytes``, ...) so that a workload can declare them as objectives.
"""

from __future__ import annotations

import re

from hopper.engine.entities import (
    ClaimedJob,
    CompletedJob,
    DeploymentInfo,
    DeviceInfo,
    ExportInfo,
    ExportRequestInfo,
    ExportSource,
    HeartbeatResult,
    ParetoFront,
    ParetoPoint,
    ProfileInfo,
    ProfileJobInfo,
    SignOffResult,
)
from hopper.engine.errors import InvalidState, NotFound, ValidationError
from hopper.engine.services._base import ServiceContext, default_actor
from hopper.engine.status import DeploymentStatus, DeviceStatus

DEVICE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
INTERPRETERS = ("tflite-runtime", "ai-edge-litert")
DEPLOY_FORMATS = ("tflite", "keras")
QUANTIZATIONS = ("float32", "int8")


def metric_names(device: str, quantization: str) -> dict[str, str]:
    """Metric names a profile lands under: the float32 export is the plain name, int8 gets a ``:int8`` suffix."""
    suffix = "" if quantization == "float32" else f":{quantization}"
    return {"latency_p50_ms": f"edge_latency_ms@{device}{suffix}",
            "latency_p95_ms": f"edge_latency_p95_ms@{device}{suffix}",
            "peak_memory_bytes": f"edge_peak_memory_bytes@{device}{suffix}",
            "energy_mj": f"edge_energy_mj@{device}{suffix}",
            "size_bytes": f"model_bytes{suffix}"}


def pareto_mask(points: list[tuple[float, float]], directions: tuple[str, str]) -> list[bool]:
    """True where a point is on the Pareto front (no other point is at least as good on both and better on one)."""
    sign = [1 if d == "max" else -1 for d in directions]
    scored = [(p[0] * sign[0], p[1] * sign[1]) for p in points]
    out = []
    for i, a in enumerate(scored):
        dominated = any(b[0] >= a[0] and b[1] >= a[1] and (b[0] > a[0] or b[1] > a[1])
                        for j, b in enumerate(scored) if j != i)
        out.append(not dominated)
    return out


class EdgeServices(ServiceContext):
    """Exports, devices, profiling and deployments."""

    @property
    def _offline_after(self) -> float:
        return self.settings.edge_offline_seconds

    # -- exports ------------------------------------------------------------------------------------------------
    def export_source(self, config_id: int) -> ExportSource:
        """What an exporter needs to rebuild a config's trained model, from its newest epoch-end checkpoint.

        Raises:
            InvalidState: the config has no finished epoch yet.
        """
        return self.store.configs.export_source(config_id)

    def record_export(self, source: ExportSource, *, quantization: str, path: str, sha256: str, size: int,
                      keras_accuracy: float | None, tflite_accuracy: float | None, seconds: float,
                      actor: str | None = None) -> ExportInfo:
        """Record a written TFLite (or Keras) artefact of a config, with its accuracy before and after conversion."""
        return self.store.edge.record_export(
            config_id=source.config_id, checkpoint_id=source.checkpoint_id, quantization=quantization, path=path,
            sha256=sha256, size=size, keras_accuracy=keras_accuracy, tflite_accuracy=tflite_accuracy,
            seconds=seconds, actor=actor or default_actor())

    def list_exports(self, config_id: int) -> list[ExportInfo]:
        """A config's exports, oldest first."""
        return self.store.edge.list_exports(config_id)

    def export_artifact(self, export_id: int) -> ExportInfo:
        """Where an export's flatbuffer lies and the sha256 recorded when it was written."""
        return self.store.edge.get_export(export_id)

    def list_workload_exports(self, workload_id: int) -> list[ExportInfo]:
        """Every export of a workload's configs."""
        return self.store.edge.list_workload_exports(workload_id)

    def request_export(self, config_id: int, *, quantizations: list[str] | None = None, profile: bool = False,
                       origin: str = "user", actor: str | None = None) -> ExportRequestInfo:
        """Queue an export of a config's newest epoch-end checkpoint for the export worker (never run here)."""
        quantizations = list(quantizations or QUANTIZATIONS)
        bad = [q for q in quantizations if q not in QUANTIZATIONS]
        if bad or not quantizations:
            raise ValidationError("quantizations must be a non-empty list of float32, int8", field="quantizations")
        self.export_source(config_id)  # raises NotFound / InvalidState now rather than in the worker
        # A repeat of a pending request is answered with that request; user requests are capped per actor.
        limit = getattr(self.settings, "max_queued_exports", 0) if origin == "user" else 0
        return self.store.edge.add_export_request(config_id, quantizations=quantizations, profile=profile,
                                                  origin=origin, actor=actor or "api", actor_limit=limit)

    def claim_export_request(self) -> ExportRequestInfo | None:
        """For the export worker: take the oldest queued request, or None."""
        return self.store.edge.claim_export_request()

    def finish_export_request(self, request_id: int, *, export_ids: list[int] | None = None,
                              error: str | None = None) -> ExportRequestInfo:
        """For the export worker: the request is done (or failed); profiling follows if it was asked for."""
        out = self.store.edge.finish_export_request(request_id, export_ids=export_ids, error=error)
        if not error and out.profile and export_ids and any(
                d.status == DeviceStatus.ONLINE for d in self.list_devices()):
            for export_id in export_ids:
                self.enqueue_profiling(export_id, all_devices=True, actor=out.actor)
        return out

    def list_export_requests(self, *, config_id: int | None = None, limit: int = 200) -> list[ExportRequestInfo]:
        """Export requests, newest first."""
        return self.store.edge.list_export_requests(config_id=config_id, limit=limit)

    def get_export_request(self, request_id: int) -> ExportRequestInfo:
        """One export request with its status and the exports it produced."""
        return self.store.edge.get_export_request(request_id)

    def enqueue_top_k_exports(self) -> list[ExportRequestInfo]:
        """For each finished workload with ``export_top_k``: request exports (and profiling) of its best k configs."""
        out = []
        for config_id in self.store.edge.top_k_to_export():
            try:
                out.append(self.request_export(config_id, profile=True, origin="top_k", actor="export_top_k"))
            except (InvalidState, NotFound):
                continue  # no finished epoch: nothing to export
        return out

    # -- devices ------------------------------------------------------------------------------------------------
    def register_device(self, name: str, *, hardware: dict | None = None, interpreter: str,
                        actor: str | None = None) -> DeviceInfo:
        """Register an agent (or re-register one that restarted: same name, fresh hardware description)."""
        if not DEVICE_NAME.match(name or ""):
            raise ValidationError("a device name is 1-100 letters, digits, '_', '.' or '-'", field="name")
        if interpreter not in INTERPRETERS:
            raise ValidationError(f"interpreter must be one of {', '.join(INTERPRETERS)}", field="interpreter")
        return self.store.edge.register_device(name, hardware=dict(hardware or {}), interpreter=interpreter,
                                               actor=actor or "agent", offline_after=self._offline_after)

    def heartbeat(self, device_id: int) -> HeartbeatResult:
        """The agent is alive: mark it online and extend the leases of the jobs it holds."""
        return self.store.edge.heartbeat(device_id, lease_seconds=self.settings.edge_lease_seconds,
                                         offline_after=self._offline_after)

    def sign_off(self, device_id: int) -> SignOffResult:
        """The agent is stopping: mark it offline at once (not after the offline timeout), so that
        "profile on all devices" stops choosing it; jobs it still holds go back to the queue."""
        return self.store.edge.sign_off(device_id, offline_after=self._offline_after)

    def list_devices(self) -> list[DeviceInfo]:
        """Every registered device; one silent for ``edge_offline_seconds`` shows as offline."""
        return self.store.edge.list_devices(offline_after=self._offline_after)

    def get_device(self, device_id: int) -> DeviceInfo:
        """One device."""
        return self.store.edge.get_device(device_id, offline_after=self._offline_after)

    # -- profiling jobs -----------------------------------------------------------------------------------------
    def enqueue_profiling(self, export_id: int, *, device_id: int | None = None, all_devices: bool = False,
                          runs: int | None = None, warmup: int | None = None,
                          actor: str | None = None) -> list[ProfileJobInfo]:
        """Queue profiling of an export: on one device, on every online device, or on whichever claims it."""
        for name, value in (("runs", runs), ("warmup", warmup)):
            if value is not None and not 0 <= value <= 100_000:
                raise ValidationError(f"{name} must be in [0, 100000]", field=name)
        self.store.edge.get_export(export_id)
        targets: list[int | None]
        if all_devices:
            targets = [d.id for d in self.list_devices() if d.status == DeviceStatus.ONLINE]
            if not targets:
                raise InvalidState("no edge device is online; start `hopper edge-agent` on one first")
        else:
            targets = [device_id]
        return self.store.edge.enqueue_profiling(export_id, targets, max_attempts=self.settings.edge_max_attempts,
                                                 runs=runs, warmup=warmup, actor=actor or "api",
                                                 actor_limit=getattr(self.settings, "max_queued_profiles", 0))

    def requeue_expired_jobs(self) -> int:
        """Jobs whose agent stopped renewing the lease: back to the queue, or failed once attempts are spent."""
        return self.store.edge.requeue_expired_jobs()

    def claim_job(self, device_id: int) -> ClaimedJob | None:
        """Atomically take the oldest queued job this device may run (its own first), under a lease."""
        self.requeue_expired_jobs()
        return self.store.edge.claim_job(device_id, lease_seconds=self.settings.edge_lease_seconds)

    def complete_job(self, job_id: int, device_id: int, result: dict) -> CompletedJob:
        """Record an agent's measurement: the profile row, and the numbers as metrics of the config."""
        for key in ("latency_p50_ms", "latency_p95_ms", "size_bytes"):
            if not isinstance(result.get(key), int | float) or result[key] < 0:
                raise ValidationError(f"result.{key} must be a non-negative number", field=f"result.{key}")
        return self.store.edge.complete_job(job_id, device_id, result, metric_names=metric_names)

    def fail_job(self, job_id: int, device_id: int, error: str, *, retryable: bool = True) -> ProfileJobInfo:
        """The agent could not profile: queue the job again (another agent may succeed) or fail it for good."""
        return self.store.edge.fail_job(job_id, device_id, error, retryable=retryable)

    def list_jobs(self, *, status: str | None = None, export_id: int | None = None,
                  limit: int = 500) -> list[ProfileJobInfo]:
        """Profiling jobs, newest first (expired leases are re-queued first, so the statuses are current)."""
        self.requeue_expired_jobs()
        return self.store.edge.list_jobs(status=status, export_id=export_id, limit=limit)

    def get_job(self, job_id: int) -> ProfileJobInfo:
        """One profiling job with its export."""
        self.requeue_expired_jobs()
        return self.store.edge.get_job(job_id)

    # -- profiles and the Pareto front ----------------------------------------------------------------------------
    def list_profiles(self, *, config_id: int | None = None, device_id: int | None = None,
                      workload_id: int | None = None, limit: int = 1000) -> list[ProfileInfo]:
        """Measurements, newest first, filtered by config, device or workload."""
        return self.store.edge.list_profiles(config_id=config_id, device_id=device_id, workload_id=workload_id,
                                             limit=limit)

    def pareto(self, workload_id: int, *, x: str = "latency", device: str | None = None) -> ParetoFront:
        """Each export of a workload as a point (accuracy vs latency on a device, or vs size), front marked.

        Accuracy is the exported model's own (TFLite interpreter) accuracy, so int8 loss shows; latency is the
        newest profile of the export on ``device`` (default: the device with most profiles in this workload).
        """
        if x not in ("latency", "bytes"):
            raise ValidationError("x must be latency or bytes", field="x")
        exports = self.list_workload_exports(workload_id)
        profiles = self.list_profiles(workload_id=workload_id, limit=100_000)
        devices = sorted({p.device for p in profiles})
        if device is None and devices:
            device = max(devices, key=lambda d: sum(p.device == d for p in profiles))
        latest: dict[int, ProfileInfo] = {}
        for p in profiles:  # newest first
            if p.device == device and p.export_id not in latest:
                latest[p.export_id] = p
        found = []
        for e in exports:
            accuracy = e.tflite_accuracy if e.tflite_accuracy is not None else e.keras_accuracy
            if accuracy is None:
                continue
            if x == "latency":
                if e.id not in latest:
                    continue
                value = latest[e.id].latency_p50_ms
            else:
                value = float(e.bytes)
            found.append((e, accuracy, value, latest.get(e.id)))
        mask = pareto_mask([(accuracy, value) for _, accuracy, value, _ in found], ("max", "min"))
        points = [ParetoPoint(e.id, e.config_id, e.quantization, accuracy, value, e.bytes,
                              None if p is None else p.latency_p50_ms, None if p is None else p.latency_p95_ms, front)
                  for (e, accuracy, value, p), front in zip(found, mask, strict=True)]
        return ParetoFront(workload_id, x, device, devices, points)

    # -- deployments (requested from the web, started and stopped by the export worker) -------------------------
    def _new_deployment(self, config_id: int, *, fmt: str, name: str | None, host: str, port: int | None,
                        actor: str | None, status: DeploymentStatus) -> DeploymentInfo:
        if fmt not in DEPLOY_FORMATS:
            raise ValidationError(f"format must be one of {', '.join(DEPLOY_FORMATS)}", field="format")
        name = name or f"config-{config_id}"
        if not DEVICE_NAME.match(name):
            raise ValidationError("a model name is 1-100 letters, digits, '_', '.' or '-'", field="name")
        self.export_source(config_id)  # a trained checkpoint must exist
        requested = status == DeploymentStatus.REQUESTED  # from the web: repeats reused, capped per actor
        return self.store.edge.add_deployment(
            config_id, fmt=fmt, name=name, host=host, port=port, actor=actor or "api", status=status, reuse=requested,
            actor_limit=getattr(self.settings, "max_running_deployments", 0) if requested else 0)

    def create_deployment(self, config_id: int, *, fmt: str = "tflite", name: str | None = None,
                          host: str = "127.0.0.1", port: int | None = None, actor: str | None = None) -> DeploymentInfo:
        """A deployment of a server that is starting right now in the calling process (``hopper serve-model``)."""
        return self._new_deployment(config_id, fmt=fmt, name=name, host=host, port=port, actor=actor,
                                    status=DeploymentStatus.STARTING)

    def request_deployment(self, config_id: int, *, fmt: str = "tflite", name: str | None = None,
                           host: str = "127.0.0.1", port: int | None = None,
                           actor: str | None = None) -> DeploymentInfo:
        """Queue a deployment for the export worker: the web process never starts a model server itself."""
        return self._new_deployment(config_id, fmt=fmt, name=name, host=host, port=port, actor=actor,
                                    status=DeploymentStatus.REQUESTED)

    def claim_deployment(self) -> DeploymentInfo | None:
        """For the export worker: the oldest requested deployment, now ``starting`` (None when none is left)."""
        return self.store.edge.claim_deployment()

    def request_stop_deployment(self, deployment_id: int, *, actor: str | None = None) -> DeploymentInfo:
        """Ask for a deployment to stop: ``stopping`` for the export worker, or ``stopped`` at once if never
        started. Asking again while it is stopping returns it unchanged; a finished one is an ``InvalidState``."""
        return self.store.edge.request_stop_deployment(deployment_id, actor=actor or "api")

    def mark_deployment(self, deployment_id: int, *, status: str | None = None, port: int | None = None,
                        pid: int | None = None, export_id: int | None = None,
                        error: str | None = None) -> DeploymentInfo:
        """The model server (or the worker that runs it) reports where it stands; ``status`` None keeps it."""
        return self.store.edge.mark_deployment(deployment_id, status=None if status is None else DeploymentStatus(status),
                                               port=port, pid=pid, export_id=export_id, error=error)

    def list_deployments(self, *, config_id: int | None = None, status: str | None = None) -> list[DeploymentInfo]:
        """Deployments, newest first, optionally of one config or in one status."""
        return self.store.edge.list_deployments(config_id=config_id, status=status)

    def get_deployment(self, deployment_id: int) -> DeploymentInfo:
        """One deployment with its predict URL once it serves."""
        return self.store.edge.get_deployment(deployment_id)
