"""Shared fixtures. In CI (CI=true) a skipped test fails the run: every marker must really run."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from hopper.app import open_services
from hopper.engine.services import Services
from hopper.engine.store import Store
from hopper.settings import Settings
from tests.support.edge import edge_server  # noqa: F401 - session fixture for tests/edge and tests/e2e
from tests.support.postgres import start_postgres

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if IN_CI and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} skipped test(s) count as failures", red=True)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def postgres_server():
    server = start_postgres()
    yield server
    server.stop()


def make_settings(home: Path, database_url: str | None = None, workers: int = 2, **extra) -> Settings:
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
