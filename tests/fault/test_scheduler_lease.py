"""One scheduler per store: a second `hopper scheduler` is refused naming the holder; a kill -9'd holder is
replaced; a scheduler that loses its lease stops dispatching. The MOP invariants hold across a takeover."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import select

from hopper.engine.errors import LeaseHeld
from hopper.engine.store import SubEpochRow
from hopper.mop_scheduler import Scheduler
from tests.conftest import make_settings

LEASE = 3.0


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _env(settings, **extra):
    return {**os.environ, "HOPPER_HOME": str(settings.home), "HOPPER_DATABASE_URL": settings.database_url,
            "HOPPER_DATA_ROOTS": str(settings.data_roots[0]), "HOPPER_ARTIFACT_DIR": str(settings.artifact_dir),
            "HOPPER_POLL_INTERVAL": "0.05", "HOPPER_SCHEDULER_LEASE_SECONDS": str(LEASE), **extra}


def _launch(services, epochs=2):
    return services.launch_workload({
        "name": "lease", "model": "mlp", "dataset": "digits", "max_epochs": epochs,
        "space": {"lr": {"type": "choice", "values": [0.003, 0.01]}, "units": {"type": "choice", "values": [16, 32]}}})


def _running_sub_epoch(services):
    with services.store.session() as s:
        return s.scalar(select(SubEpochRow.id).where(SubEpochRow.outcome == "running").limit(1))


def _assert_mop_invariants(services, workload, epochs):
    configs = services.list_configs(workload.id)
    assert all(c.status == "done" and c.epochs_done == epochs for c in configs)
    with services.store.session() as s:
        log = list(s.scalars(select(SubEpochRow).order_by(SubEpochRow.id)))
    visits = Counter((x.config_id, x.epoch, x.partition) for x in log if x.outcome == "ok")
    assert set(visits.values()) == {1}, f"a (config, epoch, partition) was committed twice: {visits}"
    assert len(visits) == len(configs) * epochs * 2
    for config in configs:
        chain = [x for x in log if x.config_id == config.id and x.outcome == "ok"]
        for previous, current in zip(chain, chain[1:], strict=False):
            assert current.input_checkpoint_id == previous.output_checkpoint_id, "forked checkpoint chain"


def test_lease_compare_and_set_renew_release_and_expiry(services):
    lease = services.store.lease
    assert lease.holder() is None
    taken, info = lease.acquire("a" * 32, "node-a", 111, 0.5)
    assert taken and info.holder == "a" * 32 and info.pid == 111
    taken, info = lease.acquire("b" * 32, "node-b", 222, 0.5)
    assert not taken and info.host == "node-a" and info.pid == 111, "a live lease must not be taken"
    assert lease.renew("a" * 32, 0.5) and not lease.renew("b" * 32, 0.5)
    _wait(lambda: lease.acquire("b" * 32, "node-b", 222, 30)[0], 5, "the expired lease to be taken over")
    assert not lease.renew("a" * 32, 0.5), "the old holder's renewal must fail once taken over"
    assert not lease.release("a" * 32) and lease.holder().host == "node-b"
    assert lease.release("b" * 32) and lease.holder() is None


def test_second_scheduler_is_refused_naming_the_holder(services, digits, settings):
    _launch(services, epochs=3)
    env = _env(settings)
    first = subprocess.Popen([sys.executable, "-m", "hopper.cli", "scheduler"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        held = _wait(lambda: services.store.lease.holder(), 60, "the first scheduler to take the lease")
        assert held.pid == first.pid and held.host == socket.gethostname()
        second = subprocess.run([sys.executable, "-m", "hopper.cli", "scheduler"], env=env, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == LeaseHeld.exit_code == 10, second.stderr
        message = " ".join(second.stderr.split())
        assert f"pid {first.pid}" in message and socket.gethostname() in message and "since" in message, message
        assert len(second.stderr.strip().splitlines()) <= 2, "the refusal is a one-line message"
        assert first.poll() is None, "the holder keeps running"
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(60)
    # A clean stop gives the lease back at once.
    assert services.store.lease.holder() is None


def test_kill_9_holder_is_replaced_and_each_visit_is_committed_once(services, digits, settings):
    epochs = 2
    workload = _launch(services, epochs=epochs)
    env = _env(settings)
    command = [sys.executable, "-m", "hopper.cli", "scheduler"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(lambda: _running_sub_epoch(services), 120, "a sub-epoch to start")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    killed_at = time.monotonic()
    final = subprocess.Popen([*command, "--until-done", "--timeout", "300"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    _wait(lambda: (h := services.store.lease.holder()) is not None and h.pid == final.pid, LEASE + 30,
          "the new scheduler to take the lease over")
    assert time.monotonic() - killed_at < LEASE + 30
    out, err = final.communicate(timeout=400)
    assert final.returncode == 0, err[-2000:]
    assert services.get_workload(workload.id).status == "done"
    _assert_mop_invariants(services, workload, epochs)


def test_a_holder_on_another_host_is_replaced_only_after_its_lease_expires(services, digits, settings):
    workload = _launch(services, epochs=1)
    services.store.lease.acquire("c" * 32, "another-host", 4242, LEASE)
    env = _env(settings)
    refused = subprocess.run([sys.executable, "-m", "hopper.cli", "scheduler", "--until-done"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 10 and "another-host pid 4242" in " ".join(refused.stderr.split())
    assert services.get_workload(workload.id).status == "running"
    from hopper.engine.store import utcnow

    _wait(lambda: services.store.lease.holder().expires_at < utcnow(), LEASE + 10,
          "the foreign lease to run out (nothing renews it)")
    done = subprocess.run([sys.executable, "-m", "hopper.cli", "scheduler", "--until-done", "--timeout", "300"],
                          env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_mop_invariants(services, workload, 1)


def test_a_scheduler_that_loses_its_lease_stops(services, digits, tmp_path):
    """Another scheduler took the lease while this one could not renew it: it stops instead of dispatching."""
    settings = services.settings.with_overrides(scheduler_lease_seconds=0.6)
    from hopper.app import open_services

    mine = open_services(settings)
    scheduler = Scheduler(mine)
    errors: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        try:
            scheduler.run(stop_event=stop)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    _wait(lambda: services.store.lease.holder(), 30, "the lease")
    # Simulate a takeover after an outage: the row now names someone else.
    from hopper.engine.store.models import SchedulerLeaseRow

    with services.store.session() as s:
        s.get(SchedulerLeaseRow, 1).holder = "d" * 32
    thread.join(30)
    stop.set()
    assert not thread.is_alive() and errors and isinstance(errors[0], LeaseHeld), errors
    assert services.store.lease.holder().holder == "d" * 32, "the loser must not release the winner's lease"
    mine.store.dispose()


def test_two_in_process_schedulers_on_different_stores_both_run(tmp_path):
    from hopper.app import open_services

    stores = []
    for name in ("one", "two"):
        s = open_services(make_settings(tmp_path / name), check_schema=False)
        s.store.upgrade()
        stores.append(s)
    a, b = Scheduler(stores[0]), Scheduler(stores[1])
    a.acquire_lease()
    b.acquire_lease()  # another store: no conflict
    with pytest.raises(LeaseHeld):
        Scheduler(stores[0]).acquire_lease()
    for s in stores:
        s.store.dispose()
