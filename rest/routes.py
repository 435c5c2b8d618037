"""REST resources: thin handlers (validate -> one service call -> serialise)."""

from __future__ import annotations

from flask import jsonify, request, send_file

from hopper.engine.entities import Role, SubEpochInfo
from hopper.engine.specs import DatasetSpec, WorkloadSpec
from hopper.engine.status import ConfigStatus, JobStatus
from hopper.rest._api import Api, RequestInvalid, actor, int_arg, principal, scrub_paths, services
from hopper.rest._cache import read_cache
from hopper.rest.schemas import (
    AddConfigBody,
    CloneBody,
    CompleteJobBody,
    DeployBody,
    DeviceRefBody,
    DrillDownBody,
    ExportRequestBody,
    FailJobBody,
    PriorityBody,
    ProfileBody,
    RegisterDeviceBody,
    ScriptBody,
    VersionedBody,
    WorkloadPatch,
)

api = Api()
NOT_FOUND, CONFLICT, INVALID = 404, 409, 400


def _expected_version(body: VersionedBody | None) -> int | None:
    """The client's idea of the config version: If-Match header or ``version`` in the body."""
    header = request.headers.get("If-Match")
    if header and header.strip() == "*":
        return body.version if body is not None else None  # RFC 9110: "*" matches any current version
    if header:
        raw = header.strip().removeprefix("W/").strip('"')
        if not raw.isdigit():
            raise RequestInvalid("If-Match must be the config's ETag, e.g. \"3\"", field="If-Match")
        return int(raw)
    return body.version if body is not None else None


def _with_etag(config) -> tuple:  # noqa: ANN001
    response = jsonify(config.to_dict())
    response.headers["ETag"] = f'"{config.version}"'
    return response, 200


# -- workloads --------------------------------------------------------------------------------------
@api.route("GET", "/workloads", tag="workloads",
           returns="list")
def list_workloads():  # noqa: ANN201
    """List workloads with status, config counts and best result."""
    return [w.to_dict() for w in services().list_workloads()]


@api.route("POST", "/workloads", tag="workloads", body=WorkloadSpec, status=201,
           errors=(INVALID,))
def create_workload(body: WorkloadSpec):  # noqa: ANN201
    """Launch a workload from a spec."""
    return services().launch_workload(body, actor=actor()).to_dict()


@api.route("GET", "/workloads/<int:workload_id>", tag="workloads", errors=(NOT_FOUND,))
def get_workload(workload_id: int):  # noqa: ANN201
    """Show a workload."""
    return services().get_workload(workload_id).to_dict()


@api.route("PATCH", "/workloads/<int:workload_id>", tag="workloads", body=WorkloadPatch,
           errors=(INVALID, NOT_FOUND, CONFLICT))
def patch_workload(workload_id: int, body: WorkloadPatch):  # noqa: ANN201
    """Pause/resume/stop a workload, or change its weight, space and budget."""
    svc = services()
    if body.weight is not None:
        svc.set_workload_weight(workload_id, body.weight, actor=actor())
    if body.max_epochs is not None or body.max_configs is not None or body.search_space is not None:
        svc.update_workload(workload_id, max_epochs=body.max_epochs, max_configs=body.max_configs,
                            search_space=body.search_space, actor=actor())
    if body.status is not None:
        svc.set_workload_status(workload_id, body.status, actor=actor())
    return svc.get_workload(workload_id).to_dict()


@api.route("GET", "/workloads/<int:workload_id>/configs", tag="configs", returns="page", errors=(NOT_FOUND,),
           query=(("status", "string", "only configs in this state", tuple(ConfigStatus), None),
                  ("limit", "integer", "page size", 1, 1000), ("offset", "integer", "rows to skip", 0, 10**9)))
def list_configs(workload_id: int):  # noqa: ANN201
    """List a workload's configs (filter and page)."""
    limit, offset = int_arg("limit", 100, 1, 1000), int_arg("offset", 0, 0, 10**9)

    def page() -> dict:
        items, total = services().page_configs(workload_id, status=request.args.get("status") or None,
                                               limit=limit, offset=offset)
        return {"items": [c.to_dict() for c in items], "total": total, "limit": limit, "offset": offset}

    return read_cache().response(services().content_revision(workload_id), page)


@api.route("POST", "/workloads/<int:workload_id>/configs", tag="configs",
           body=AddConfigBody, status=201, errors=(INVALID, NOT_FOUND))
def add_config(workload_id: int, body: AddConfigBody):  # noqa: ANN201
    """Add a config by hand."""
    return services().add_config(workload_id, body.hparams, priority=body.priority, actor=actor()).to_dict()


@api.route("GET", "/workloads/<int:workload_id>/sub-epochs", tag="schedule", returns="list_or_object", errors=(NOT_FOUND,),
           query=(("limit", "integer", "most rows", 1, 100_000), ("offset", "integer", "rows to skip", 0, 2**31 - 1),
                  ("columnar", "integer", "1: one list of values per row under 'rows', field names once under "
                   "'fields' (a third of the bytes)", 0, 1)))
def list_sub_epochs(workload_id: int):  # noqa: ANN201
    """The sub-epoch schedule log (for the Gantt chart), oldest first.

    A list of objects by default; with ``columnar=1`` an object ``{"fields": [...], "rows": [[...], ...]}``.
    """
    limit, offset = int_arg("limit", 10_000, 1, 100_000), int_arg("offset", 0, 0, 2**31 - 1)
    columnar = int_arg("columnar", 0, 0, 1)

    def log() -> dict | list:
        rows = services().list_sub_epochs(workload_id, limit=limit, offset=offset)
        if columnar:
            return {"fields": SubEpochInfo.field_names(), "rows": [s.to_row() for s in rows]}
        return [s.to_dict() for s in rows]

    return read_cache().response(services().content_revision(workload_id), log)


# -- configs ----------------------------------------------------------------------------------------
@api.route("GET", "/configs/<int:config_id>", tag="configs", errors=(NOT_FOUND,), headers=("ETag",))
def get_config(config_id: int):  # noqa: ANN201
    """Show a config with its per-epoch metrics (ETag = version)."""
    return _with_etag(services().get_config(config_id))


@api.route("POST", "/configs/<int:config_id>/stop", tag="configs",
           body=VersionedBody, errors=(NOT_FOUND, CONFLICT))
def stop_config(config_id: int, body: VersionedBody):  # noqa: ANN201
    """Stop a config after its running sub-epoch.

    The work of the running sub-epoch is kept; nothing more is scheduled. Send the ETag as ``If-Match`` (or
    ``version``) so that a stale view gets 409 instead of stopping a config someone else changed.
    """
    return _with_etag(services().stop_config(config_id, expected_version=_expected_version(body), actor=actor()))


@api.route("POST", "/configs/<int:config_id>/resume", tag="configs", body=VersionedBody, errors=(NOT_FOUND, CONFLICT))
def resume_config(config_id: int, body: VersionedBody):  # noqa: ANN201
    """Resume a stopped config from its last checkpoint."""
    return _with_etag(services().resume_config(config_id, expected_version=_expected_version(body), actor=actor()))


@api.route("PUT", "/configs/<int:config_id>/priority", tag="configs", body=PriorityBody,
           errors=(INVALID, NOT_FOUND, CONFLICT))
def set_priority(config_id: int, body: PriorityBody):  # noqa: ANN201
    """Set a config's priority.

    Higher priority configs get the next free worker first; ``If-Match`` guards against a stale view.
    """
    return _with_etag(services().set_priority(config_id, body.priority, expected_version=_expected_version(body),
                                              actor=actor()))


@api.route("POST", "/configs/<int:config_id>/clone", tag="configs", body=CloneBody, status=201, errors=(INVALID, NOT_FOUND, CONFLICT))
def clone_config(config_id: int, body: CloneBody):  # noqa: ANN201
    """Clone a config with its trained weights and overrides.

    The clone starts from the source's last checkpoint, so a new learning rate or batch size continues the
    training instead of restarting it.
    """
    return services().clone_config(config_id, body.overrides, priority=body.priority,
                                   expected_version=_expected_version(body), actor=actor()).to_dict()


@api.route("POST", "/configs/<int:config_id>/drill-down", tag="configs", body=DrillDownBody, status=201, errors=(INVALID, NOT_FOUND, CONFLICT))
def drill_down(config_id: int, body: DrillDownBody):  # noqa: ANN201
    """Launch a child workload on a refined space."""
    return services().drill_down(config_id, body.space, name=body.name, procedure=body.procedure,
                                 max_configs=body.max_configs, max_epochs=body.max_epochs, actor=actor()).to_dict()


# -- datasets and scripts -----------------------------------------------------------------------------
@api.route("GET", "/datasets", tag="datasets", returns="list")
def list_datasets():  # noqa: ANN201
    """List datasets."""
    return [d.to_dict() for d in services().list_datasets()]


@api.route("POST", "/datasets", tag="datasets",
           body=DatasetSpec, status=201, errors=(INVALID, CONFLICT, 403))
def register_dataset(body: DatasetSpec):  # noqa: ANN201
    """Register a dataset under a data root and partition it."""
    return services().register_dataset(body, actor=actor()).to_dict()


@api.route("GET", "/datasets/<int:dataset_id>", tag="datasets", errors=(NOT_FOUND,))
def get_dataset(dataset_id: int):  # noqa: ANN201
    """Show a dataset."""
    return services().get_dataset(dataset_id).to_dict()


@api.route("POST", "/scripts", tag="scripts",
           body=ScriptBody, status=202, errors=(INVALID, NOT_FOUND, 422, 429))
def upload_script(body: ScriptBody):  # noqa: ANN201
    """Upload a model script; it is validated in a contained process after this returns.

    The answer (202) carries the script's id with ``validation.state`` pending; poll ``GET /scripts/{script_id}``
    until it is accepted or rejected (with the reason and traceback). When the validation pool and its queue are
    full the upload is refused with 429 and a ``Retry-After`` header.
    """
    return _script_json(services().upload_script(body.name, body.content, entry_point=body.entry_point,
                                                 dataset=body.dataset, actor=actor(), wait=False))


@api.route("GET", "/scripts/<int:script_id>", tag="scripts",
           errors=(NOT_FOUND,))
def get_script(script_id: int):  # noqa: ANN201
    """Show a script's validation result (its message and traceback name no server path)."""
    return _script_json(services().get_script(script_id))


def _script_json(script) -> dict:  # noqa: ANN001
    """A script as JSON, its validation's message and traceback scrubbed of the server's paths like 4xx errors."""
    out = script.to_dict()
    settings = services().settings
    validation = dict(out.get("validation") or {})
    for key in ("message", "details"):
        if isinstance(validation.get(key), str):
            validation[key] = scrub_paths(validation[key], settings)
    out["validation"] = validation
    return out


# -- audit --------------------------------------------------------------------------------------------
@api.route("GET", "/events", tag="events", returns="list",
           query=(("limit", "integer", "most rows", 1, 1000),))
def list_events():  # noqa: ANN201
    """The audit log, newest first."""
    return [e.to_dict() for e in services().list_events(limit=int_arg("limit", 200, 1, 1000))]


# -- edge: exports, devices, profiling jobs, profiles, deployments --------------------------------------
def _opt_int_arg(name: str) -> int | None:
    return int_arg(name, -1, 0, 2**31 - 1) if request.args.get(name) is not None else None


@api.route("GET", "/configs/<int:config_id>/exports", tag="edge", returns="list",
           errors=(NOT_FOUND,))
def list_exports(config_id: int):  # noqa: ANN201
    """List a config's TFLite exports."""
    return [x.to_dict() for x in services().list_exports(config_id)]


@api.route("POST", "/configs/<int:config_id>/exports", tag="edge", body=ExportRequestBody, status=202,
           errors=(INVALID, NOT_FOUND, CONFLICT, 429))
def request_export(config_id: int, body: ExportRequestBody):  # noqa: ANN201
    """Request a TFLite export (run by the export worker, out of the web process).

    Only a request row is written (202): converting needs TensorFlow, which the web process never imports.
    Poll ``GET /export-requests/{id}`` for the exports it made.
    """
    return services().request_export(config_id, quantizations=list(dict.fromkeys(body.quantizations)),
                                     profile=body.profile, actor=actor()).to_dict()


@api.route("GET", "/export-requests/<int:request_id>", tag="edge", errors=(NOT_FOUND,))
def get_export_request(request_id: int):  # noqa: ANN201
    """Show an export request and the exports it made."""
    return services().get_export_request(request_id).to_dict()


@api.route("GET", "/exports/<int:export_id>/artifact", tag="edge", returns="binary", errors=(NOT_FOUND, CONFLICT),
           headers=("X-Hopper-SHA256",), access="artifact")
def export_artifact(export_id: int):  # noqa: ANN201
    """Download an export's .tflite (X-Hopper-SHA256: the checksum recorded at export).

    Edge agents verify the checksum before profiling, so a corrupted or swapped file is caught on the device.
    """
    from pathlib import Path

    from hopper.engine.errors import InvalidState

    export = services().export_artifact(export_id)
    path = Path(export.path)
    if not path.is_file():
        raise InvalidState(f"the file of export {export_id} is missing on the server ({path.name})")
    response = send_file(path, mimetype="application/octet-stream", as_attachment=True, download_name=path.name,
                         conditional=False, etag=False, max_age=0)
    response.headers["X-Hopper-SHA256"] = export.sha256
    response.headers["X-Hopper-Bytes"] = str(export.bytes)
    return response, 200


@api.route("POST", "/exports/<int:export_id>/profile", tag="edge",
           body=ProfileBody, status=201, returns="list", errors=(INVALID, NOT_FOUND, CONFLICT, 429))
def enqueue_profiling(export_id: int, body: ProfileBody):  # noqa: ANN201
    """Queue profiling of an export on edge devices."""
    jobs = services().enqueue_profiling(export_id, device_id=body.device_id, all_devices=body.all_devices,
                                        runs=body.runs, warmup=body.warmup, actor=actor())
    return [j.to_dict() for j in jobs]


@api.route("GET", "/devices", tag="edge", returns="list")
def list_devices():  # noqa: ANN201
    """List edge devices (agents) with status and last contact."""
    return [x.to_dict() for x in services().list_devices()]


@api.route("POST", "/devices", tag="edge",
           body=RegisterDeviceBody, status=201, errors=(INVALID, CONFLICT), access="enrol")
def register_device(body: RegisterDeviceBody):  # noqa: ANN201
    """Register an edge agent (again, after a restart) with its hardware.

    With an enrolment token (``hopper device enrol-token``) the token is spent and the answer carries the
    device's own token (``token``, shown once): the agent uses it from then on. A device token re-registers
    only its own device; an admin may register any.
    """
    caller = principal()
    if caller is not None and caller.role == Role.ENROL:
        return services().enrol_device(caller, body.name, hardware=body.hardware,
                                       interpreter=body.interpreter).to_dict()
    return services().register_device(body.name, hardware=body.hardware, interpreter=body.interpreter,
                                      actor=f"device:{body.name}").to_dict()


@api.route("GET", "/devices/<int:device_id>", tag="edge", errors=(NOT_FOUND,))
def get_device(device_id: int):  # noqa: ANN201
    """Show an edge device."""
    return services().get_device(device_id).to_dict()


@api.route("POST", "/devices/<int:device_id>/heartbeat", tag="edge", errors=(NOT_FOUND,), access="device")
def heartbeat(device_id: int):  # noqa: ANN201
    """An agent is alive: extends the leases of its jobs."""
    return services().heartbeat(device_id).to_dict()


@api.route("POST", "/devices/<int:device_id>/offline", tag="edge", errors=(NOT_FOUND,), access="device")
def sign_off(device_id: int):  # noqa: ANN201
    """An agent signs off: offline now, its held jobs re-queued."""
    return services().sign_off(device_id).to_dict()


@api.route("POST", "/devices/<int:device_id>/claim", tag="edge", errors=(NOT_FOUND,), access="device")
def claim_job(device_id: int):  # noqa: ANN201
    """Claim the next profiling job (job is null when none)."""
    job = services().claim_job(device_id)
    return {"job": None if job is None else job.to_dict()}


@api.route("GET", "/jobs", tag="edge", returns="list",
           query=(("status", "string", "only jobs in this state", tuple(JobStatus), None),
                  ("export_id", "integer", "only jobs of this export", 0, 2**31 - 1)))
def list_jobs():  # noqa: ANN201
    """List profiling jobs, newest first."""
    jobs = services().list_jobs(status=request.args.get("status") or None, export_id=_opt_int_arg("export_id"))
    return [j.to_dict() for j in jobs]


@api.route("GET", "/jobs/<int:job_id>", tag="edge", errors=(NOT_FOUND,))
def get_job(job_id: int):  # noqa: ANN201
    """Show a profiling job."""
    return services().get_job(job_id).to_dict()


@api.route("POST", "/jobs/<int:job_id>/complete", tag="edge",
           body=CompleteJobBody, errors=(INVALID, NOT_FOUND, CONFLICT), access="device")
def complete_job(job_id: int, body: CompleteJobBody):  # noqa: ANN201
    """Post a job's measurements (profile and metrics)."""
    return services().complete_job(job_id, body.device_id, body.result.model_dump()).to_dict()


@api.route("POST", "/jobs/<int:job_id>/fail", tag="edge", body=FailJobBody, errors=(INVALID, NOT_FOUND, CONFLICT), access="device")
def fail_job(job_id: int, body: FailJobBody):  # noqa: ANN201
    """Report that a job could not be profiled (re-queued or failed)."""
    return services().fail_job(job_id, body.device_id, body.error, retryable=body.retryable).to_dict()


@api.route("POST", "/jobs/<int:job_id>/release", tag="edge", body=DeviceRefBody, errors=(INVALID, NOT_FOUND, CONFLICT), access="device")
def release_job(job_id: int, body: DeviceRefBody):  # noqa: ANN201
    """Give a held job back to the queue (agent shutting down)."""
    return services().fail_job(job_id, body.device_id, "the agent released the job", retryable=True).to_dict()


@api.route("GET", "/profiles", tag="edge",
           returns="list", query=(("config_id", "integer", "one config", 0, 2**31 - 1),
                                  ("device_id", "integer", "one device", 0, 2**31 - 1),
                                  ("workload_id", "integer", "one workload", 0, 2**31 - 1)))
def list_profiles():  # noqa: ANN201
    """Measured profiles (latency, size, memory, energy), newest first."""
    profiles = services().list_profiles(config_id=_opt_int_arg("config_id"), device_id=_opt_int_arg("device_id"),
                                        workload_id=_opt_int_arg("workload_id"))
    return [p.to_dict() for p in profiles]


@api.route("GET", "/workloads/<int:workload_id>/pareto", tag="edge", errors=(INVALID, NOT_FOUND), query=(
    ("x", "string", "latency (default) or bytes: exports on a device; objectives: the configs on the workload's "
     "declared objectives, with the hypervolume after each epoch", ("latency", "bytes", "objectives"), None),
    ("device", "string", "device name for latency", None, None)))
def pareto(workload_id: int):  # noqa: ANN201
    """Exports as accuracy vs latency (or size), front marked; or (x=objectives) the Pareto set of the
    workload's configs on its objectives and the hypervolume per epoch."""
    if request.args.get("x") == "objectives":
        return services().objective_front(workload_id).to_dict()
    return services().pareto(workload_id, x=request.args.get("x") or "latency",
                             device=request.args.get("device") or None).to_dict()


@api.route("GET", "/workloads/<int:workload_id>/importance", tag="workloads", errors=(NOT_FOUND, CONFLICT))
def importance(workload_id: int):  # noqa: ANN201
    """fANOVA importance of each searched hyperparameter for the primary objective (409 while too few configs
    have a result); computed on demand, cached until a config changes."""
    return services().importance(workload_id).to_dict()


@api.route("GET", "/workloads/<int:workload_id>/decisions", tag="workloads", errors=(NOT_FOUND,), returns="list")
def list_decisions(workload_id: int):  # noqa: ANN201
    """The decisions the workload's procedure applied (pauses at rungs, promotions, stops, PBT exploits), with
    their reasons, oldest first."""
    return [d.to_dict() for d in services().list_decisions(workload_id)]


@api.route("POST", "/configs/<int:config_id>/deploy", tag="edge", body=DeployBody, status=202,
           errors=(INVALID, NOT_FOUND, CONFLICT, 429))
def deploy_config(config_id: int, body: DeployBody):  # noqa: ANN201
    """Request serving a config over HTTP: the export worker starts ``hopper serve-model`` for it.

    The answer (202) is the deployment in status ``requested``; the worker moves it to ``starting`` and the
    model server to ``running`` with its URL. The web process starts no process itself.
    """
    return services().request_deployment(config_id, fmt=body.format, name=body.name, port=body.port,
                                         actor=actor()).to_dict()


@api.route("GET", "/deployments", tag="edge", returns="list")
def list_deployments():  # noqa: ANN201
    """List model deployments, newest first."""
    return [x.to_dict() for x in services().list_deployments()]


@api.route("GET", "/deployments/<int:deployment_id>", tag="edge", errors=(NOT_FOUND,))
def get_deployment(deployment_id: int):  # noqa: ANN201
    """Show a deployment: its status, and its URL once the model server runs."""
    return services().get_deployment(deployment_id).to_dict()


@api.route("POST", "/deployments/<int:deployment_id>/stop", tag="edge", errors=(NOT_FOUND, CONFLICT))
def stop_deployment(deployment_id: int):  # noqa: ANN201
    """Request stopping a model server: ``stopping`` until the export worker has ended it, then ``stopped``.

    A deployment the worker has not started yet stops at once; one already stopped or failed is a 409.
    """
    return services().request_stop_deployment(deployment_id, actor=actor()).to_dict()
