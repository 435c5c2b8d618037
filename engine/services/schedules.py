"""Scheduled workloads: a workload spec launched on a cron schedule, each due run exactly once.

**Which process fires.** ``fire_due_schedules`` is called by the scheduler loop (``hopper scheduler``, ``hopper
serve --with-scheduler``, ``hopper run``): it is the one long-running process of a deployment (its lease makes it
unique per store) and the one that trains what a launch queues, whereas web processes may be several, or none.
Correctness does not rest on that choice: every run is claimed in the store (``CronScheduleStore.claim``), so any
number of firers (a restarted scheduler, a second web process, a test's threads) launch a due run once.

**Missed runs.** A schedule whose due time passed while nothing ran (the scheduler was down for a night or a
week) fires once when a firer next looks, for the earliest missed time, and its next run is the first cron time
after *now*: missed ticks are not replayed one by one. A schedule enabled again counts from the moment it is
enabled (runs missed while disabled never fire).

**Crash window.** A firer that dies after its claim and before it records the launched workload leaves the run
``claimed``; after ``STALE_CLAIM_SECONDS`` the next firer marks it failed with that explanation and never launches
it again (the workload may exist): at most once, and visibly so.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

from hopper.engine.cron import check_cron, check_timezone, local_time, next_run, utcnow
from hopper.engine.entities import ScheduleInfo, ScheduleRunInfo
from hopper.engine.errors import HopperError, StoreUnavailable, ValidationError
from hopper.engine.services._base import ServiceContext, default_actor
from hopper.engine.services.steering import SteeringServices
from hopper.engine.specs import WorkloadSpec, parse_spec

log = logging.getLogger("hopper.engine.services.schedules")

#: A run claimed longer ago than this whose launch was never recorded: its firer died in between.
STALE_CLAIM_SECONDS = 600.0


def _claimer() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


class ScheduleServices(ServiceContext):
    """Schedules (cron + time zone + workload spec) and their runs."""

    def __init__(self, store: object, settings: object, steering: SteeringServices) -> None:
        super().__init__(store, settings)
        self._steering = steering

    def add_schedule(self, cron: str, spec: dict | WorkloadSpec, *, timezone: str = "UTC", name: str | None = None,
                     actor: str | None = None) -> ScheduleInfo:
        """Add an enabled schedule that launches ``spec`` at every time the cron expression matches in ``timezone``.

        The spec is validated exactly as a launch validates it (dataset, model, space, procedure options), so a
        spec that would fail at 2 a.m. is refused now.

        Raises:
            ValidationError: a bad cron expression (field ``cron``), time zone (``timezone``) or spec (the spec's
                field, e.g. ``space.lr``).
        """
        cron = check_cron(cron)
        check_timezone(timezone)
        parsed = spec if isinstance(spec, WorkloadSpec) else parse_spec(WorkloadSpec, spec)
        self._steering.launch_workload(parsed, check_only=True)
        # What the person wrote, not every default filled in: a later Hopper's defaults apply at each launch.
        record = parsed.model_dump(mode="json", exclude_unset=True)
        name = (name or parsed.name).strip()
        if not name or len(name) > 200 or "\x00" in name:
            raise ValidationError("a schedule's name must have 1 to 200 characters, none of them NUL", field="name")
        return self.store.schedules.add(actor=actor or default_actor(), name=name, cron=cron, timezone=timezone.strip(),
                                        spec=record, next_run_at=next_run(cron, timezone, utcnow()))

    def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule with its next run (UTC)."""
        return self.store.schedules.list()

    def get_schedule(self, schedule_id: int) -> ScheduleInfo:
        """One schedule."""
        return self.store.schedules.get(schedule_id)

    def set_schedule_enabled(self, schedule_id: int, enabled: bool, *, actor: str | None = None) -> ScheduleInfo:
        """Enable or disable a schedule; enabled again, its next run is the first cron time from now."""
        schedule = self.store.schedules.get(schedule_id)
        return self.store.schedules.set_enabled(
            schedule_id, bool(enabled), next_run_at=next_run(schedule.cron, schedule.timezone, utcnow()),
            actor=actor or default_actor())

    def list_schedule_runs(self, schedule_id: int) -> list[ScheduleRunInfo]:
        """A schedule's runs, newest first: due time, the workload launched, or why none was."""
        return self.store.schedules.runs(schedule_id)

    def fire_due_schedules(self, *, now: datetime | None = None, claimer: str | None = None) -> list[ScheduleRunInfo]:
        """Launch every due run that this caller wins the claim for; returns those runs (launched or failed).

        Safe to call from any number of processes at once: each due run is launched by exactly one of them.
        """
        now = now or utcnow()
        claimer = claimer or _claimer()
        for stale in self.store.schedules.abandon_stale_claims(now - timedelta(seconds=STALE_CLAIM_SECONDS)):
            log.error("schedule %d: run due %s was claimed but never recorded: %s", stale.schedule_id,
                      stale.due_at, stale.error)
        fired = []
        for schedule in self.store.schedules.due(now):
            try:
                following = next_run(schedule.cron, schedule.timezone, max(now, schedule.next_run_at))
            except ValidationError as exc:  # a time zone the system's tz database dropped since
                log.error("schedule %d cannot compute its next run: %s", schedule.id, exc.message)
                continue
            run = self.store.schedules.claim(schedule.id, schedule.next_run_at, following, claimer)
            if run is None:
                continue  # another firer has it
            fired.append(self._launch(schedule, run))
        return fired

    def _launch(self, schedule: ScheduleInfo, run: ScheduleRunInfo) -> ScheduleRunInfo:
        when = local_time(run.due_at, schedule.timezone)
        spec = {**schedule.spec, "name": f"{schedule.spec.get('name', schedule.name)} {when:%Y-%m-%d %H:%M}"[:200]}
        try:
            workload = self._steering.launch_workload(spec, actor=f"schedule:{schedule.id}")
        except StoreUnavailable:
            raise  # the run stays claimed; the next firer reports it once the claim is stale
        except Exception as exc:  # noqa: BLE001 - a sampler library's own error must not leave the run claimed
            message = exc.message if isinstance(exc, HopperError) else f"{type(exc).__name__}: {exc}"
            log.error("schedule %d: the run due %s was not launched: %s", schedule.id, run.due_at, message)
            return self.store.schedules.finish_run(run.id, error=message)
        log.info("schedule %d launched workload %d (due %s)", schedule.id, workload.id, run.due_at)
        return self.store.schedules.finish_run(run.id, workload_id=workload.id)
