"""REST resources: thin handlers (validate -> one service call -> serialise)."""

from __future__ import annotations

from flask import jsonify, request

from hopper.engine.errors import ValidationError
from hopper.engine.specs import DatasetSpec, WorkloadSpec
from hopper.rest._api import Api, actor, int_arg, services
from hopper.rest.schemas import (
    AddConfigBody,
    CloneBody,
    DrillDownBody,
    PriorityBody,
    ScriptBody,
    VersionedBody,
    WorkloadPatch,
)

api = Api()
NOT_FOUND, CONFLICT, INVALID = 404, 409, 400


def _expected_version(body: VersionedBody | None) -> int | None:
    """The client's idea of the config version: If-Match header or ``version`` in the body."""
    header = request.headers.get("If-Match")
    if header:
        raw = header.strip().removeprefix("W/").strip('"')
        if not raw.isdigit():
            raise ValidationError("If-Match must be the config's ETag, e.g. \"3\"", field="If-Match")
        return int(raw)
    return body.version if body is not None else None


def _with_etag(config) -> tuple:  # noqa: ANN001
    response = jsonify(config.to_dict())
    response.headers["ETag"] = f'"{config.version}"'
    return response, 200


# -- workloads --------------------------------------------------------------------------------------
@api.route("GET", "/workloads", "List workloads with status, config counts and best result", tag="workloads",
           returns="list")
def list_workloads():  # noqa: ANN201
    return [w.to_dict() for w in services().list_workloads()]


@api.route("POST", "/workloads", "Launch a workload from a spec", tag="workloads", body=WorkloadSpec, status=201,
           errors=(INVALID,))
def create_workload(body: WorkloadSpec):  # noqa: ANN201
    return services().launch_workload(body, actor=actor()).to_dict()


@api.route("GET", "/workloads/<int:workload_id>", "Show a workload", tag="workloads", errors=(NOT_FOUND,))
def get_workload(workload_id: int):  # noqa: ANN201
    return services().get_workload(workload_id).to_dict()


@api.route("PATCH", "/workloads/<int:workload_id>", "Pause/resume a workload or change its space and budget",
           tag="workloads", body=WorkloadPatch, errors=(INVALID, NOT_FOUND, CONFLICT))
def patch_workload(workload_id: int, body: WorkloadPatch):  # noqa: ANN201
    svc = services()
    if body.max_epochs is not None or body.max_configs is not None or body.search_space is not None:
        svc.update_workload(workload_id, max_epochs=body.max_epochs, max_configs=body.max_configs,
                            search_space=body.search_space, actor=actor())
    if body.status is not None:
        svc.set_workload_status(workload_id, body.status, actor=actor())
    return svc.get_workload(workload_id).to_dict()


@api.route("GET", "/workloads/<int:workload_id>/configs", "List a workload's configs (filter and page)",
           tag="configs", returns="page", errors=(NOT_FOUND,),
           query=(("status", "string", "only configs in this state", None, None),
                  ("limit", "integer", "page size", 1, 1000), ("offset", "integer", "rows to skip", 0, 10**9)))
def list_configs(workload_id: int):  # noqa: ANN201
    limit, offset = int_arg("limit", 100, 1, 1000), int_arg("offset", 0, 0, 10**9)
    items, total = services().page_configs(workload_id, status=request.args.get("status") or None,
                                           limit=limit, offset=offset)
    return {"items": [c.to_dict() for c in items], "total": total, "limit": limit, "offset": offset}


@api.route("POST", "/workloads/<int:workload_id>/configs", "Add a config by hand", tag="configs",
           body=AddConfigBody, status=201, errors=(INVALID, NOT_FOUND))
def add_config(workload_id: int, body: AddConfigBody):  # noqa: ANN201
    return services().add_config(workload_id, body.hparams, priority=body.priority, actor=actor()).to_dict()


@api.route("GET", "/workloads/<int:workload_id>/sub-epochs", "The sub-epoch schedule log (for the Gantt chart)",
           tag="schedule", returns="list", errors=(NOT_FOUND,),
           query=(("limit", "integer", "most rows", 1, 100_000),))
def list_sub_epochs(workload_id: int):  # noqa: ANN201
    services().get_workload(workload_id)
    return [s.to_dict() for s in services().list_sub_epochs(workload_id, limit=int_arg("limit", 10_000, 1, 100_000))]


# -- configs ----------------------------------------------------------------------------------------
@api.route("GET", "/configs/<int:config_id>", "Show a config with its per-epoch metrics (ETag = version)",
           tag="configs", errors=(NOT_FOUND,), headers=("ETag",))
def get_config(config_id: int):  # noqa: ANN201
    return _with_etag(services().get_config(config_id))


@api.route("POST", "/configs/<int:config_id>/stop", "Stop a config after its running sub-epoch", tag="configs",
           body=VersionedBody, errors=(NOT_FOUND, CONFLICT))
def stop_config(config_id: int, body: VersionedBody):  # noqa: ANN201
    return _with_etag(services().stop_config(config_id, expected_version=_expected_version(body), actor=actor()))


@api.route("POST", "/configs/<int:config_id>/resume", "Resume a stopped config from its last checkpoint",
           tag="configs", body=VersionedBody, errors=(NOT_FOUND, CONFLICT))
def resume_config(config_id: int, body: VersionedBody):  # noqa: ANN201
    return _with_etag(services().resume_config(config_id, expected_version=_expected_version(body), actor=actor()))


@api.route("PUT", "/configs/<int:config_id>/priority", "Set a config's priority", tag="configs", body=PriorityBody,
           errors=(INVALID, NOT_FOUND, CONFLICT))
def set_priority(config_id: int, body: PriorityBody):  # noqa: ANN201
    return _with_etag(services().set_priority(config_id, body.priority, expected_version=_expected_version(body),
                                              actor=actor()))


@api.route("POST", "/configs/<int:config_id>/clone", "Clone a config with its trained weights and overrides",
           tag="configs", body=CloneBody, status=201, errors=(INVALID, NOT_FOUND, CONFLICT))
def clone_config(config_id: int, body: CloneBody):  # noqa: ANN201
    return services().clone_config(config_id, body.overrides, priority=body.priority,
                                   expected_version=_expected_version(body), actor=actor()).to_dict()


@api.route("POST", "/configs/<int:config_id>/drill-down", "Launch a child workload on a refined space",
           tag="configs", body=DrillDownBody, status=201, errors=(INVALID, NOT_FOUND, CONFLICT))
def drill_down(config_id: int, body: DrillDownBody):  # noqa: ANN201
    return services().drill_down(config_id, body.space, name=body.name, procedure=body.procedure,
                                 max_configs=body.max_configs, max_epochs=body.max_epochs, actor=actor()).to_dict()


# -- datasets and scripts -----------------------------------------------------------------------------
@api.route("GET", "/datasets", "List datasets", tag="datasets", returns="list")
def list_datasets():  # noqa: ANN201
    return [d.to_dict() for d in services().list_datasets()]


@api.route("POST", "/datasets", "Register a dataset under a data root and partition it", tag="datasets",
           body=DatasetSpec, status=201, errors=(INVALID, CONFLICT, 403))
def register_dataset(body: DatasetSpec):  # noqa: ANN201
    return services().register_dataset(body, actor=actor()).to_dict()


@api.route("GET", "/datasets/<int:dataset_id>", "Show a dataset", tag="datasets", errors=(NOT_FOUND,))
def get_dataset(dataset_id: int):  # noqa: ANN201
    return services().get_dataset(dataset_id).to_dict()


@api.route("POST", "/scripts", "Upload a model script; it is validated in a sandboxed process", tag="scripts",
           body=ScriptBody, status=201, errors=(INVALID, 422))
def upload_script(body: ScriptBody):  # noqa: ANN201
    return services().upload_script(body.name, body.content, entry_point=body.entry_point, dataset=body.dataset,
                                    actor=actor()).to_dict()


@api.route("GET", "/scripts/<int:script_id>", "Show a script's validation result", tag="scripts",
           errors=(NOT_FOUND,))
def get_script(script_id: int):  # noqa: ANN201
    return services().get_script(script_id).to_dict()


# -- audit --------------------------------------------------------------------------------------------
@api.route("GET", "/events", "The audit log, newest first", tag="events", returns="list",
           query=(("limit", "integer", "most rows", 1, 1000),))
def list_events():  # noqa: ANN201
    return [e.to_dict() for e in services().list_events(limit=int_arg("limit", 200, 1, 1000))]
