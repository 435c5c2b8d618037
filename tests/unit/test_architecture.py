"""The import graph keeps its shape: pyproject's import contracts hold and no module imports itself back.

Both checks read the source (grimp parses imports, lazy ones inside functions included); nothing is
imported, so they are quick and catch a layering slip before a worker or the web process pays for it.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from tests.support.imports import import_edges, lint_imports, mirror_packages


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mirror_packages(tmp_path_factory.mktemp("imports"))


def test_import_contracts_are_kept(mirror: Path) -> None:
    result = lint_imports(mirror)
    assert result.returncode == 0, f"an import contract in pyproject.toml is broken:\n{result.stdout}\n{result.stderr}"
    # The contracts did run: an empty config would also exit 0.
    assert "Contracts: 5 kept, 0 broken." in result.stdout, result.stdout


def _cycles(edges: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """One cycle per strongly connected component that has one (self-imports included)."""
    graph = nx.DiGraph(edges)
    found = []
    for component in nx.strongly_connected_components(graph):
        sub = graph.subgraph(component)
        if len(component) > 1 or any(sub.has_edge(n, n) for n in component):
            found.append(list(nx.find_cycle(sub)))
    return found


def test_no_import_cycles(mirror: Path) -> None:
    edges = import_edges(mirror)
    modules = {m for edge in edges for m in edge}
    # The graph covers the whole tree, not just hopper/ on disk (the mirror maps engine/ etc. in).
    assert {"hopper.engine.services", "hopper.mop_scheduler.worker.runner", "hopper.roster.vision",
            "hopper.rest.routes", "hopper.app"} <= modules
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(
        " -> ".join([a for a, _ in cycle] + [cycle[0][0]]) for cycle in cycles)


def test_cycle_finder_reports_a_cycle() -> None:
    # The check above passes on an empty list too; make sure it would see a loop.
    cycles = _cycles([("hopper.a", "hopper.b"), ("hopper.b", "hopper.c"), ("hopper.c", "hopper.a"),
                      ("hopper.c", "hopper.d"), ("hopper.e", "hopper.e")])
    assert sorted(len(c) for c in cycles) == [1, 3]


def test_the_sandbox_knows_nothing_of_hoppers_layout(mirror: Path) -> None:
    """The guard gets its allowed roots from its caller; it imports no Hopper package but the errors."""
    edges = import_edges(mirror)
    sandbox = "hopper.mop_scheduler.worker.sandbox"
    assert (("hopper.mop_scheduler.worker.checkpoints", sandbox) in edges), "the graph lost the sandbox module"
    imported = {b for a, b in edges if a == sandbox}
    assert imported <= {"hopper.engine.errors"}, imported


def test_the_confinement_knows_nothing_of_hoppers_layout(mirror: Path) -> None:
    """The OS layers get every path from their caller (a plan), like the guard: no Hopper import at all."""
    edges = import_edges(mirror)
    confine = "hopper.mop_scheduler.worker.confine"
    assert (("hopper.mop_scheduler.worker.validate", confine) in edges), "the graph lost the confine module"
    assert not {b for a, b in edges if a == confine}
