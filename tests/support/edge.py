"""A trained digits workload with three TFLite exports, served (UI + REST) over real HTTP by waitress.

The ``edge_server`` fixture is session-wide (tests/conftest.py imports it): the edge and browser tests share it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
import requests

from hopper.app import open_services
from hopper.engine.entities import ExportInfo
from hopper.engine.services import Services
from tests.support.postgres import free_port

TOKEN = "edge-token"


@dataclass
class EdgeServer:
    services: Services
    base: str
    token: str
    workload_id: int
    config_ids: list
    exports: list[ExportInfo]  # config A float32 + int8, config B float32

    def get(self, path: str, **params) -> object:
        r = requests.get(self.base + "/api/v1" + path, params=params, timeout=30,
                         headers={"Authorization": f"Bearer {self.token}"})
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, path: str, body: dict | None = None, status: int | None = None) -> object:
        r = requests.post(self.base + "/api/v1" + path, json=body or {}, timeout=60,
                          headers={"Authorization": f"Bearer {self.token}"})
        if status is not None:
            assert r.status_code == status, r.text
        return r.json()

    def wait(self, predicate, timeout: float = 120, what: str = "condition"):  # noqa: ANN001, ANN201
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="session")
def edge_server(tmp_path_factory):
    """Two mlp configs trained 2 epochs on digits; exports: config A float32 + int8, config B float32."""
    from waitress import create_server

    from hopper.edge_deploy.export import export_config
    from hopper.engine.demo import ensure_digits
    from hopper.webui import create_dash
    from tests.conftest import make_settings
    from tests.support.running import RunningScheduler

    settings = make_settings(tmp_path_factory.mktemp("edge") / "home", edge_lease_seconds=2.0,
                             edge_max_attempts=3, edge_offline_seconds=3.0)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    store = services.store
    ensure_digits(services)
    w = services.launch_workload({"name": "edge", "model": "mlp", "dataset": "digits", "max_epochs": 2,
                                  "space": {"lr": {"type": "choice", "values": [0.003, 0.01]}, "units": 32}})
    config_ids = [c.id for c in services.list_configs(w.id)]
    with RunningScheduler(services) as running:
        running.wait_for(lambda: services.get_workload(w.id).status == "done", 240, "the workload to finish")
    exports = export_config(services, config_ids[0]) + export_config(services, config_ids[1], ("float32",))
    app = create_dash(services, token=TOKEN, secret_key="e" * 32).server  # the UI and the REST API
    port = free_port()
    server = create_server(app, host="127.0.0.1", port=port, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield EdgeServer(services, f"http://127.0.0.1:{port}", TOKEN, w.id, config_ids, exports)
    server.close()
    store.dispose()
