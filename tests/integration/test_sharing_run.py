"""Two workloads on two datasets (digits, wine) sharing 2 real local workers, one with a small worker-seconds
budget: the budget stops its workload within the sub-epochs in flight when it ran out, the other finishes,
and the MOP invariants hold per workload (from the sub-epoch log)."""

from collections import Counter

import numpy as np
import pytest

from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

BUDGET_SECONDS = 3.0


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    from sklearn.datasets import load_wine

    from hopper.app import open_services
    from hopper.engine.demo import ensure_digits
    from tests.conftest import make_settings

    services = open_services(make_settings(tmp_path_factory.mktemp("sharing") / "home"), check_schema=False)
    services.store.upgrade()
    ensure_digits(services)
    wine = load_wine()
    path = services.settings.data_roots[0] / "wine.npz"
    np.savez(path, x=((wine.data - wine.data.mean(0)) / wine.data.std(0)).astype(np.float32), y=wine.target)
    services.register_dataset({"name": "wine", "path": str(path)})
    grid = {"lr": {"type": "choice", "values": [0.003, 0.01]}, "units": {"type": "choice", "values": [16, 32]}}
    spent = services.launch_workload({"name": "budgeted", "model": "mlp", "dataset": "digits", "max_epochs": 20,
                                      "space": grid, "budget": {"worker_seconds": BUDGET_SECONDS}})
    other = services.launch_workload({"name": "wine", "model": "mlp", "dataset": "wine", "max_epochs": 1,
                                      "space": {"lr": {"type": "choice", "values": [0.003, 0.01]}, "units": 16}})
    with RunningScheduler(services) as running:
        running.wait_for(lambda: services.get_workload(other.id).status == "done"
                         and services.get_workload(spent.id).status == "budget_spent"
                         and not running.scheduler.backend.in_flight(), 240, "both workloads to end")
    return services, spent.id, other.id


def test_a_spent_budget_stops_its_workload_within_the_sub_epochs_in_flight(shared_run):
    services, spent_id, _ = shared_run
    workload = services.get_workload(spent_id)
    assert workload.status == "budget_spent" and "worker_seconds" in workload.error
    event = next(e for e in services.list_events(limit=200) if e.action == "budget_spent" and e.object_id == spent_id)
    log = services.list_sub_epochs(spent_id)
    assert all(s.outcome != "running" for s in log), "a sub-epoch in flight at the stop did not commit"
    started_after = [s for s in log if s.started_at > event.at]
    assert started_after == [], f"sub-epochs started after the budget was spent: {started_after}"
    in_flight_at_stop = [s for s in log if s.finished_at is not None and s.finished_at > event.at]
    assert len(in_flight_at_stop) <= 2  # at most one per worker
    budget = services.workload_budget(spent_id)
    assert budget.spent and budget.worker_seconds >= BUDGET_SECONDS and budget.remaining["worker_seconds"] == 0.0
    # it was stopped by its budget, not by running out of work
    assert budget.sub_epochs_left > 0 and budget.mean_sub_epoch_seconds > 0


def test_mop_invariants_hold_per_workload_on_two_datasets(shared_run):
    services, spent_id, other_id = shared_run
    for workload_id in (spent_id, other_id):
        ok = [s for s in services.list_sub_epochs(workload_id) if s.outcome == "ok"]
        visits = Counter((s.config_id, s.epoch, s.partition) for s in ok)
        assert set(visits.values()) == {1}, "a config trained twice on a partition in one epoch"
    configs = services.list_configs(other_id)
    assert all(c.status == "done" and c.epochs_done == 1 for c in configs)
    ok = [s for s in services.list_sub_epochs(other_id) if s.outcome == "ok"]
    assert {(s.config_id, s.epoch, s.partition) for s in ok} == {
        (c.id, e, p) for c in configs for e in range(1) for p in (0, 1)}
    # they shared the workers (fair share spreads the first free workers over both), not one after the other
    spent_ok = [s for s in services.list_sub_epochs(spent_id) if s.outcome == "ok"]
    assert min(s.started_at for s in spent_ok) < max(s.finished_at for s in ok)
    assert min(s.started_at for s in ok) < max(s.finished_at for s in spent_ok)
