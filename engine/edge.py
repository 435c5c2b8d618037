"""Edge deployment actions: devices (agents), profiling jobs with leases, profiles, export requests, deployments.

``Services`` inherits these methods, so REST, the UI and the CLI call them like every other action.
Nothing here imports TensorFlow: exports run in an export worker's child process (``hopper.edge_deploy.runner``),
profiling runs on the agents (``hopper.edge_deploy.agent``), serving in ``hopper serve-model`` processes.

Profiling jobs. A job profiles one export, either on one named device or (``device_id`` None) on whichever
agent claims it first. An agent claims a job atomically (compare-and-set from ``queued`` to ``running``) and
holds it under a lease of ``settings.edge_lease_seconds``; its heartbeats extend the lease. A job whose lease
ran out (the agent died or lost the network) goes back to ``queued`` at the next claim or listing, until
``max_attempts`` claims were spent; then it is ``failed`` with the reason. A finished job writes a ``profile``
row and the same numbers as metrics of the config (``edge_latency_ms@<device>``, ``model_bytes``, ...) so
that a workload can declare them as objectives.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from hopper.engine.errors import Conflict, InvalidState, NotFound, ValidationError
from hopper.engine.status import DeploymentStatus, check_transition
from hopper.engine.store import (
    CheckpointRow,
    ConfigRow,
    DeploymentRow,
    DeviceRow,
    ExportRequestRow,
    ExportRow,
    MetricRow,
    ProfileJobRow,
    ProfileRow,
    WorkloadRow,
    utcnow,
)

DEVICE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
INTERPRETERS = ("tflite-runtime", "ai-edge-litert")
DEPLOY_FORMATS = ("tflite", "keras")


def metric_names(device: str, quantization: str) -> dict[str, str]:
    """Metric names a profile lands under: the float32 export is the plain name, int8 gets a ``:int8`` suffix."""
    suffix = "" if quantization == "float32" else f":{quantization}"
    return {"latency_p50_ms": f"edge_latency_ms@{device}{suffix}",
            "latency_p95_ms": f"edge_latency_p95_ms@{device}{suffix}",
            "peak_memory_bytes": f"edge_peak_memory_bytes@{device}{suffix}",
            "energy_mj": f"edge_energy_mj@{device}{suffix}",
            "size_bytes": f"model_bytes{suffix}"}


def _device_dict(row: DeviceRow, offline_after: float) -> dict:
    now = utcnow()
    status = row.status
    if status == "online" and (now - row.last_seen).total_seconds() > offline_after:
        status = "offline"
    return {"id": row.id, "name": row.name, "hardware": dict(row.hardware or {}), "interpreter": row.interpreter,
            "status": status, "registered_at": row.registered_at.isoformat(),
            "last_seen": row.last_seen.isoformat(), "seconds_since_seen": round((now - row.last_seen).total_seconds(), 1)}


def _job_dict(row: ProfileJobRow, export: ExportRow | None = None) -> dict:
    out = {"id": row.id, "export_id": row.export_id, "device_id": row.device_id, "status": row.status,
           "attempts": row.attempts, "max_attempts": row.max_attempts, "runs": row.runs, "warmup": row.warmup,
           "claimed_by": row.claimed_by, "claimed_at": row.claimed_at.isoformat() if row.claimed_at else None,
           "lease_expires_at": row.lease_expires_at.isoformat() if row.lease_expires_at else None,
           "error": row.error, "result": row.result, "created_at": row.created_at.isoformat(),
           "finished_at": row.finished_at.isoformat() if row.finished_at else None}
    if export is not None:
        out["export"] = {"id": export.id, "config_id": export.config_id, "quantization": export.quantization,
                         "sha256": export.sha256, "bytes": export.bytes,
                         "artifact": f"/api/v1/exports/{export.id}/artifact"}
    return out


def _export_dict(r: ExportRow) -> dict:
    return {"id": r.id, "config_id": r.config_id, "quantization": r.quantization, "path": r.path,
            "sha256": r.sha256, "bytes": r.bytes, "keras_accuracy": r.keras_accuracy,
            "tflite_accuracy": r.tflite_accuracy, "convert_seconds": r.convert_seconds}


def _request_dict(r: ExportRequestRow) -> dict:
    return {"id": r.id, "config_id": r.config_id, "quantizations": list(r.quantizations), "profile": r.profile,
            "origin": r.origin, "status": r.status, "actor": r.actor, "export_ids": r.export_ids, "error": r.error,
            "created_at": r.created_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None}


def _deployment_dict(r: DeploymentRow) -> dict:
    return {"id": r.id, "config_id": r.config_id, "export_id": r.export_id, "format": r.format, "name": r.name,
            "host": r.host, "port": r.port, "pid": r.pid, "status": r.status, "error": r.error,
            "url": f"http://{r.host}:{r.port}/v1/models/{r.name}" if r.port else None,
            "started_at": r.started_at.isoformat(), "stopped_at": r.stopped_at.isoformat() if r.stopped_at else None}


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


class EdgeServices:
    """Edge actions; mixed into ``Services`` (which provides ``store``, ``settings``, ``_get``, ``_event``)."""

    # -- devices ----------------------------------------------------------------------------------------
    def register_device(self, name: str, *, hardware: dict | None = None, interpreter: str,
                        actor: str | None = None) -> dict:
        """Register an agent (or re-register one that restarted: same name, fresh hardware description)."""
        if not DEVICE_NAME.match(name or ""):
            raise ValidationError("a device name is 1-100 letters, digits, '_', '.' or '-'", field="name")
        if interpreter not in INTERPRETERS:
            raise ValidationError(f"interpreter must be one of {', '.join(INTERPRETERS)}", field="interpreter")
        with self.store.session() as session:
            row = session.scalar(select(DeviceRow).where(DeviceRow.name == name))
            now = utcnow()
            if row is None:
                row = DeviceRow(name=name, hardware=dict(hardware or {}), interpreter=interpreter, status="online",
                                registered_at=now, last_seen=now)
                session.add(row)
            else:
                row.hardware, row.interpreter, row.status, row.last_seen = dict(hardware or {}), interpreter, \
                    "online", now
            session.flush()
            self._event(session, actor or "agent", "register_device", "device", row.id,
                        after={"name": name, "interpreter": interpreter})
            return _device_dict(row, self.settings.edge_offline_seconds)

    def heartbeat(self, device_id: int) -> dict:
        """The agent is alive: mark it online and extend the leases of the jobs it holds."""
        with self.store.session() as session:
            row = self._get(session, DeviceRow, device_id, "device")
            now = utcnow()
            row.last_seen, row.status = now, "online"
            extended = session.execute(
                update(ProfileJobRow).where(ProfileJobRow.claimed_by == device_id, ProfileJobRow.status == "running")
                .values(lease_expires_at=now + timedelta(seconds=self.settings.edge_lease_seconds))).rowcount
            return {"device": _device_dict(row, self.settings.edge_offline_seconds), "extended_jobs": extended,
                    "lease_seconds": self.settings.edge_lease_seconds}

    def sign_off(self, device_id: int) -> dict:
        """The agent is stopping: mark it offline at once (not after the offline timeout), so that
        "profile on all devices" stops choosing it; jobs it still holds go back to the queue."""
        with self.store.session() as session:
            row = self._get(session, DeviceRow, device_id, "device")
            row.status, row.last_seen = "offline", utcnow()
            requeued = session.execute(
                update(ProfileJobRow).where(ProfileJobRow.claimed_by == device_id, ProfileJobRow.status == "running")
                .values(status="queued", claimed_by=None, claimed_at=None, lease_expires_at=None)).rowcount
            return {"device": _device_dict(row, self.settings.edge_offline_seconds), "requeued_jobs": requeued}

    def list_devices(self) -> list[dict]:
        with self.store.session() as session:
            return [_device_dict(r, self.settings.edge_offline_seconds)
                    for r in session.scalars(select(DeviceRow).order_by(DeviceRow.id))]

    def get_device(self, device_id: int) -> dict:
        with self.store.session() as session:
            return _device_dict(self._get(session, DeviceRow, device_id, "device"), self.settings.edge_offline_seconds)

    # -- profiling jobs ----------------------------------------------------------------------------------
    def enqueue_profiling(self, export_id: int, *, device_id: int | None = None, all_devices: bool = False,
                          runs: int | None = None, warmup: int | None = None, actor: str | None = None) -> list[dict]:
        """Queue profiling of an export: on one device, on every online device, or on whichever claims it."""
        for name, value in (("runs", runs), ("warmup", warmup)):
            if value is not None and not 0 <= value <= 100_000:
                raise ValidationError(f"{name} must be in [0, 100000]", field=name)
        with self.store.session() as session:
            self._get(session, ExportRow, export_id, "export")
            if all_devices:
                targets: list[int | None] = [d["id"] for d in self.list_devices() if d["status"] == "online"]
                if not targets:
                    raise InvalidState("no edge device is online; start `hopper edge-agent` on one first")
            elif device_id is not None:
                targets = [self._get(session, DeviceRow, device_id, "device").id]
            else:
                targets = [None]
            rows = [ProfileJobRow(export_id=export_id, device_id=t, status="queued", attempts=0,
                                  max_attempts=self.settings.edge_max_attempts, runs=runs, warmup=warmup)
                    for t in targets]
            session.add_all(rows)
            session.flush()
            self._event(session, actor or "api", "enqueue_profiling", "export", export_id,
                        after={"jobs": [r.id for r in rows], "devices": targets})
            return [_job_dict(r) for r in rows]

    def requeue_expired_jobs(self) -> int:
        """Jobs whose agent stopped renewing the lease: back to the queue, or failed once attempts are spent."""
        now = utcnow()
        changed = 0
        with self.store.session() as session:
            for row in session.scalars(select(ProfileJobRow).where(
                    ProfileJobRow.status == "running", ProfileJobRow.lease_expires_at < now)):
                holder = session.get(DeviceRow, row.claimed_by) if row.claimed_by else None
                reason = (f"lease expired: device {holder.name if holder else row.claimed_by} stopped responding "
                          f"(attempt {row.attempts} of {row.max_attempts})")
                if row.attempts >= row.max_attempts:
                    row.status, row.finished_at = "failed", now
                    row.error = f"gave up after {row.attempts} attempts; last: {reason}"
                else:
                    row.status, row.error = "queued", reason
                row.claimed_by, row.lease_expires_at = None, None
                changed += 1
        return changed

    def claim_job(self, device_id: int) -> dict | None:
        """Atomically take the oldest queued job this device may run (its own first), under a lease."""
        self.requeue_expired_jobs()
        for _ in range(20):  # another agent may win the race for a candidate: take the next one
            with self.store.session() as session:
                device = self._get(session, DeviceRow, device_id, "device")
                now = utcnow()
                device.last_seen, device.status = now, "online"
                candidate = session.scalar(
                    select(ProfileJobRow.id).where(ProfileJobRow.status == "queued",
                                                   or_(ProfileJobRow.device_id == device_id,
                                                       ProfileJobRow.device_id.is_(None)))
                    .order_by(ProfileJobRow.device_id.is_(None), ProfileJobRow.id).limit(1))
                if candidate is None:
                    return None
                won = session.execute(
                    update(ProfileJobRow).where(ProfileJobRow.id == candidate, ProfileJobRow.status == "queued")
                    .values(status="running", claimed_by=device_id, claimed_at=now,
                            attempts=ProfileJobRow.attempts + 1,
                            lease_expires_at=now + timedelta(seconds=self.settings.edge_lease_seconds))
                    .execution_options(synchronize_session=False)).rowcount
                if won != 1:
                    continue
                row = session.get(ProfileJobRow, candidate, populate_existing=True)
                return {**_job_dict(row, session.get(ExportRow, row.export_id)),
                        "lease_seconds": self.settings.edge_lease_seconds}
        return None

    def _held_job(self, session: Session, job_id: int, device_id: int) -> ProfileJobRow:
        row = self._get(session, ProfileJobRow, job_id, "job")
        if row.status != "running" or row.claimed_by != device_id:
            holder = f", claimed by device {row.claimed_by}" if row.claimed_by else ""
            raise Conflict(f"job {job_id} is not held by device {device_id} (it is {row.status}{holder}); "
                           "its lease may have expired", field="job_id")
        return row

    def complete_job(self, job_id: int, device_id: int, result: dict) -> dict:
        """Record an agent's measurement: the profile row, and the numbers as metrics of the config."""
        for key in ("latency_p50_ms", "latency_p95_ms", "size_bytes"):
            if not isinstance(result.get(key), int | float) or result[key] < 0:
                raise ValidationError(f"result.{key} must be a non-negative number", field=f"result.{key}")
        with self.store.session() as session:
            job = self._held_job(session, job_id, device_id)
            export = session.get(ExportRow, job.export_id)
            device = session.get(DeviceRow, device_id)
            now = utcnow()
            profile = ProfileRow(job_id=job.id, export_id=export.id, device_id=device_id, config_id=export.config_id,
                                 latency_p50_ms=float(result["latency_p50_ms"]),
                                 latency_p95_ms=float(result["latency_p95_ms"]), size_bytes=int(result["size_bytes"]),
                                 peak_memory_bytes=_opt_int(result.get("peak_memory_bytes")),
                                 energy_mj=_opt_float(result.get("energy_mj")), runs=int(result.get("runs") or 0),
                                 detail={k: v for k, v in result.items() if k not in (
                                     "latency_p50_ms", "latency_p95_ms", "size_bytes", "peak_memory_bytes",
                                     "energy_mj", "runs")}, created_at=now)
            session.add(profile)
            job.status, job.finished_at, job.result, job.error = "done", now, dict(result), None
            job.lease_expires_at = None
            device.last_seen, device.status = now, "online"
            checkpoint = session.get(CheckpointRow, export.checkpoint_id)
            values = {"latency_p50_ms": profile.latency_p50_ms, "latency_p95_ms": profile.latency_p95_ms,
                      "size_bytes": profile.size_bytes, "peak_memory_bytes": profile.peak_memory_bytes,
                      "energy_mj": profile.energy_mj}
            names = metric_names(device.name, export.quantization)
            written = {names[k]: float(v) for k, v in values.items() if v is not None}
            self._upsert_metrics(session, export.config_id, checkpoint.epoch if checkpoint else 0, written)
            session.flush()
            self._event(session, f"device:{device.name}", "profile_export", "export", export.id,
                        after={"job": job.id, **written})
            return {**_job_dict(job), "profile_id": profile.id, "metrics": written}

    @staticmethod
    def _upsert_metrics(session: Session, config_id: int, epoch: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            row = session.scalar(select(MetricRow).where(MetricRow.config_id == config_id, MetricRow.epoch == epoch,
                                                         MetricRow.name == name))
            if row is None:
                session.add(MetricRow(config_id=config_id, epoch=epoch, name=name, value=value))
            else:
                row.value, row.at = value, utcnow()
        latest = dict(session.scalar(select(ConfigRow.latest_metrics).where(ConfigRow.id == config_id)) or {})
        latest.update(values)
        # A core UPDATE: edge numbers are not a user edit, so they must not bump the config's version (ETag).
        session.execute(update(ConfigRow).where(ConfigRow.id == config_id).values(latest_metrics=latest)
                        .execution_options(synchronize_session=False))

    def fail_job(self, job_id: int, device_id: int, error: str, *, retryable: bool = True) -> dict:
        """The agent could not profile: queue the job again (another agent may succeed) or fail it for good."""
        with self.store.session() as session:
            job = self._held_job(session, job_id, device_id)
            device = session.get(DeviceRow, device_id)
            message = f"device {device.name}: {error}"[:4000]
            if retryable and job.attempts < job.max_attempts:
                job.status, job.error = "queued", message
            else:
                job.status, job.finished_at = "failed", utcnow()
                job.error = message if not retryable else f"gave up after {job.attempts} attempts; last: {message}"
            job.claimed_by, job.lease_expires_at = None, None
            session.flush()
            return _job_dict(job)

    def list_jobs(self, *, status: str | None = None, export_id: int | None = None, limit: int = 500) -> list[dict]:
        self.requeue_expired_jobs()
        with self.store.session() as session:
            stmt = select(ProfileJobRow).order_by(ProfileJobRow.id.desc()).limit(limit)
            if status:
                stmt = stmt.where(ProfileJobRow.status == status)
            if export_id is not None:
                stmt = stmt.where(ProfileJobRow.export_id == export_id)
            return [_job_dict(r) for r in session.scalars(stmt)]

    def get_job(self, job_id: int) -> dict:
        self.requeue_expired_jobs()
        with self.store.session() as session:
            row = self._get(session, ProfileJobRow, job_id, "job")
            return _job_dict(row, session.get(ExportRow, row.export_id))

    # -- profiles and artefacts ---------------------------------------------------------------------------
    def list_profiles(self, *, config_id: int | None = None, device_id: int | None = None,
                      workload_id: int | None = None, limit: int = 1000) -> list[dict]:
        with self.store.session() as session:
            stmt = (select(ProfileRow, DeviceRow.name, ExportRow.quantization, ExportRow.tflite_accuracy,
                           ConfigRow.workload_id)
                    .join(DeviceRow, DeviceRow.id == ProfileRow.device_id)
                    .join(ExportRow, ExportRow.id == ProfileRow.export_id)
                    .join(ConfigRow, ConfigRow.id == ProfileRow.config_id)
                    .order_by(ProfileRow.id.desc()).limit(limit))
            if config_id is not None:
                stmt = stmt.where(ProfileRow.config_id == config_id)
            if device_id is not None:
                stmt = stmt.where(ProfileRow.device_id == device_id)
            if workload_id is not None:
                stmt = stmt.where(ConfigRow.workload_id == workload_id)
            return [{"id": p.id, "job_id": p.job_id, "export_id": p.export_id, "config_id": p.config_id,
                     "workload_id": wid, "device_id": p.device_id, "device": device, "quantization": quant,
                     "tflite_accuracy": acc, "latency_p50_ms": p.latency_p50_ms, "latency_p95_ms": p.latency_p95_ms,
                     "size_bytes": p.size_bytes, "peak_memory_bytes": p.peak_memory_bytes, "energy_mj": p.energy_mj,
                     "runs": p.runs, "detail": p.detail, "created_at": p.created_at.isoformat()}
                    for p, device, quant, acc, wid in session.execute(stmt)]

    def export_artifact(self, export_id: int) -> dict:
        """Where an export's flatbuffer lies and the sha256 recorded when it was written."""
        with self.store.session() as session:
            return _export_dict(self._get(session, ExportRow, export_id, "export"))

    def list_workload_exports(self, workload_id: int) -> list[dict]:
        with self.store.session() as session:
            self._get(session, WorkloadRow, workload_id, "workload")
            return [_export_dict(r) for r in session.scalars(
                select(ExportRow).join(ConfigRow, ConfigRow.id == ExportRow.config_id)
                .where(ConfigRow.workload_id == workload_id).order_by(ExportRow.id))]

    def pareto(self, workload_id: int, *, x: str = "latency", device: str | None = None) -> dict:
        """Each export of a workload as a point (accuracy vs latency on a device, or vs size), front marked.

        Accuracy is the exported model's own (TFLite interpreter) accuracy, so int8 loss shows; latency is the
        newest profile of the export on ``device`` (default: the device with most profiles in this workload).
        """
        if x not in ("latency", "bytes"):
            raise ValidationError("x must be latency or bytes", field="x")
        exports = self.list_workload_exports(workload_id)
        profiles = self.list_profiles(workload_id=workload_id, limit=100_000)
        devices = sorted({p["device"] for p in profiles})
        if device is None and devices:
            device = max(devices, key=lambda d: sum(p["device"] == d for p in profiles))
        latest: dict[int, dict] = {}
        for p in profiles:  # newest first
            if p["device"] == device and p["export_id"] not in latest:
                latest[p["export_id"]] = p
        points = []
        for e in exports:
            accuracy = e["tflite_accuracy"] if e["tflite_accuracy"] is not None else e["keras_accuracy"]
            if accuracy is None:
                continue
            if x == "latency":
                if e["id"] not in latest:
                    continue
                value = latest[e["id"]]["latency_p50_ms"]
            else:
                value = float(e["bytes"])
            points.append({"export_id": e["id"], "config_id": e["config_id"], "quantization": e["quantization"],
                           "accuracy": accuracy, "x": value, "bytes": e["bytes"],
                           "latency_p50_ms": latest.get(e["id"], {}).get("latency_p50_ms"),
                           "latency_p95_ms": latest.get(e["id"], {}).get("latency_p95_ms")})
        mask = pareto_mask([(p["accuracy"], p["x"]) for p in points], ("max", "min"))
        for p, front in zip(points, mask, strict=True):
            p["pareto"] = front
        return {"workload_id": workload_id, "x": x, "device": device, "devices": devices, "points": points}

    # -- export requests (run by an export worker, never in the web process) -------------------------------
    def request_export(self, config_id: int, *, quantizations: list[str] | None = None, profile: bool = False,
                       origin: str = "user", actor: str | None = None) -> dict:
        quantizations = list(quantizations or ["float32", "int8"])
        bad = [q for q in quantizations if q not in ("float32", "int8")]
        if bad or not quantizations:
            raise ValidationError("quantizations must be a non-empty list of float32, int8", field="quantizations")
        self.export_source(config_id)  # raises NotFound / InvalidState now rather than in the worker
        with self.store.session() as session:
            row = ExportRequestRow(config_id=config_id, quantizations=quantizations, profile=profile, origin=origin,
                                   status="queued", actor=actor or "api")
            session.add(row)
            session.flush()
            self._event(session, row.actor, "request_export", "config", config_id,
                        after={"request": row.id, "quantizations": quantizations, "profile": profile})
            return _request_dict(row)

    def claim_export_request(self) -> dict | None:
        for _ in range(20):
            with self.store.session() as session:
                candidate = session.scalar(select(ExportRequestRow.id).where(ExportRequestRow.status == "queued")
                                           .order_by(ExportRequestRow.id).limit(1))
                if candidate is None:
                    return None
                won = session.execute(
                    update(ExportRequestRow).where(ExportRequestRow.id == candidate, ExportRequestRow.status == "queued")
                    .values(status="running", claimed_at=utcnow()).execution_options(synchronize_session=False)).rowcount
                if won == 1:
                    return _request_dict(session.get(ExportRequestRow, candidate, populate_existing=True))
        return None

    def finish_export_request(self, request_id: int, *, export_ids: list[int] | None = None,
                              error: str | None = None) -> dict:
        with self.store.session() as session:
            row = self._get(session, ExportRequestRow, request_id, "export_request")
            row.status, row.finished_at = ("failed" if error else "done"), utcnow()
            row.export_ids, row.error = export_ids, (error or None) and error[-4000:]
            session.flush()
            out = _request_dict(row)
        if not error and out["profile"] and export_ids and any(d["status"] == "online" for d in self.list_devices()):
            for export_id in export_ids:
                self.enqueue_profiling(export_id, all_devices=True, actor=out["actor"])
        return out

    def list_export_requests(self, *, config_id: int | None = None, limit: int = 200) -> list[dict]:
        with self.store.session() as session:
            stmt = select(ExportRequestRow).order_by(ExportRequestRow.id.desc()).limit(limit)
            if config_id is not None:
                stmt = stmt.where(ExportRequestRow.config_id == config_id)
            return [_request_dict(r) for r in session.scalars(stmt)]

    def get_export_request(self, request_id: int) -> dict:
        with self.store.session() as session:
            return _request_dict(self._get(session, ExportRequestRow, request_id, "export_request"))

    def enqueue_top_k_exports(self) -> list[dict]:
        """For each finished workload with ``export_top_k``: request exports (and profiling) of its best k configs."""
        out = []
        with self.store.session() as session:
            workloads = list(session.scalars(select(WorkloadRow).where(
                WorkloadRow.status == "done", WorkloadRow.export_top_k.is_not(None), WorkloadRow.export_top_k > 0)))
            todo = []
            for w in workloads:
                already = session.scalar(select(ExportRequestRow.id).join(ConfigRow, ConfigRow.id ==
                                                                          ExportRequestRow.config_id)
                                         .where(ConfigRow.workload_id == w.id, ExportRequestRow.origin == "top_k")
                                         .limit(1))
                if already is not None:
                    continue
                direction = w.objectives[0]["direction"]
                order = ConfigRow.best_objective.desc() if direction == "max" else ConfigRow.best_objective.asc()
                todo += list(session.scalars(select(ConfigRow.id).where(
                    ConfigRow.workload_id == w.id, ConfigRow.best_objective.is_not(None)).order_by(order)
                    .limit(w.export_top_k)))
        for config_id in todo:
            try:
                out.append(self.request_export(config_id, profile=True, origin="top_k", actor="export_top_k"))
            except (InvalidState, NotFound):
                continue  # no finished epoch: nothing to export
        return out

    # -- deployments (requested from the web, started and stopped by the export worker) -----------------------
    # A web request only writes a row: ``request_deployment`` -> ``requested``; the export worker claims it
    # (``claim_deployment``, compare-and-set to ``starting``) and starts ``hopper serve-model``, which marks
    # itself ``running``. ``request_stop_deployment`` -> ``stopping``; the worker ends the process, which marks
    # itself ``stopped``. ``hopper serve-model`` run by hand records itself through ``create_deployment``.
    def _new_deployment(self, config_id: int, *, fmt: str, name: str | None, host: str, port: int | None,
                        actor: str | None, status: DeploymentStatus) -> dict:
        if fmt not in DEPLOY_FORMATS:
            raise ValidationError(f"format must be one of {', '.join(DEPLOY_FORMATS)}", field="format")
        name = name or f"config-{config_id}"
        if not DEVICE_NAME.match(name):
            raise ValidationError("a model name is 1-100 letters, digits, '_', '.' or '-'", field="name")
        self.export_source(config_id)  # a trained checkpoint must exist
        with self.store.session() as session:
            row = DeploymentRow(config_id=config_id, format=fmt, name=name, host=host, port=port, status=status)
            session.add(row)
            session.flush()
            self._event(session, actor or "api", "deploy_config", "config", config_id,
                        after={"deployment": row.id, "format": fmt, "name": name, "status": str(status)})
            return _deployment_dict(row)

    def create_deployment(self, config_id: int, *, fmt: str = "tflite", name: str | None = None,
                          host: str = "127.0.0.1", port: int | None = None, actor: str | None = None) -> dict:
        """A deployment of a server that is starting right now in the calling process (``hopper serve-model``)."""
        return self._new_deployment(config_id, fmt=fmt, name=name, host=host, port=port, actor=actor,
                                    status=DeploymentStatus.STARTING)

    def request_deployment(self, config_id: int, *, fmt: str = "tflite", name: str | None = None,
                           host: str = "127.0.0.1", port: int | None = None, actor: str | None = None) -> dict:
        """Queue a deployment for the export worker: the web process never starts a model server itself."""
        return self._new_deployment(config_id, fmt=fmt, name=name, host=host, port=port, actor=actor,
                                    status=DeploymentStatus.REQUESTED)

    def claim_deployment(self) -> dict | None:
        """The oldest requested deployment, moved to ``starting`` by compare-and-set (None when none is left).

        Two workers may poll the same store; the conditional UPDATE lets exactly one of them win a row.
        """
        for _ in range(20):
            with self.store.session() as session:
                candidate = session.scalar(select(DeploymentRow.id).where(
                    DeploymentRow.status == DeploymentStatus.REQUESTED).order_by(DeploymentRow.id).limit(1))
                if candidate is None:
                    return None
                won = session.execute(
                    update(DeploymentRow).where(DeploymentRow.id == candidate,
                                                DeploymentRow.status == DeploymentStatus.REQUESTED)
                    .values(status=DeploymentStatus.STARTING).execution_options(synchronize_session=False)).rowcount
                if won == 1:
                    return _deployment_dict(session.get(DeploymentRow, candidate, populate_existing=True))
        return None

    def request_stop_deployment(self, deployment_id: int, *, actor: str | None = None) -> dict:
        """Ask for a deployment to stop: ``stopping`` for the export worker, or ``stopped`` at once if never started.

        Asking again while it is stopping returns the row unchanged; a finished deployment is an ``InvalidState``.
        """
        for _ in range(20):
            with self.store.session() as session:
                row = self._get(session, DeploymentRow, deployment_id, "deployment")
                current = DeploymentStatus(row.status)
                if current == DeploymentStatus.STOPPING:
                    return _deployment_dict(row)
                target = DeploymentStatus.STOPPED if current == DeploymentStatus.REQUESTED else DeploymentStatus.STOPPING
                if current in (DeploymentStatus.STOPPED, DeploymentStatus.FAILED):
                    raise InvalidState(f"deployment {deployment_id} is already {current}")
                check_transition(current, target, what=f"deployment {deployment_id}", action="stop")
                values: dict[str, Any] = {"status": target}
                if target == DeploymentStatus.STOPPED:
                    values["stopped_at"] = utcnow()
                # compare-and-set: the worker may have moved the row since it was read
                won = session.execute(
                    update(DeploymentRow).where(DeploymentRow.id == deployment_id, DeploymentRow.status == current)
                    .values(**values).execution_options(synchronize_session=False)).rowcount
                if won != 1:
                    continue
                self._event(session, actor or "api", "stop_deployment", "deployment", deployment_id,
                            before={"status": str(current)}, after={"status": str(target)})
                return _deployment_dict(session.get(DeploymentRow, deployment_id, populate_existing=True))
        raise Conflict(f"deployment {deployment_id} kept changing; try again")

    def mark_deployment(self, deployment_id: int, *, status: str | None = None, port: int | None = None,
                        pid: int | None = None, export_id: int | None = None, error: str | None = None) -> dict:
        """Record what the serving process or the worker saw; ``status`` None keeps the status.

        A stop asked for while the server was still loading wins over its ``running``: the row stays
        ``stopping`` (with the port and pid recorded) so that the worker still ends the process.
        """
        with self.store.session() as session:
            row = self._get(session, DeploymentRow, deployment_id, "deployment")
            if status is not None:
                target = DeploymentStatus(status)
                if not (row.status == DeploymentStatus.STOPPING and target == DeploymentStatus.RUNNING):
                    check_transition(row.status, target, what=f"deployment {deployment_id}")
                    row.status = target
                    if target in (DeploymentStatus.STOPPED, DeploymentStatus.FAILED):
                        row.stopped_at = utcnow()
            if port is not None:
                row.port = port
            if pid is not None:
                row.pid = pid
            if export_id is not None:
                row.export_id = export_id
            if error is not None:
                row.error = error[-4000:]
            session.flush()
            return _deployment_dict(row)

    def list_deployments(self, *, config_id: int | None = None, status: str | None = None) -> list[dict]:
        with self.store.session() as session:
            stmt = select(DeploymentRow).order_by(DeploymentRow.id.desc())
            if config_id is not None:
                stmt = stmt.where(DeploymentRow.config_id == config_id)
            if status is not None:
                stmt = stmt.where(DeploymentRow.status == DeploymentStatus(status))
            return [_deployment_dict(r) for r in session.scalars(stmt)]

    def get_deployment(self, deployment_id: int) -> dict:
        with self.store.session() as session:
            return _deployment_dict(self._get(session, DeploymentRow, deployment_id, "deployment"))


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
