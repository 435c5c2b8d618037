"""The integration suite runs against SQLite and against PostgreSQL (a server the fixture starts)."""

import uuid

import pytest

from tests.conftest import make_settings

#: For a training test whose store use the PostgreSQL variants of its siblings already cover (the store contract runs
#: whole on both): SQLite only, to keep the suite in its time budget. ``@SQLITE_ONLY`` on the test.
SQLITE_ONLY = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request, tmp_path):
    if request.param == "sqlite":
        return make_settings(tmp_path / "home")
    server = request.getfixturevalue("postgres_server")
    return make_settings(tmp_path / "home", database_url=server.create_database(f"i_{uuid.uuid4().hex[:12]}"))
