"""REST resources of scheduled workloads: schedules (cron + time zone + workload spec) and their runs."""

from __future__ import annotations

from hopper.rest._api import actor, services
from hopper.rest.routes import INVALID, NOT_FOUND, api
from hopper.rest.schemas import ScheduleBody, SchedulePatch


@api.route("GET", "/schedules", tag="schedules", returns="list")
def list_schedules():  # noqa: ANN201
    """List schedules with their cron, time zone, enabled flag and next run (UTC)."""
    return [s.to_dict() for s in services().list_schedules()]


@api.route("POST", "/schedules", tag="schedules", body=ScheduleBody, status=201, errors=(INVALID,))
def create_schedule(body: ScheduleBody):  # noqa: ANN201
    """Add a schedule: the spec is launched at every time the cron expression matches in the time zone.

    The scheduler fires each due run exactly once (a claim in the store), also across restarts and with several
    web processes; a run missed while nothing ran fires once when the scheduler is back. 400 when the body does
    not match this document; 422 when the service refuses it: a bad cron expression (``field: cron``), an unknown
    time zone (``timezone``), or a spec that a launch would refuse now (its dataset does not exist, ...).
    """
    return services().add_schedule(body.cron, body.spec, timezone=body.timezone, name=body.name,
                                   actor=actor()).to_dict()


@api.route("GET", "/schedules/<int:schedule_id>", tag="schedules", errors=(NOT_FOUND,))
def get_schedule(schedule_id: int):  # noqa: ANN201
    """Show a schedule, with the workload spec it launches."""
    return services().get_schedule(schedule_id).to_dict()


@api.route("PATCH", "/schedules/<int:schedule_id>", tag="schedules", body=SchedulePatch, errors=(INVALID, NOT_FOUND))
def patch_schedule(schedule_id: int, body: SchedulePatch):  # noqa: ANN201
    """Enable or disable a schedule; enabled again, it fires from its next cron time on (missed runs do not)."""
    return services().set_schedule_enabled(schedule_id, body.enabled, actor=actor()).to_dict()


@api.route("GET", "/schedules/<int:schedule_id>/runs", tag="schedules", returns="list", errors=(NOT_FOUND,))
def list_schedule_runs(schedule_id: int):  # noqa: ANN201
    """A schedule's runs, newest first: due time, who claimed it, the workload launched or why none was."""
    return [r.to_dict() for r in services().list_schedule_runs(schedule_id)]
