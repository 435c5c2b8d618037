"""The database goes away mid-run: the scheduler backs off, keeps finished work, and carries on."""

import time
from collections import Counter

import pytest
from sqlalchemy import select

from hopper.engine.store import MetricRow, SubEpochRow
from tests.support.postgres import start_postgres
from tests.support.running import RunningScheduler

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_postgres_outage_is_waited_out(tmp_path):
    from hopper.app import open_services
    from hopper.engine.demo import ensure_digits
    from tests.conftest import make_settings

    server = start_postgres()
    try:
        settings = make_settings(tmp_path / "home", database_url=server.create_database("outage"))
        services = open_services(settings, check_schema=False)
        services.store.upgrade()
        store = services.store
        ensure_digits(services)
        workload = services.launch_workload({"name": "outage", "model": "mlp", "dataset": "digits",
                                             "max_epochs": 4, "space": {"lr": {"type": "choice",
                                                                               "values": [0.003, 0.01]}}})
        with RunningScheduler(services) as running:
            running.wait_for(lambda: any(c.epochs_done >= 1 for c in services.list_configs(workload.id)),
                             what="a first epoch")
            server.pause()
            time.sleep(4)  # workers finish sub-epochs while the store is down
            assert running.thread.is_alive() and running.error is None
            server.resume()
            running.wait_for(lambda: services.get_workload(workload.id).status == "done", 300,
                             "the workload after the outage")
        configs = services.list_configs(workload.id)
        assert all(c.status == "done" and c.epochs_done == 4 and c.error is None for c in configs)
        with store.session() as s:
            assert set(Counter((m.config_id, m.epoch, m.name) for m in s.scalars(select(MetricRow))).values()) == {1}
            assert not list(s.scalars(select(SubEpochRow).where(SubEpochRow.outcome == "running")))
        store.dispose()
    finally:
        server.stop()
