"""REST resources of advisor mode (suggestions) and of objectives added to a running workload."""

from __future__ import annotations

from flask import request

from hopper.rest._api import actor, services
from hopper.rest.routes import CONFLICT, INVALID, NOT_FOUND, api


@api.route("GET", "/workloads/<int:workload_id>/suggestions", tag="suggestions", returns="list",
           errors=(INVALID, NOT_FOUND),
           query=(("status", "string", "only suggestions in this state: pending, accepted, rejected, expired",
                   None, None),))
def list_suggestions(workload_id: int):  # noqa: ANN201
    """List an advisor-mode workload's suggestions with their reasons (pending first).

    A workload launched with ``advisor: true`` keeps its procedure's decisions (stop, pause, promote, exploit)
    as suggestions for people to accept or reject. Viewers may read them; editors decide.
    """
    return [s.to_dict() for s in services().list_suggestions(workload_id,
                                                             status=request.args.get("status") or None)]


@api.route("POST", "/workloads/<int:workload_id>/suggestions/<int:suggestion_id>/accept", tag="suggestions",
           errors=(NOT_FOUND, CONFLICT))
def accept_suggestion(workload_id: int, suggestion_id: int):  # noqa: ANN201
    """Accept a suggestion: it is applied like the person's own action.

    Audited as suggested by the procedure and accepted by the caller. A stop takes effect after the config's
    running sub-epoch; a promoted config or an exploit's new config starts at the next free slot. 409 when it was
    already decided, or when the state made it moot (it expires, and the message says why).
    """
    return services().accept_suggestion(workload_id, suggestion_id, actor=actor()).to_dict()


@api.route("POST", "/workloads/<int:workload_id>/suggestions/<int:suggestion_id>/reject", tag="suggestions",
           errors=(NOT_FOUND, CONFLICT))
def reject_suggestion(workload_id: int, suggestion_id: int):  # noqa: ANN201
    """Reject a suggestion: it never takes effect (audited). 409 when it was already decided."""
    return services().reject_suggestion(workload_id, suggestion_id, actor=actor()).to_dict()
