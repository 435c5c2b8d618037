"""REST resources of advisor mode (suggestions) and of objectives added to a running workload."""

from __future__ import annotations

from flask import request

from hopper.engine.specs import ObjectiveSpec
from hopper.engine.status import SuggestionStatus
from hopper.rest._api import actor, services
from hopper.rest.routes import CONFLICT, INVALID, NOT_FOUND, api


@api.route("GET", "/workloads/<int:workload_id>/suggestions", tag="suggestions", returns="list",
           errors=(INVALID, NOT_FOUND),
           query=(("status", "string", "only suggestions in this state", tuple(SuggestionStatus), None),))
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


@api.route("GET", "/workloads/<int:workload_id>/objectives", tag="objectives", errors=(NOT_FOUND,))
def list_objectives(workload_id: int):  # noqa: ANN201
    """A workload's objectives, and the re-evaluations of those added after launch with their progress."""
    svc = services()
    return {"objectives": svc.get_workload(workload_id).objectives,
            "evaluations": [e.to_dict() for e in svc.list_evaluations(workload_id)]}


@api.route("POST", "/workloads/<int:workload_id>/objectives", tag="objectives", body=ObjectiveSpec, status=202,
           errors=(INVALID, NOT_FOUND, CONFLICT))
def add_objective(workload_id: int, body: ObjectiveSpec):  # noqa: ANN201
    """Add an objective to a running workload; its trained checkpoints are re-evaluated for it.

    Configs trained from now on report it at every epoch end. The epoch-end checkpoints already kept are
    measured by the export worker's child processes (never the web process); the answer is that evaluation
    request: ``n_expected`` evaluations (configs x kept epoch-end checkpoints), ``n_done`` so far. Hopper computes
    ``flops``, ``val_balanced_accuracy``, ``val_recall@<class>`` and ``val_cost`` (give ``cost_matrix``);
    a metric the models already report needs no evaluation. 409 when the workload already has it.
    """
    return services().add_objective(workload_id, body, actor=actor()).to_dict()


@api.route("GET", "/workloads/<int:workload_id>/ranking", tag="objectives", returns="list",
           errors=(INVALID, NOT_FOUND),
           query=(("metric", "string", "one of the workload's objectives (default: the first)", None, None),))
def rank_configs(workload_id: int):  # noqa: ANN201
    """A workload's configs, best first on one of its objectives (latest values; configs without one last)."""
    configs = services().rank_configs(workload_id, request.args.get("metric") or None)
    return [c.to_dict() for c in configs]


@api.route("GET", "/procedures", tag="workloads", returns="list")
def list_procedures():  # noqa: ANN201
    """Every search procedure: what it does, whether it decides at epoch ends (advisor mode applies), and its options.

    Each option has its kind, default and bounds; a workload gives them as ``procedure_options`` (``median_stop``
    on any procedure), and a wrong one is a 400 naming ``procedure_options.<name>``.
    """
    return [g.to_dict() for g in services().list_procedures()]
