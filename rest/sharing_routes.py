"""REST resources for sharing the workers: a whole workload's pause, resume and stop, and its budget.

The weight is changed with ``PATCH /workloads/{id}`` (``{"weight": 3}``), with the workload's other fields.
"""

from __future__ import annotations

from hopper.rest._api import actor, services
from hopper.rest.routes import CONFLICT, NOT_FOUND, api


@api.route("POST", "/workloads/<int:workload_id>/pause", tag="workloads", errors=(NOT_FOUND, CONFLICT))
def pause_workload(workload_id: int):  # noqa: ANN201
    """Pause a whole workload: no new sub-epoch starts; running ones finish and commit.

    Takes effect at the next free slot. 409 when the workload is not running (paused, stopped, done, failed or
    its budget spent). Audited as ``pause_workload``.
    """
    return services().pause_workload(workload_id, actor=actor()).to_dict()


@api.route("POST", "/workloads/<int:workload_id>/resume", tag="workloads", errors=(NOT_FOUND, CONFLICT))
def resume_workload(workload_id: int):  # noqa: ANN201
    """Resume a paused or stopped workload: its configs continue from their checkpoints at the next free slot.

    409 when the workload is neither paused nor stopped (a workload whose budget is spent stays so).
    """
    return services().resume_workload(workload_id, actor=actor()).to_dict()


@api.route("POST", "/workloads/<int:workload_id>/stop", tag="workloads", errors=(NOT_FOUND, CONFLICT))
def stop_workload(workload_id: int):  # noqa: ANN201
    """Stop a whole workload: running sub-epochs finish and commit, none starts; configs keep their checkpoints.

    Its status becomes ``stopped``; ``POST .../resume`` continues it. 409 when it is not running or paused.
    """
    return services().stop_workload(workload_id, actor=actor()).to_dict()


@api.route("GET", "/workloads/<int:workload_id>/budget", tag="workloads", errors=(NOT_FOUND,))
def workload_budget(workload_id: int):  # noqa: ANN201
    """A workload's spend, what remains of its budget, and its ETA.

    ``wall_seconds`` since launch, ``worker_seconds`` of committed and running sub-epochs, ``money`` at the
    price per worker-hour in force at launch (null without a money budget's price); ``limits`` and
    ``remaining`` per limit (null: no limit); ``eta_seconds`` = measured mean sub-epoch time x
    ``sub_epochs_left`` / ``worker_share`` (the workers its weight gives it among the running workloads), null
    before a sub-epoch finished. ``spent``: the scheduler stopped it (status ``budget_spent``).
    """
    return services().workload_budget(workload_id).to_dict()
