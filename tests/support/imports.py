"""Run import-linter and grimp on Hopper's import graph as an installed ``hopper`` package sees it.

The repository maps folders onto ``hopper.*`` (``engine/`` is ``hopper.engine``, see pyproject's
``package-dir``), but grimp finds a package's modules by walking its directory, and ``hopper/``
on disk holds only the entry points. So both tools run on a mirror: the ``.py`` files copied into
the layout the mapping describes, first on ``sys.path`` in a child interpreter (the running
process has already imported the editable ``hopper``).

``python -m tests.support.imports`` runs the contracts from the command line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"


def mirror_packages(dest: Path, repo: Path = REPO) -> Path:
    """Copy every package's ``.py`` files to ``dest/hopper/...`` as ``repo``'s pyproject maps them; returns ``dest``."""
    package_dir: dict[str, str] = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for name, folder in package_dir.items():
        target = dest.joinpath(*name.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for source in (repo / folder).glob("*.py"):
            shutil.copy2(source, target / source.name)
    return dest


def _run(mirror: Path, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(mirror)}
    return subprocess.run([sys.executable, "-c", code], cwd=mirror, env=env, capture_output=True, text=True,
                          timeout=300)


def lint_imports(mirror: Path) -> subprocess.CompletedProcess:
    """Check pyproject's ``[tool.importlinter]`` contracts; returncode 0 when all are kept."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(PYPROJECT)!r}, no_cache=True, no_logo=True))")
    return _run(mirror, code)


def import_edges(mirror: Path) -> list[tuple[str, str]]:
    """Every (importer, imported) pair between ``hopper.*`` modules, lazy imports included.

    Imports under ``if TYPE_CHECKING:`` are left out: they never run, so they cannot form a cycle
    at import time.
    """
    code = ("import json, grimp; g = grimp.build_graph('hopper', exclude_type_checking_imports=True, cache_dir=None); "
            "print(json.dumps(sorted([m, i] for m in g.modules for i in g.find_modules_directly_imported_by(m))))")
    proc = _run(mirror, code)
    if proc.returncode != 0:
        raise RuntimeError(f"grimp could not build the import graph:\n{proc.stderr}")
    return [tuple(edge) for edge in json.loads(proc.stdout)]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = lint_imports(mirror_packages(Path(tmp)))
    sys.stdout.write(result.stdout + result.stderr)
    sys.exit(result.returncode)
