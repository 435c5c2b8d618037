"""Everything that runs inside a training worker or a script-validation child.

The sub-epoch runner, the plain-data task protocol, checkpoints, the model factory that loads
roster builders and users' scripts, the sandbox guard and the validation child. It depends on
``hopper.engine`` and ``hopper.roster``; nothing in ``hopper.engine`` imports it (an import
contract in pyproject.toml checks this). Importing this package does not import TensorFlow.
"""

from __future__ import annotations

import importlib.util
import os

# The packages whose code a guarded worker runs. Found without importing them: importing
# hopper.mop_scheduler here would run the scheduler's imports in every worker.
_GUARDED_PACKAGES = ("hopper", "hopper.engine", "hopper.roster", "hopper.mop_scheduler")


def hopper_package_roots() -> tuple[str, ...]:
    """Directories of Hopper's own packages, for the sandbox's allow-list.

    An editable install keeps them outside site-packages, so the guard would otherwise refuse
    the worker's own lazy imports.
    """
    roots: list[str] = []
    for name in _GUARDED_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            roots.extend(os.path.realpath(p) for p in spec.submodule_search_locations)
    return tuple(roots)
