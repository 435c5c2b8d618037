"""Every user action as one method: the only place where intent becomes store writes.

REST handlers, Dash callbacks, the CLI and scheduled batch jobs all call ``Services``; none of them holds
business logic of its own. The actions are grouped by context, each a class of its own that talks only to the
store: ``steering`` (workloads and configs), ``data`` (datasets and scripts), ``edge`` (exports, devices,
profiling, deployments) and ``admin`` (audit log, TensorBoard, health) and ``identity`` (people, device
credentials, web sessions). ``Services`` composes them and
offers each action under its own name too (``services.stop_config`` is ``services.steering.stop_config``), so
callers need not know which context owns an action. Every method returns entities (``hopper.engine.entities``;
``to_dict()`` gives their JSON), never ORM rows or dicts. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hopper.engine.entities import ExportSource, ScriptValidator
from hopper.engine.services._base import ServiceContext, default_actor
from hopper.engine.services.admin import AdminServices
from hopper.engine.services.advisor import AdvisorServices
from hopper.engine.services.data import MAX_SCRIPT_BYTES, DataServices
from hopper.engine.services.edge import EdgeServices, metric_names, pareto_mask
from hopper.engine.services.identity import IdentityServices
from hopper.engine.services.objectives import ObjectiveServices
from hopper.engine.services.schedules import ScheduleServices
from hopper.engine.services.steering import SteeringServices
from hopper.engine.services.workers import WorkerServices
from hopper.engine.store import Store

if TYPE_CHECKING:
    from hopper.settings import Settings

__all__ = ["MAX_SCRIPT_BYTES", "AdminServices", "AdvisorServices", "DataServices", "EdgeServices", "ExportSource", "IdentityServices", "ObjectiveServices",
           "ScheduleServices", "ScriptValidator",
           "Services", "SteeringServices", "default_actor", "metric_names", "open_services", "pareto_mask"]


def _private_dir(path: Path) -> None:
    """The artefact directory (checkpoints, scripts, exports) is created 0700, and tightened if looser."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


class Services:
    """User actions on one store, composed from the four contexts.

    Args:
        store: the config store.
        settings: data roots, artefact dir, worker count.
        script_validator: runs uploaded scripts in a sandbox (``hopper.app.open_services`` provides it).
    """

    def __init__(self, store: Store, settings: Settings, *, script_validator: ScriptValidator | None = None) -> None:
        self.store = store
        self.settings = settings
        _private_dir(settings.artifact_dir)
        self.steering = SteeringServices(store, settings)
        self.data = DataServices(store, settings, script_validator)
        self.edge = EdgeServices(store, settings)
        self.admin = AdminServices(store, settings)
        self.identity = IdentityServices(store, settings)
        self.advisor = AdvisorServices(store, settings, self.steering)
        self.objectives = ObjectiveServices(store, settings)
        self.schedules = ScheduleServices(store, settings, self.steering)
        self.workers = WorkerServices(store, settings)
        self._actions: dict[str, Callable[..., Any]] = {}
        for context in (self.steering, self.data, self.edge, self.admin, self.identity, self.advisor,
                        self.objectives, self.schedules, self.workers):
            for name in dir(type(context)):
                if name.startswith("_") or name in dir(ServiceContext) or not callable(getattr(context, name)):
                    continue
                if name in self._actions:
                    raise TypeError(f"two service contexts define {name!r}")
                self._actions[name] = getattr(context, name)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        # Only called for names not found normally: the actions of the contexts.
        actions = self.__dict__.get("_actions", {})
        if name in actions:
            return actions[name]
        raise AttributeError(f"Services has no action {name!r}")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self._actions})

    @property
    def script_validator(self) -> ScriptValidator | None:
        return self.data.script_validator


def open_services(settings: Settings, *, check_schema: bool = True,
                  script_validator: ScriptValidator | None = None) -> Services:
    """Services on the store that ``settings`` names (``hopper.app.open_services`` adds the script sandbox)."""
    return Services(Store(settings.database_url, check_schema=check_schema), settings,
                    script_validator=script_validator)
