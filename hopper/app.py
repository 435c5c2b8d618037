"""The composition root: wires the engine's services to the implementations that live outside it.

The engine may not import the worker package (an import contract checks it), yet uploading a
script needs the worker's out-of-process validator. Every entry point that may upload scripts
(CLI, web server, tests, benchmarks) opens its services here rather than with
``hopper.engine.services.open_services``, which gives a Services without a validator.
"""

from __future__ import annotations

from hopper.engine.services import Services
from hopper.engine.store import Store
from hopper.mop_scheduler.worker.validate import validate_script
from hopper.settings import Settings


def open_services(settings: Settings, *, check_schema: bool = True) -> Services:
    """Services on the store that ``settings`` names, able to validate uploaded scripts."""
    return Services(Store(settings.database_url, check_schema=check_schema), settings,
                    script_validator=validate_script)
