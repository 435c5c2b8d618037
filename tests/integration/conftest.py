"""The integration suite runs against SQLite and against PostgreSQL (a server the fixture starts)."""

import uuid

import pytest

from tests.conftest import make_settings


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request, tmp_path):
    if request.param == "sqlite":
        return make_settings(tmp_path / "home")
    server = request.getfixturevalue("postgres_server")
    return make_settings(tmp_path / "home", database_url=server.create_database(f"i_{uuid.uuid4().hex[:12]}"))
