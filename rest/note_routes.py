"""REST resources of people's notes on workloads and configs (Markdown, audited)."""

from __future__ import annotations

from hopper.rest._api import actor, services
from hopper.rest.routes import INVALID, NOT_FOUND, api
from hopper.rest.schemas import NoteBody


@api.route("GET", "/workloads/<int:workload_id>/notes", tag="notes", returns="list", errors=(NOT_FOUND,))
def list_workload_notes(workload_id: int):  # noqa: ANN201
    """List the notes on a workload, oldest first."""
    return [n.to_dict() for n in services().list_notes("workload", workload_id)]


@api.route("POST", "/workloads/<int:workload_id>/notes", tag="notes", body=NoteBody, status=201,
           errors=(INVALID, NOT_FOUND))
def add_workload_note(workload_id: int, body: NoteBody):  # noqa: ANN201
    """Add a note (Markdown) to a workload; the audit log records it as ``add_note`` with its text."""
    return services().add_note("workload", workload_id, body.text, actor=actor()).to_dict()


@api.route("GET", "/configs/<int:config_id>/notes", tag="notes", returns="list", errors=(NOT_FOUND,))
def list_config_notes(config_id: int):  # noqa: ANN201
    """List the notes on a config, oldest first."""
    return [n.to_dict() for n in services().list_notes("config", config_id)]


@api.route("POST", "/configs/<int:config_id>/notes", tag="notes", body=NoteBody, status=201,
           errors=(INVALID, NOT_FOUND))
def add_config_note(config_id: int, body: NoteBody):  # noqa: ANN201
    """Add a note (Markdown) to a config; the audit log records it as ``add_note`` with its text."""
    return services().add_note("config", config_id, body.text, actor=actor()).to_dict()
