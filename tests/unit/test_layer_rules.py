"""Rules of the code's shape that import contracts cannot express: no SQL outside the store, and statuses
spelled only in ``hopper.engine.status``."""

from __future__ import annotations

import ast
from pathlib import Path

from hopper.engine import status as status_module

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_DIRS = ("engine", "mop_scheduler", "rest", "webui", "roster", "edge_deploy", "hopper")
STATUS_VALUES = {m.value for enum in (status_module.ConfigStatus, status_module.WorkloadStatus,
                                      status_module.SubEpochOutcome, status_module.JobStatus,
                                      status_module.DeploymentStatus, status_module.DeviceStatus) for m in enum}
STATUS_NAMES = {"status", "outcome", "target", "state"}
SQL_NAMES = {"select", "update", "insert", "delete", "text"}


def _product_files(exclude: tuple[str, ...] = ()) -> list[Path]:
    files = []
    for folder in PRODUCT_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if not any(rel.startswith(e) for e in exclude):
                files.append(path)
    assert len(files) > 30, "the scan found too few files to mean anything"
    return files


def _mentions_status(node: ast.AST) -> bool:
    """A name, attribute or subscript that holds a status (``row.status``, ``job["status"]``, ``outcome``)."""
    if isinstance(node, ast.Name):
        return node.id in STATUS_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in STATUS_NAMES
    if isinstance(node, ast.Subscript):
        key = node.slice
        return isinstance(key, ast.Constant) and key.value in STATUS_NAMES
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value in STATUS_NAMES
    return False


def _status_literals(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in STATUS_VALUES:
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [v for elt in node.elts for v in _status_literals(elt)]
    return []


def status_literal_sites(tree: ast.AST) -> list[tuple[int, str]]:
    """Where a status is compared with, assigned or passed as a bare string."""
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_mentions_status(s) for s in sides):
                sites += [(node.lineno, v) for s in sides for v in _status_literals(s)]
        elif isinstance(node, ast.Assign):
            if any(_mentions_status(t) for t in node.targets):
                sites += [(node.lineno, v) for v in _status_literals(node.value)]
            for target in node.targets:  # a, b.status = "failed", ...
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for t, v in zip(target.elts, node.value.elts, strict=False):
                        if _mentions_status(t):
                            sites += [(node.lineno, s) for s in _status_literals(v)]
        elif isinstance(node, ast.keyword) and node.arg in STATUS_NAMES:
            sites += [(node.value.lineno, v) for v in _status_literals(node.value)]
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value in STATUS_NAMES:
                    # {"status": "ok"} is a health answer (its own vocabulary), not a sub-epoch outcome
                    sites += [(value.lineno, v) for v in _status_literals(value) if v != "ok"]
    return sites


def test_the_status_scan_finds_what_it_should():
    code = ('row.status = "failed"\nif job["status"] == "queued": pass\nf(status="done")\n'
            'x = {"status": "online"}\nh = {"status": "ok"}\nif outcome in ("ok", "lost"): pass\na, row.status = 1, "paused"\n')
    assert sorted(v for _, v in status_literal_sites(ast.parse(code))) == sorted([
        "failed", "queued", "done", "online", "ok", "lost", "paused"])


def test_no_status_string_literal_outside_the_enum_module():
    offenders = []
    for path in _product_files(exclude=("engine/status.py",)):
        for line, value in status_literal_sites(ast.parse(path.read_text(), str(path))):
            offenders.append(f"{path.relative_to(ROOT)}:{line}: {value!r}")
    assert not offenders, "spell statuses with hopper.engine.status members:\n" + "\n".join(offenders)


def test_no_sql_outside_the_store():
    offenders = []
    for path in _product_files(exclude=("engine/store/", "migrations/")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sqlalchemy":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: from {node.module} import ...")
            elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "sqlalchemy" for a in node.names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: import sqlalchemy")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "session" and isinstance(node.func.value, ast.Attribute)
                  and node.func.value.attr == "store"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: store.session()")
    assert not offenders, "SQL belongs behind a named method in engine/store:\n" + "\n".join(offenders)
