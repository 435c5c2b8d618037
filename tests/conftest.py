"""Shared fixtures. In CI (CI=true) a skipped test fails the run: every marker must really run."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

# Before anything imports hopper.cli or builds a Flask app: every process of this session (this one, `hopper`
# subprocesses, servers) appends the commands and API requests it runs to this file (hopper/inventory.py).
# A pytest started inside a test inherits the variable and appends to its parent's file.
if not os.environ.get("HOPPER_TEST_INVENTORY"):
    os.environ["HOPPER_TEST_INVENTORY"] = str(Path(tempfile.mkdtemp(prefix="hopper-inventory-")) / "inventory.txt")
# Workloads the suite launches without a plan run MOP, in this process and in the hopper processes it starts
# (their training tests assert MOP's layout); execution plans are tested where they ask for them (test_plans.py).
os.environ.setdefault("HOPPER_DEFAULT_PLAN", "mop")

import pytest  # noqa: E402

from hopper.app import open_services  # noqa: E402
from hopper.engine.services import Services  # noqa: E402
from hopper.engine.store import Store  # noqa: E402
from hopper.settings import Settings  # noqa: E402
from tests.support.edge import edge_server  # noqa: E402, F401 - session fixture for tests/edge and tests/e2e
from tests.support.postgres import start_postgres  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# A full run (`make test` sets HOPPER_INVENTORY_CHECK=1; a partial run would list everything it left out)
# fails when a CLI command or an API route was exercised by no test.
INVENTORY_CHECK = os.environ.get("HOPPER_INVENTORY_CHECK", "") == "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    Path(os.environ["HOPPER_TEST_INVENTORY"]).touch()


# Roughly the seconds each of the slowest groups took (summed from --durations=0 of a CI=true make test run on
# 2026-11-26 at 14:00, on this 2-core machine with nothing else running), for the order below;
# a group not named here counts as its number of tests, so the table only needs the outliers.
GROUP_SECONDS = {
    "spark": 510, "compat/test_corpus.py": 245, "edge": 240, "integration/test_cli_more.py": 200,
    "integration/test_steering.py": 150, "integration/test_private_training.py": 140,
    "migrations/test_upgrade_with_data.py": 90, "integration/test_cli.py": 120, "bench:mop_spark.py": 60,
    "unit/test_roster.py": 100, "bench:mop_vs_baselines.py": 50, "security/test_api_fuzz.py": 55,
    "bench:steering.py": 50, "integration/test_mop.py": 50, "integration/test_elastic.py": 30,
    "bench:sharing.py": 25, "bench:edge_profile.py": 15, "bench:privacy.py": 20, "bench:api_vs_optuna_dashboard.py": 20,
    "bench:hop_overhead.py": 12,
}


def xdist_group_of(nodeid: str) -> str:
    """A file's tests stay together, so its module fixtures (a server, a trained workload) start once; the Spark
    files share one group (one cluster), and so do the edge and browser files (one edge server); each benchmark
    smoke is an independent script, minutes long, so each is its own group."""
    path, _, test = nodeid.partition("::")
    parts = Path(path).parts[1:] or (path,)  # below tests/
    if parts == ("test_bench_smoke.py",):
        return f"bench:{test[test.index('[') + 1:-1]}"
    return {"spark": "spark", "edge": "edge", "e2e": "edge"}.get(parts[0], "/".join(parts))


def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN201 - xdist's scheduler protocol
    """``--dist loadgroup`` with the groups above. pytest-xdist's own xdist_group marks no longer reach its
    scheduler under pytest 9.2 (it renames ``item._nodeid``, which pytest 9.2 no longer reads), so every test was
    its own group and a module's fixtures started again on each worker that ran one of its tests; this scheduler
    reads the group from the node id instead."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    # Hand the groups out in collection order (pytest_collection_modifyitems puts the slowest first), not
    # ordered by their number of tests, which put the one-test benchmark smokes, minutes each, last.
    config.option.loadscopereorder = False
    return FileGroupScheduling(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, the slowest groups first: the scheduler hands groups out one at a time to whichever
    worker is free, so a long group started last would keep one worker busy while the other idles."""
    if not hasattr(config, "workerinput"):
        return  # a run in one process: the order only matters to the xdist scheduler
    sizes: dict[str, int] = {}
    for item in items:
        sizes[xdist_group_of(item.nodeid)] = sizes.get(xdist_group_of(item.nodeid), 0) + 1
    # sort is stable: within a group, and among groups of equal weight, collection order stays
    items.sort(key=lambda item: -GROUP_SECONDS.get(xdist_group_of(item.nodeid), sizes[xdist_group_of(item.nodeid)]))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller sees every worker's reports and judges the whole run
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} skipped test(s) count as failures", red=True)
        session.exitstatus = 1
    if INVENTORY_CHECK and reporter:
        missing = unexercised(Path(os.environ["HOPPER_TEST_INVENTORY"]))
        if missing:
            reporter.write_line(f"inventory: {len(missing)} command(s)/route(s) exercised by no test "
                                "(a route counts once it answered with a status other than 401/403 or 5xx):",
                                red=True)
            for item in missing:
                reporter.write_line(f"  {item}", red=True)
            session.exitstatus = 1


def unexercised(recording: Path) -> list[str]:
    """The CLI commands and API routes (``METHOD rule``) that RECORDING has no successful trace of."""
    from hopper.cli import main
    from hopper.inventory import api_routes, cli_commands
    from hopper.rest import create_app

    seen: set[str] = set()
    for line in recording.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["cli"]:
            seen.add(line.strip())
        elif parts[:1] == ["api"] and len(parts) == 4:
            status = int(parts[3])
            if status not in (401, 403) and status < 500:
                seen.add(f"{parts[1]} {parts[2]}")
    with tempfile.TemporaryDirectory() as home:
        settings = make_settings(Path(home))
        store = Store(settings.database_url, check_schema=False)
        try:
            routes = api_routes(create_app(Services(store, settings), token=None, secret_key="inventory"))
        finally:
            store.dispose()
    return sorted((cli_commands(main) | routes) - seen)


@pytest.fixture(scope="session")
def postgres_server():
    server = start_postgres()
    yield server
    server.stop()


def make_settings(home: Path, database_url: str | None = None, workers: int = 2, **extra) -> Settings:
    # The suite's training tests assert MOP's layout (a sub-epoch per partition); execution plans are tested
    # where they ask for them (tests/*/test_plans.py).
    extra.setdefault("default_plan", os.environ.get("HOPPER_DEFAULT_PLAN", "mop"))
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    return Settings(home=home, database_url=database_url or f"sqlite:///{home / 'hopper.db'}",
                    data_roots=(data.resolve(),), artifact_dir=(home / "artifacts").resolve(), workers=workers,
                    poll_interval=0.05, **extra)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def migrated_store(store_url: str) -> Store:
    store = Store(store_url, check_schema=False)
    store.upgrade()
    yield store
    store.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "home")


@pytest.fixture
def services(settings: Settings) -> Services:
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    store = services.store
    yield services
    store.dispose()


@pytest.fixture
def digits(services: Services):
    from hopper.engine.demo import ensure_digits

    ensure_digits(services)
    return services.get_dataset("digits")
