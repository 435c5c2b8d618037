"""Every status Hopper stores, as enums, and the one transition table each of them obeys.

Status columns hold the enum's string value (``StrEnum``), so the schema did not change and rows written
by earlier versions read back as members. Writers never assign a status directly: the store calls
:func:`check_transition` (through :meth:`StatusMachine.check`) before every change, and an illegal
change raises ``InvalidState`` naming the object, where it is and where it was asked to go.

No other module spells a status as a string literal (a test scans the code for it): comparisons and
writes go through these members, so a typo is an ``AttributeError`` at import time, not a config that
silently never runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from hopper.engine.errors import InvalidState


class ConfigStatus(StrEnum):
    QUEUED = "queued"  # waiting for a worker (never trained, or resumed)
    RUNNING = "running"  # started and not finished: at least one sub-epoch committed or in flight
    STOPPED = "stopped"  # a person (or a procedure) stopped it; its checkpoints stay, resume continues
    DONE = "done"  # trained every epoch of the workload
    FAILED = "failed"  # its code raised, or its worker died repeatedly while training it
    PRIVACY_SPENT = "privacy_spent"  # one more epoch would exceed the workload's privacy.target_epsilon
    PAUSED = "paused"  # waiting at a rung (ASHA/Hyperband) until its procedure or a person promotes it

    @property
    def label(self) -> str:
        """How people read the status (tables, messages)."""
        return _CONFIG_LABELS.get(self, self.value)


class DecisionKind(StrEnum):
    """What a procedure decides about a config at an epoch boundary (``engine.procedures.Decision``)."""

    STOP = "stop"  # train it no further (median stopping rule, a lost rung)
    PAUSE = "pause"  # wait at a rung: not runnable until promoted
    PROMOTE = "promote"  # continue past the rung (a paused config is queued again)
    EXPLOIT = "exploit"  # PBT: clone a source's weights and optimizer state with explored hparams; stop the target


class WorkloadStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"  # no new sub-epoch starts; running ones finish and commit
    DONE = "done"
    FAILED = "failed"
    # A person stopped the whole workload: running sub-epochs finish and commit, none starts; configs keep their
    # checkpoints, and a resume continues where they were.
    STOPPED = "stopped"
    # Its wall-time, worker-seconds or money budget ran out: like a stop, but decided by the scheduler, and final.
    BUDGET_SPENT = "budget_spent"

    @property
    def label(self) -> str:
        """How people read the status (tables, messages)."""
        return _WORKLOAD_LABELS.get(self, self.value)


class SubEpochOutcome(StrEnum):
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    LOST = "lost"  # its worker (or the scheduler) died; re-run
    TIMEOUT = "timeout"  # it hung past the sub-epoch timeout


class JobStatus(StrEnum):
    """A queued piece of work claimed by one taker: profiling jobs and export requests."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class DeploymentStatus(StrEnum):
    REQUESTED = "requested"  # queued for the export worker, which starts the model server
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"  # a stop was asked for; the export worker ends the process
    STOPPED = "stopped"
    FAILED = "failed"


class ScriptValidation(StrEnum):
    """Where an uploaded script's validation is (``validation.state`` on the script)."""

    PENDING = "pending"  # queued or running in the validation pool
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class SuggestionStatus(StrEnum):
    """Where an advisor's suggestion is (a procedure run with ``advisor: true`` suggests instead of acting)."""

    PENDING = "pending"  # waiting for a person
    ACCEPTED = "accepted"  # a person accepted it and it was applied through the steering services
    REJECTED = "rejected"  # a person rejected it: it never takes effect
    EXPIRED = "expired"  # the state made it moot (its config stopped, finished or was promoted meanwhile)


class DeviceStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class ScheduleRunStatus(StrEnum):
    """One due run of a schedule: claimed by exactly one firer, then launched or failed."""

    CLAIMED = "claimed"  # a firer won the claim and is launching the workload
    LAUNCHED = "launched"
    FAILED = "failed"  # the launch was refused (the dataset is gone, ...) or the firer stopped mid-launch


class WebhookStatus(StrEnum):
    """A webhook delivery in the outbox (one per workload and terminal status)."""

    PENDING = "pending"  # not yet accepted by the receiver: retried with backoff
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the last attempt


_CONFIG_LABELS = {ConfigStatus.PRIVACY_SPENT: "privacy budget spent", ConfigStatus.PAUSED: "waiting at a rung"}
_WORKLOAD_LABELS = {WorkloadStatus.BUDGET_SPENT: "budget spent"}

_ACTIVITY_LABELS = {ConfigStatus.QUEUED: "queued", ConfigStatus.RUNNING: "waiting for a worker",
                    ConfigStatus.PAUSED: "paused", ConfigStatus.PRIVACY_SPENT: "privacy budget spent"}


def config_activity_label(status: ConfigStatus | str, *, training_now: bool, workload_paused: bool = False) -> str:
    """What a config is doing, in the words the dashboard uses: queued / training now / waiting for a worker /
    paused / stopped / done / failed / privacy budget spent.

    ``running`` in the store means started and not finished, which says nothing about a worker: with two workers
    and five started configs, two are training now and three wait for a worker.

    Args:
        status: the stored status.
        training_now: a sub-epoch of the config is on a worker.
        workload_paused: its workload is paused, so a config not on a worker waits for a person, not a worker.
    """
    current = ConfigStatus(status)
    if training_now:
        return "training now"
    if workload_paused and current in RUNNABLE_CONFIG:
        return "paused"
    return _ACTIVITY_LABELS.get(current, current.value)


def workload_label(status: WorkloadStatus | str) -> str:
    """A workload's status as people read it (``budget_spent`` -> "budget spent")."""
    return str(status).replace("_", " ")


#: Configs that the scheduler may still dispatch.
RUNNABLE_CONFIG: frozenset[ConfigStatus] = frozenset({ConfigStatus.QUEUED, ConfigStatus.RUNNING})
#: Configs that will not train again unless a person resumes them.
FINISHED_CONFIG: frozenset[ConfigStatus] = frozenset({ConfigStatus.STOPPED, ConfigStatus.DONE, ConfigStatus.FAILED,
                                                      ConfigStatus.PRIVACY_SPENT})

#: Workload statuses that end a workload (a webhook reports them). Whatever is neither running nor paused ends
#: it, so a terminal status added later (budget spent, ...) is reported without a change here.
ENDED_WORKLOAD: frozenset[WorkloadStatus] = frozenset(
    s for s in WorkloadStatus if s not in (WorkloadStatus.RUNNING, WorkloadStatus.PAUSED))

_C, _W, _S, _J, _D = ConfigStatus, WorkloadStatus, SubEpochOutcome, JobStatus, DeploymentStatus

CONFIG_TRANSITIONS: Mapping[ConfigStatus, frozenset[ConfigStatus]] = {
    _C.QUEUED: frozenset({_C.RUNNING, _C.STOPPED, _C.FAILED, _C.DONE, _C.PRIVACY_SPENT, _C.PAUSED}),
    _C.RUNNING: frozenset({_C.STOPPED, _C.DONE, _C.FAILED, _C.PRIVACY_SPENT, _C.PAUSED}),
    # Promoted (by its procedure, or by a person's resume) or stopped; a paused config at the end of the
    # search stays paused: that is its final state, and a person may still promote it.
    _C.PAUSED: frozenset({_C.QUEUED, _C.STOPPED}),
    _C.STOPPED: frozenset({_C.QUEUED}),  # resume
    _C.FAILED: frozenset({_C.QUEUED}),  # resume after a fix
    _C.DONE: frozenset({_C.QUEUED}),  # the workload's max_epochs was raised
    # Terminal: any further epoch would overspend the target, and a resume or a raised budget cannot change that.
    _C.PRIVACY_SPENT: frozenset(),
}

WORKLOAD_TRANSITIONS: Mapping[WorkloadStatus, frozenset[WorkloadStatus]] = {
    _W.RUNNING: frozenset({_W.PAUSED, _W.DONE, _W.FAILED, _W.STOPPED, _W.BUDGET_SPENT}),
    _W.PAUSED: frozenset({_W.RUNNING, _W.FAILED, _W.STOPPED}),
    _W.DONE: frozenset({_W.RUNNING}),  # a config was added, resumed or the budget raised
    _W.FAILED: frozenset(),
    _W.STOPPED: frozenset({_W.RUNNING}),  # resume: its configs continue from their checkpoints
    # Terminal: its spend is recorded against the budget it was launched with; launch a drill-down to go on.
    _W.BUDGET_SPENT: frozenset(),
}

SUB_EPOCH_TRANSITIONS: Mapping[SubEpochOutcome, frozenset[SubEpochOutcome]] = {
    _S.RUNNING: frozenset({_S.OK, _S.FAILED, _S.LOST, _S.TIMEOUT}),
    _S.OK: frozenset(),
    _S.FAILED: frozenset(),
    _S.LOST: frozenset(),
    _S.TIMEOUT: frozenset(),
}

JOB_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    _J.QUEUED: frozenset({_J.RUNNING, _J.FAILED}),
    _J.RUNNING: frozenset({_J.DONE, _J.FAILED, _J.QUEUED}),  # queued again: lease expired, or a retryable failure
    _J.DONE: frozenset(),
    _J.FAILED: frozenset(),
}

DEPLOYMENT_TRANSITIONS: Mapping[DeploymentStatus, frozenset[DeploymentStatus]] = {
    _D.REQUESTED: frozenset({_D.STARTING, _D.STOPPED, _D.FAILED}),
    _D.STARTING: frozenset({_D.RUNNING, _D.STOPPING, _D.STOPPED, _D.FAILED}),
    _D.RUNNING: frozenset({_D.STOPPING, _D.STOPPED, _D.FAILED}),
    _D.STOPPING: frozenset({_D.STOPPED, _D.FAILED}),
    _D.STOPPED: frozenset(),
    _D.FAILED: frozenset(),
}

DEVICE_TRANSITIONS: Mapping[DeviceStatus, frozenset[DeviceStatus]] = {
    DeviceStatus.ONLINE: frozenset({DeviceStatus.OFFLINE}),
    DeviceStatus.OFFLINE: frozenset({DeviceStatus.ONLINE}),
}

SUGGESTION_TRANSITIONS: Mapping[SuggestionStatus, frozenset[SuggestionStatus]] = {
    SuggestionStatus.PENDING: frozenset({SuggestionStatus.ACCEPTED, SuggestionStatus.REJECTED,
                                         SuggestionStatus.EXPIRED}),
    # Accepted, then found moot while it was applied (the scheduler finished the config in between).
    SuggestionStatus.ACCEPTED: frozenset({SuggestionStatus.EXPIRED}),
    SuggestionStatus.REJECTED: frozenset(),
    SuggestionStatus.EXPIRED: frozenset(),
}

SCHEDULE_RUN_TRANSITIONS: Mapping[ScheduleRunStatus, frozenset[ScheduleRunStatus]] = {
    ScheduleRunStatus.CLAIMED: frozenset({ScheduleRunStatus.LAUNCHED, ScheduleRunStatus.FAILED}),
    ScheduleRunStatus.LAUNCHED: frozenset(),
    ScheduleRunStatus.FAILED: frozenset(),
}

WEBHOOK_TRANSITIONS: Mapping[WebhookStatus, frozenset[WebhookStatus]] = {
    WebhookStatus.PENDING: frozenset({WebhookStatus.DELIVERED, WebhookStatus.FAILED}),
    WebhookStatus.DELIVERED: frozenset(),
    WebhookStatus.FAILED: frozenset(),
}

_TABLES: dict[type[StrEnum], Mapping] = {
    ConfigStatus: CONFIG_TRANSITIONS,
    WorkloadStatus: WORKLOAD_TRANSITIONS,
    SubEpochOutcome: SUB_EPOCH_TRANSITIONS,
    JobStatus: JOB_TRANSITIONS,
    DeploymentStatus: DEPLOYMENT_TRANSITIONS,
    DeviceStatus: DEVICE_TRANSITIONS,
    SuggestionStatus: SUGGESTION_TRANSITIONS,
    ScheduleRunStatus: SCHEDULE_RUN_TRANSITIONS,
    WebhookStatus: WEBHOOK_TRANSITIONS,
}


def can_transition(current: StrEnum | str, target: StrEnum) -> bool:
    """Whether ``current`` may become ``target``. Staying put is not a transition: stopping a stopped config
    is an error the user should see, not a silent no-op."""
    kind = type(target)
    return target in _TABLES[kind][kind(current)]


def check_transition(current: StrEnum | str, target: StrEnum, *, what: str, action: str | None = None) -> None:
    """Raise ``InvalidState`` unless ``current`` may become ``target``.

    Args:
        current: the stored status (a member or its string value).
        target: the status asked for.
        what: the object, for the message ("config 12").
        action: the user's verb, for the message ("stop"); defaults to "move to <target>".
    """
    if not can_transition(current, target):
        verb = action or f"move to {target.value}"
        raise InvalidState(f"cannot {verb} {what}: it is {type(target)(current).value}")
