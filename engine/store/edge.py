"""Edge deployment in SQL: devices (agents), profiling jobs under leases, profiles, exports, export requests,
deployments. The rules (who may claim what, when a lease runs out) are here because each is one atomic write;
the validation of people's input stays in ``engine.services.edge``.

Profiling jobs. A job profiles one export, either on one named device or (``device_id`` None) on whichever
agent claims it first. An agent claims a job atomically (compare-and-set from ``queued`` to ``running``) and
holds it under a lease; its heartbeats extend the lease. A job whose lease ran out goes back to ``queued`` at
the next claim or listing, until ``max_attempts`` claims were spent; then it is ``failed`` with the reason.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select, update

from hopper.engine.entities import (
    ClaimedJob,
    CompletedJob,
    DeploymentInfo,
    DeviceInfo,
    ExportInfo,
    ExportRequestInfo,
    HeartbeatResult,
    ProfileInfo,
    ProfileJobInfo,
    SignOffResult,
)
from hopper.engine.errors import Conflict, InvalidState, TooBusy
from hopper.engine.status import DeploymentStatus, DeviceStatus, JobStatus, WorkloadStatus, check_transition
from hopper.engine.store._common import Repository, add_event, get_row
from hopper.engine.store.models import (
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

_PROFILE_COLUMNS = ("latency_p50_ms", "latency_p95_ms", "size_bytes", "peak_memory_bytes", "energy_mj", "runs")


def device_info(row: DeviceRow, offline_after: float) -> DeviceInfo:
    return DeviceInfo.from_row(row, offline_after=offline_after, now=utcnow())


def _opt(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)


class EdgeStore(Repository):
    # -- devices --------------------------------------------------------------------------------------------
    def register_device(self, name: str, *, hardware: dict, interpreter: str, actor: str,
                        offline_after: float) -> DeviceInfo:
        """Insert an agent, or refresh one that restarted (same name, fresh hardware description)."""
        with self._session() as session:
            row = session.scalar(select(DeviceRow).where(DeviceRow.name == name))
            now = utcnow()
            if row is None:
                row = DeviceRow(name=name, hardware=hardware, interpreter=interpreter, status=DeviceStatus.ONLINE,
                                registered_at=now, last_seen=now)
                session.add(row)
            else:
                row.hardware, row.interpreter = hardware, interpreter
                row.status, row.last_seen = DeviceStatus.ONLINE, now
            session.flush()
            add_event(session, actor, "register_device", "device", row.id,
                      after={"name": name, "interpreter": interpreter})
            return device_info(row, offline_after)

    def heartbeat(self, device_id: int, *, lease_seconds: float, offline_after: float) -> HeartbeatResult:
        """The agent is alive: mark it online and extend the leases of the jobs it holds."""
        with self._session() as session:
            row = get_row(session, DeviceRow, device_id, "device")
            now = utcnow()
            row.last_seen, row.status = now, DeviceStatus.ONLINE
            extended = session.execute(
                update(ProfileJobRow).where(ProfileJobRow.claimed_by == device_id,
                                            ProfileJobRow.status == JobStatus.RUNNING)
                .values(lease_expires_at=now + timedelta(seconds=lease_seconds))).rowcount
            return HeartbeatResult(device_info(row, offline_after), extended, lease_seconds)

    def sign_off(self, device_id: int, *, offline_after: float) -> SignOffResult:
        """The agent is stopping: offline at once, and the jobs it still holds go back to the queue."""
        with self._session() as session:
            row = get_row(session, DeviceRow, device_id, "device")
            row.status, row.last_seen = DeviceStatus.OFFLINE, utcnow()
            requeued = session.execute(
                update(ProfileJobRow).where(ProfileJobRow.claimed_by == device_id,
                                            ProfileJobRow.status == JobStatus.RUNNING)
                .values(status=JobStatus.QUEUED, claimed_by=None, claimed_at=None, lease_expires_at=None)).rowcount
            return SignOffResult(device_info(row, offline_after), requeued)

    def list_devices(self, *, offline_after: float) -> list[DeviceInfo]:
        with self._session() as session:
            return [device_info(r, offline_after) for r in session.scalars(select(DeviceRow).order_by(DeviceRow.id))]

    def get_device(self, device_id: int, *, offline_after: float) -> DeviceInfo:
        with self._session() as session:
            return device_info(get_row(session, DeviceRow, device_id, "device"), offline_after)

    # -- profiling jobs ---------------------------------------------------------------------------------------
    def enqueue_profiling(self, export_id: int, targets: list[int | None], *, max_attempts: int, runs: int | None,
                          warmup: int | None, actor: str, actor_limit: int = 0) -> list[ProfileJobInfo]:
        """One queued job per target device (None: whichever agent claims it).

        Raises:
            TooBusy: ``actor`` would have more than ``actor_limit`` jobs queued (0: no limit).
        """
        with self._session() as session:
            get_row(session, ExportRow, export_id, "export")
            if actor_limit > 0:
                mine = session.scalar(select(func.count(ProfileJobRow.id)).where(
                    ProfileJobRow.actor == actor, ProfileJobRow.status == JobStatus.QUEUED))
                if mine + len(targets) > actor_limit:
                    raise TooBusy(f"{actor} already has {mine} profiling jobs queued; {len(targets)} more would pass "
                                  f"the limit of {actor_limit} (HOPPER_MAX_QUEUED_PROFILES)", retry_after=30,
                                  field="export_id")
            for target in targets:
                if target is not None:
                    get_row(session, DeviceRow, target, "device")
            rows = [ProfileJobRow(export_id=export_id, device_id=t, status=JobStatus.QUEUED, attempts=0,
                                  max_attempts=max_attempts, runs=runs, warmup=warmup, actor=actor) for t in targets]
            session.add_all(rows)
            session.flush()
            add_event(session, actor, "enqueue_profiling", "export", export_id,
                      after={"jobs": [r.id for r in rows], "devices": targets})
            return [ProfileJobInfo.from_row(r) for r in rows]

    def requeue_expired_jobs(self) -> int:
        """Jobs whose agent stopped renewing the lease: back to the queue, or failed once attempts are spent."""
        now = utcnow()
        changed = 0
        with self._session() as session:
            for row in session.scalars(select(ProfileJobRow).where(
                    ProfileJobRow.status == JobStatus.RUNNING, ProfileJobRow.lease_expires_at < now)):
                holder = session.get(DeviceRow, row.claimed_by) if row.claimed_by else None
                reason = (f"lease expired: device {holder.name if holder else row.claimed_by} stopped responding "
                          f"(attempt {row.attempts} of {row.max_attempts})")
                if row.attempts >= row.max_attempts:
                    row.status, row.finished_at = JobStatus.FAILED, now
                    row.error = f"gave up after {row.attempts} attempts; last: {reason}"
                else:
                    row.status, row.error = JobStatus.QUEUED, reason
                row.claimed_by, row.lease_expires_at = None, None
                changed += 1
        return changed

    def claim_job(self, device_id: int, *, lease_seconds: float) -> ClaimedJob | None:
        """Atomically take the oldest queued job this device may run (its own first), under a lease."""
        for _ in range(20):  # another agent may win the race for a candidate: take the next one
            with self._session() as session:
                device = get_row(session, DeviceRow, device_id, "device")
                now = utcnow()
                device.last_seen, device.status = now, DeviceStatus.ONLINE
                candidate = session.scalar(
                    select(ProfileJobRow.id).where(ProfileJobRow.status == JobStatus.QUEUED,
                                                   or_(ProfileJobRow.device_id == device_id,
                                                       ProfileJobRow.device_id.is_(None)))
                    .order_by(ProfileJobRow.device_id.is_(None), ProfileJobRow.id).limit(1))
                if candidate is None:
                    return None
                won = session.execute(
                    update(ProfileJobRow).where(ProfileJobRow.id == candidate, ProfileJobRow.status == JobStatus.QUEUED)
                    .values(status=JobStatus.RUNNING, claimed_by=device_id, claimed_at=now,
                            attempts=ProfileJobRow.attempts + 1,
                            lease_expires_at=now + timedelta(seconds=lease_seconds))
                    .execution_options(synchronize_session=False)).rowcount
                if won != 1:
                    continue
                row = session.get(ProfileJobRow, candidate, populate_existing=True)
                return ClaimedJob.claimed(row, session.get(ExportRow, row.export_id), lease_seconds=lease_seconds)
        return None

    @staticmethod
    def _held_job(session, job_id: int, device_id: int) -> ProfileJobRow:  # noqa: ANN001
        row = get_row(session, ProfileJobRow, job_id, "job")
        if row.status != JobStatus.RUNNING or row.claimed_by != device_id:
            holder = f", claimed by device {row.claimed_by}" if row.claimed_by else ""
            raise Conflict(f"job {job_id} is not held by device {device_id} (it is {row.status}{holder}); "
                           "its lease may have expired", field="job_id")
        return row

    def complete_job(self, job_id: int, device_id: int, result: dict, *, metric_names: Any) -> CompletedJob:
        """Record an agent's measurement: the profile row, and the numbers as metrics of the config
        (``metric_names(device, quantization)`` maps profile columns to metric names)."""
        with self._session() as session:
            job = self._held_job(session, job_id, device_id)
            export = session.get(ExportRow, job.export_id)
            device = session.get(DeviceRow, device_id)
            now = utcnow()
            profile = ProfileRow(job_id=job.id, export_id=export.id, device_id=device_id, config_id=export.config_id,
                                 latency_p50_ms=float(result["latency_p50_ms"]),
                                 latency_p95_ms=float(result["latency_p95_ms"]), size_bytes=int(result["size_bytes"]),
                                 peak_memory_bytes=_opt(int, result.get("peak_memory_bytes")),
                                 energy_mj=_opt(float, result.get("energy_mj")), runs=int(result.get("runs") or 0),
                                 detail={k: v for k, v in result.items() if k not in _PROFILE_COLUMNS}, created_at=now)
            session.add(profile)
            check_transition(job.status, JobStatus.DONE, what=f"job {job.id}")
            job.status, job.finished_at, job.result, job.error = JobStatus.DONE, now, dict(result), None
            job.lease_expires_at = None
            device.last_seen, device.status = now, DeviceStatus.ONLINE
            checkpoint = session.get(CheckpointRow, export.checkpoint_id)
            values = {"latency_p50_ms": profile.latency_p50_ms, "latency_p95_ms": profile.latency_p95_ms,
                      "size_bytes": profile.size_bytes, "peak_memory_bytes": profile.peak_memory_bytes,
                      "energy_mj": profile.energy_mj}
            names = metric_names(device.name, export.quantization)
            written = {names[k]: float(v) for k, v in values.items() if v is not None}
            self._upsert_metrics(session, export.config_id, checkpoint.epoch if checkpoint else 0, written)
            session.flush()
            add_event(session, f"device:{device.name}", "profile_export", "export", export.id,
                      after={"job": job.id, **written})
            return CompletedJob.completed(job, profile_id=profile.id, metrics=written)

    @staticmethod
    def _upsert_metrics(session, config_id: int, epoch: int, values: dict[str, float]) -> None:  # noqa: ANN001
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

    def fail_job(self, job_id: int, device_id: int, error: str, *, retryable: bool) -> ProfileJobInfo:
        """The agent could not profile: queue the job again (another agent may succeed) or fail it for good."""
        with self._session() as session:
            job = self._held_job(session, job_id, device_id)
            device = session.get(DeviceRow, device_id)
            message = f"device {device.name}: {error}"[:4000]
            if retryable and job.attempts < job.max_attempts:
                job.status, job.error = JobStatus.QUEUED, message
            else:
                job.status, job.finished_at = JobStatus.FAILED, utcnow()
                job.error = message if not retryable else f"gave up after {job.attempts} attempts; last: {message}"
            job.claimed_by, job.lease_expires_at = None, None
            session.flush()
            return ProfileJobInfo.from_row(job)

    def list_jobs(self, *, status: str | None = None, export_id: int | None = None,
                  limit: int = 500) -> list[ProfileJobInfo]:
        with self._session() as session:
            stmt = select(ProfileJobRow).order_by(ProfileJobRow.id.desc()).limit(limit)
            if status:
                stmt = stmt.where(ProfileJobRow.status == status)
            if export_id is not None:
                stmt = stmt.where(ProfileJobRow.export_id == export_id)
            return [ProfileJobInfo.from_row(r) for r in session.scalars(stmt)]

    def get_job(self, job_id: int) -> ProfileJobInfo:
        with self._session() as session:
            row = get_row(session, ProfileJobRow, job_id, "job")
            return ProfileJobInfo.from_row(row, session.get(ExportRow, row.export_id))

    # -- profiles, exports --------------------------------------------------------------------------------------
    def list_profiles(self, *, config_id: int | None = None, device_id: int | None = None,
                      workload_id: int | None = None, limit: int = 1000) -> list[ProfileInfo]:
        with self._session() as session:
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
            return [ProfileInfo.from_row(p, workload_id=wid, device=device, quantization=quant, tflite_accuracy=acc)
                    for p, device, quant, acc, wid in session.execute(stmt)]

    def record_export(self, *, config_id: int, checkpoint_id: int, quantization: str, path: str, sha256: str,
                      size: int, keras_accuracy: float | None, tflite_accuracy: float | None, seconds: float,
                      actor: str) -> ExportInfo:
        with self._session() as session:
            row = ExportRow(config_id=config_id, checkpoint_id=checkpoint_id, quantization=quantization, path=path,
                            sha256=sha256, bytes=size, keras_accuracy=keras_accuracy,
                            tflite_accuracy=tflite_accuracy, convert_seconds=seconds)
            session.add(row)
            session.flush()
            out = ExportInfo.from_row(row)
            add_event(session, actor, "export_config", "config", config_id, after=out.to_dict())
            return out

    def list_exports(self, config_id: int) -> list[ExportInfo]:
        with self._session() as session:
            get_row(session, ConfigRow, config_id, "config")
            return [ExportInfo.from_row(r) for r in session.scalars(
                select(ExportRow).where(ExportRow.config_id == config_id).order_by(ExportRow.id))]

    def get_export(self, export_id: int) -> ExportInfo:
        with self._session() as session:
            return ExportInfo.from_row(get_row(session, ExportRow, export_id, "export"))

    def list_workload_exports(self, workload_id: int) -> list[ExportInfo]:
        with self._session() as session:
            get_row(session, WorkloadRow, workload_id, "workload")
            return [ExportInfo.from_row(r) for r in session.scalars(
                select(ExportRow).join(ConfigRow, ConfigRow.id == ExportRow.config_id)
                .where(ConfigRow.workload_id == workload_id).order_by(ExportRow.id))]

    # -- export requests ------------------------------------------------------------------------------------------
    def add_export_request(self, config_id: int, *, quantizations: list[str], profile: bool, origin: str,
                           actor: str, actor_limit: int = 0) -> ExportRequestInfo:
        """Queue an export request; an identical one still queued or running is returned instead (``reused``).

        Raises:
            TooBusy: ``actor`` already has ``actor_limit`` requests queued or running (0: no limit).
        """
        with self._session() as session:
            pending = list(session.scalars(select(ExportRequestRow).where(
                ExportRequestRow.config_id == config_id,
                ExportRequestRow.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))))
            for existing in pending:
                if sorted(existing.quantizations) == sorted(quantizations) and existing.profile == profile:
                    return ExportRequestInfo.from_row(existing, reused=True)
            if actor_limit > 0:
                mine = session.scalar(select(func.count(ExportRequestRow.id)).where(
                    ExportRequestRow.actor == actor, ExportRequestRow.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])))
                if mine >= actor_limit:
                    raise TooBusy(f"{actor} already has {mine} exports queued or running (the limit is {actor_limit},"
                                  " HOPPER_MAX_QUEUED_EXPORTS); wait for them to finish", retry_after=30,
                                  field="config_id")
            row = ExportRequestRow(config_id=config_id, quantizations=quantizations, profile=profile, origin=origin,
                                   status=JobStatus.QUEUED, actor=actor)
            session.add(row)
            session.flush()
            add_event(session, row.actor, "request_export", "config", config_id,
                      after={"request": row.id, "quantizations": quantizations, "profile": profile})
            return ExportRequestInfo.from_row(row)

    def claim_export_request(self) -> ExportRequestInfo | None:
        """Atomically take the oldest queued export request (compare-and-set, so two workers never share one)."""
        for _ in range(20):
            with self._session() as session:
                candidate = session.scalar(select(ExportRequestRow.id).where(ExportRequestRow.status == JobStatus.QUEUED)
                                           .order_by(ExportRequestRow.id).limit(1))
                if candidate is None:
                    return None
                won = session.execute(
                    update(ExportRequestRow).where(ExportRequestRow.id == candidate,
                                                   ExportRequestRow.status == JobStatus.QUEUED)
                    .values(status=JobStatus.RUNNING, claimed_at=utcnow())
                    .execution_options(synchronize_session=False)).rowcount
                if won == 1:
                    return ExportRequestInfo.from_row(session.get(ExportRequestRow, candidate, populate_existing=True))
        return None

    def finish_export_request(self, request_id: int, *, export_ids: list[int] | None,
                              error: str | None) -> ExportRequestInfo:
        with self._session() as session:
            row = get_row(session, ExportRequestRow, request_id, "export_request")
            target = JobStatus.FAILED if error else JobStatus.DONE
            check_transition(row.status, target, what=f"export request {request_id}")
            row.status, row.finished_at = target, utcnow()
            row.export_ids, row.error = export_ids, (error or None) and error[-4000:]
            session.flush()
            return ExportRequestInfo.from_row(row)

    def list_export_requests(self, *, config_id: int | None = None, limit: int = 200) -> list[ExportRequestInfo]:
        with self._session() as session:
            stmt = select(ExportRequestRow).order_by(ExportRequestRow.id.desc()).limit(limit)
            if config_id is not None:
                stmt = stmt.where(ExportRequestRow.config_id == config_id)
            return [ExportRequestInfo.from_row(r) for r in session.scalars(stmt)]

    def get_export_request(self, request_id: int) -> ExportRequestInfo:
        with self._session() as session:
            return ExportRequestInfo.from_row(get_row(session, ExportRequestRow, request_id, "export_request"))

    def top_k_to_export(self) -> list[int]:
        """Config ids to export for finished workloads with ``export_top_k`` that have no top-k request yet."""
        todo: list[int] = []
        with self._session() as session:
            workloads = list(session.scalars(select(WorkloadRow).where(
                WorkloadRow.status == WorkloadStatus.DONE, WorkloadRow.export_top_k.is_not(None),
                WorkloadRow.export_top_k > 0)))
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
        return todo

    # -- deployments ------------------------------------------------------------------------------------------
    # A web request only writes a row (``requested``); the export worker claims it (compare-and-set to
    # ``starting``) and starts ``hopper serve-model``, which marks itself ``running``. A stop request sets
    # ``stopping``; the worker ends the process, which marks itself ``stopped``. ``hopper serve-model`` run by
    # hand records itself as ``starting`` directly.
    def add_deployment(self, config_id: int, *, fmt: str, name: str, host: str, port: int | None, actor: str,
                       status: DeploymentStatus, reuse: bool = False, actor_limit: int = 0) -> DeploymentInfo:
        """A deployment row; with ``reuse`` an active (requested, starting, running) one of the same config and
        format is returned instead (``reused``).

        Raises:
            TooBusy: ``actor`` already has ``actor_limit`` active deployments (0: no limit).
        """
        active = [DeploymentStatus.REQUESTED, DeploymentStatus.STARTING, DeploymentStatus.RUNNING]
        with self._session() as session:
            if reuse:
                existing = session.scalars(select(DeploymentRow).where(
                    DeploymentRow.config_id == config_id, DeploymentRow.format == fmt,
                    DeploymentRow.status.in_(active)).order_by(DeploymentRow.id)).first()
                if existing is not None:
                    return DeploymentInfo.from_row(existing, reused=True)
            if actor_limit > 0:
                mine = session.scalar(select(func.count(DeploymentRow.id)).where(
                    DeploymentRow.actor == actor, DeploymentRow.status.in_(active)))
                if mine >= actor_limit:
                    raise TooBusy(f"{actor} already has {mine} deployments requested or running (the limit is "
                                  f"{actor_limit}, HOPPER_MAX_RUNNING_DEPLOYMENTS); stop one first", retry_after=30,
                                  field="config_id")
            row = DeploymentRow(config_id=config_id, format=fmt, name=name, host=host, port=port, status=status,
                                actor=actor)
            session.add(row)
            session.flush()
            add_event(session, actor, "deploy_config", "config", config_id,
                      after={"deployment": row.id, "format": fmt, "name": name, "status": str(status)})
            return DeploymentInfo.from_row(row)

    def claim_deployment(self) -> DeploymentInfo | None:
        """The oldest requested deployment, moved to ``starting`` by compare-and-set (None when none is left).

        Two workers may poll the same store; the conditional UPDATE lets exactly one of them win a row.
        """
        for _ in range(20):
            with self._session() as session:
                candidate = session.scalar(select(DeploymentRow.id).where(
                    DeploymentRow.status == DeploymentStatus.REQUESTED).order_by(DeploymentRow.id).limit(1))
                if candidate is None:
                    return None
                won = session.execute(
                    update(DeploymentRow).where(DeploymentRow.id == candidate,
                                                DeploymentRow.status == DeploymentStatus.REQUESTED)
                    .values(status=DeploymentStatus.STARTING).execution_options(synchronize_session=False)).rowcount
                if won == 1:
                    return DeploymentInfo.from_row(session.get(DeploymentRow, candidate, populate_existing=True))
        return None

    def request_stop_deployment(self, deployment_id: int, *, actor: str) -> DeploymentInfo:
        """``stopping`` for the export worker, or ``stopped`` at once if it never started (audited).

        Asking again while it is stopping returns the row unchanged; a finished deployment is an ``InvalidState``.
        """
        for _ in range(20):
            with self._session() as session:
                row = get_row(session, DeploymentRow, deployment_id, "deployment")
                current = DeploymentStatus(row.status)
                if current == DeploymentStatus.STOPPING:
                    return DeploymentInfo.from_row(row)
                if current in (DeploymentStatus.STOPPED, DeploymentStatus.FAILED):
                    raise InvalidState(f"deployment {deployment_id} is already {current}")
                target = DeploymentStatus.STOPPED if current == DeploymentStatus.REQUESTED else DeploymentStatus.STOPPING
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
                add_event(session, actor, "stop_deployment", "deployment", deployment_id,
                          before={"status": str(current)}, after={"status": str(target)})
                return DeploymentInfo.from_row(session.get(DeploymentRow, deployment_id, populate_existing=True))
        raise Conflict(f"deployment {deployment_id} kept changing; try again")

    def mark_deployment(self, deployment_id: int, *, status: DeploymentStatus | None = None,
                        port: int | None = None, pid: int | None = None, export_id: int | None = None,
                        error: str | None = None) -> DeploymentInfo:
        """Record what the serving process or the worker saw; ``status`` None keeps the status.

        A stop asked for while the server was still loading wins over its ``running``: the row stays
        ``stopping`` (with the port and pid recorded) so that the worker still ends the process.
        """
        with self._session() as session:
            row = get_row(session, DeploymentRow, deployment_id, "deployment")
            if status is not None:
                target = DeploymentStatus(status)
                stop_wins = row.status == DeploymentStatus.STOPPING and target == DeploymentStatus.RUNNING
                if row.status != target and not stop_wins:
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
            return DeploymentInfo.from_row(row)

    def list_deployments(self, *, config_id: int | None = None, status: str | None = None) -> list[DeploymentInfo]:
        with self._session() as session:
            stmt = select(DeploymentRow).order_by(DeploymentRow.id.desc())
            if config_id is not None:
                stmt = stmt.where(DeploymentRow.config_id == config_id)
            if status is not None:
                stmt = stmt.where(DeploymentRow.status == DeploymentStatus(status))
            return [DeploymentInfo.from_row(r) for r in session.scalars(stmt)]

    def get_deployment(self, deployment_id: int) -> DeploymentInfo:
        with self._session() as session:
            return DeploymentInfo.from_row(get_row(session, DeploymentRow, deployment_id, "deployment"))
