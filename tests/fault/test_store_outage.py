"""The database goes away mid-run: the scheduler backs off, keeps finished work, and carries on.

Observed, not inferred from the end state: the sub-epochs that finish while the store is down are held in the
scheduler's memory (``Scheduler.buffered``) and committed once it is back, and the retries are spaced by a delay
that doubles from the poll interval (the scheduler's own log records, with their timestamps).
"""

import logging
from collections import Counter

import pytest
from sqlalchemy import select

from hopper.engine.store import MetricRow, SubEpochRow
from tests.support.postgres import start_postgres
from tests.support.running import RunningScheduler

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

POLL = 0.05  # make_settings' poll interval: the first retry delay


class _Retries(logging.Handler):
    """Collects the scheduler's "store unavailable; retrying in D s" records as (time, D)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.retries: list[tuple[float, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("config store unavailable"):
            self.retries.append((record.created, float(record.args[1])))


def test_postgres_outage_is_waited_out(tmp_path):
    from hopper.app import open_services
    from hopper.engine.demo import ensure_digits
    from tests.conftest import make_settings

    server = start_postgres()
    handler = _Retries()
    scheduler_log = logging.getLogger("hopper.mop_scheduler")
    scheduler_log.addHandler(handler)
    try:
        settings = make_settings(tmp_path / "home", database_url=server.create_database("outage"))
        assert settings.poll_interval == POLL
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
            # workers finish their sub-epochs while the store is down: the results wait in memory
            buffered = running.wait_for(lambda: running.scheduler.buffered, 120,
                                        "a finished sub-epoch to be held while the store is down")
            running.wait_for(lambda: len(handler.retries) >= 5, 120, "five retries")
            assert running.thread.is_alive() and running.error is None
            server.resume()
            running.wait_for(lambda: services.get_workload(workload.id).status == "done", 300,
                             "the workload after the outage")
        configs = services.list_configs(workload.id)
        assert all(c.status == "done" and c.epochs_done == 4 and c.error is None for c in configs)
        with store.session() as s:
            assert set(Counter((m.config_id, m.epoch, m.name) for m in s.scalars(select(MetricRow))).values()) == {1}
            assert not list(s.scalars(select(SubEpochRow).where(SubEpochRow.outcome == "running")))
            # what was held during the outage was committed afterwards, as it was: nothing lost, nothing re-run
            held = list(s.scalars(select(SubEpochRow).where(SubEpochRow.id.in_(buffered))))
            assert len(held) == len(buffered) and all(x.outcome == "ok" for x in held), [x.outcome for x in held]
        # the back-off: the first retries wait 0.05, 0.1, 0.2, 0.4, 0.8 s (doubling, capped at 30 s), and each
        # retry comes no sooner than the delay announced before it
        delays = [d for _, d in handler.retries[:5]]
        assert delays == pytest.approx([POLL * 2 ** k for k in range(5)]), delays
        for (at, delay), (next_at, _) in zip(handler.retries[:5], handler.retries[1:6], strict=False):
            assert next_at - at >= delay * 0.95, (at, delay, next_at)
        assert all(d <= 30.0 for _, d in handler.retries)
        store.dispose()
    finally:
        scheduler_log.removeHandler(handler)
        server.stop()
