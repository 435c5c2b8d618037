"""The store contract, run against SQLite and PostgreSQL (started by the fixture)."""

import re
import threading

import pytest
from sqlalchemy import event, select

from hopper.engine.errors import Conflict, SchemaOutOfDate
from hopper.engine.status import ConfigStatus, WorkloadStatus
from hopper.engine.store import (
    CheckpointRow,
    ConfigRow,
    EventRow,
    MetricRow,
    Store,
    SubEpochRow,
    WorkloadRow,
)
from tests.support.seed import seed_workload


def _seed(store: Store) -> int:
    with store.session() as s:
        wl = seed_workload(s)
        cfg = ConfigRow(workload_id=wl.id, hparams={"lr": 0.1})
        s.add(cfg)
        s.flush()
        return cfg.id


def test_schema_check_demands_upgrade(store_url):
    store = Store(store_url, check_schema=False)
    with pytest.raises(SchemaOutOfDate) as info:
        Store(store_url)
    assert "hopper db upgrade" in info.value.message
    store.upgrade("0001")  # an older Hopper's schema
    with pytest.raises(SchemaOutOfDate) as info:
        Store(store_url)
    assert "is at revision 0001" in info.value.message and "hopper db upgrade" in info.value.message
    store.upgrade()
    Store(store_url).dispose()
    store.dispose()


def test_migrations_round_trip(store_url):
    store = Store(store_url, check_schema=False)
    store.upgrade()
    _seed(store)
    store.downgrade("base")
    assert store.current_revision() is None
    store.upgrade()
    assert store.current_revision() == store.head_revision()
    with store.session() as s:
        assert s.scalar(select(ConfigRow).limit(1)) is None  # empty again after the round trip
    store.dispose()


def test_rows_round_trip_with_json_and_cyclic_keys(migrated_store):
    config_id = _seed(migrated_store)
    with migrated_store.session() as s:
        ck = CheckpointRow(config_id=config_id, epoch=0, seq=1, path="/c", sha256="0" * 64, bytes=10, epoch_end=True)
        s.add(ck)
        s.flush()
        cfg = s.get(ConfigRow, config_id)
        cfg.current_checkpoint_id = ck.id
        s.add(SubEpochRow(config_id=config_id, epoch=0, partition=1, worker="local-1", outcome="ok",
                          output_checkpoint_id=ck.id))
        s.add(EventRow(actor="me", action="stop_config", object_type="config", object_id=config_id,
                       before={"status": "running"}, after={"status": "stopped"}))
    with migrated_store.session() as s:
        cfg = s.get(ConfigRow, config_id)
        assert cfg.hparams == {"lr": 0.1} and cfg.current_checkpoint_id is not None
        assert s.scalar(select(EventRow)).after == {"status": "stopped"}


def test_metric_rows_are_unique_per_epoch_and_name(migrated_store):
    config_id = _seed(migrated_store)
    with migrated_store.session() as s:
        s.add(MetricRow(config_id=config_id, epoch=0, name="val_accuracy", value=0.5))
    with pytest.raises(Conflict):
        with migrated_store.session() as s:
            s.add(MetricRow(config_id=config_id, epoch=0, name="val_accuracy", value=0.6))
    with migrated_store.session() as s:
        assert [m.value for m in s.scalars(select(MetricRow))] == [0.5]


def test_concurrent_writers_get_a_conflict_not_a_lost_update(migrated_store):
    config_id = _seed(migrated_store)
    both_loaded = threading.Barrier(2)
    first_committed = threading.Event()
    outcomes: dict[str, object] = {}

    def writer(name: str, priority: int) -> None:
        try:
            with migrated_store.session() as s:
                row = s.get(ConfigRow, config_id)
                both_loaded.wait(timeout=60)
                row.priority = priority
                if name == "second":
                    # commit only once the first writer has (waited for, not slept on: a loaded machine)
                    assert first_committed.wait(timeout=60), "the first writer never committed"
            outcomes[name] = "ok"
        except Conflict as exc:
            outcomes[name] = exc
        finally:
            if name == "first":
                first_committed.set()

    threads = [threading.Thread(target=writer, args=("first", 5)), threading.Thread(target=writer, args=("second", 9))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes["first"] == "ok"
    assert isinstance(outcomes["second"], Conflict)
    with migrated_store.session() as s:
        row = s.get(ConfigRow, config_id)
        assert row.priority == 5 and row.version == 2


# What the finisher runs, as the hook below tells its statements apart: its look for runnable configs, and the
# workload lock it takes before it looks again and writes (FOR UPDATE on PostgreSQL, a no-op write on SQLite).
_LOOKS_FOR_CONFIGS = re.compile(rf"FROM {ConfigRow.__tablename__}\b")
_LOCKS_THE_WORKLOAD = re.compile(rf"FOR UPDATE|UPDATE {WorkloadRow.__tablename__} SET id = id")


@pytest.mark.parametrize("person_comes", ["after the finisher looked", "after the finisher locked"])
def test_a_config_added_while_the_scheduler_finishes_its_workload_is_not_stranded(migrated_store, person_comes):
    """The scheduler finishes a workload whose configs are all done just as a person adds (clones) one: the new
    config must not end up queued in a done workload, where nothing ever runs it (CI saw a clone wait 180 s on
    PostgreSQL; SQLite's driver reads outside a transaction until the first write, so it had the same race).

    A hook on the real engine holds the finisher at one point while the person's add runs. After its first look
    the add goes through and the finisher must see it; after its lock the add must wait, then reopen the workload
    the finisher marked done."""
    with migrated_store.session() as s:
        workload_id = seed_workload(s).id
        s.add(ConfigRow(workload_id=workload_id, hparams={"lr": 0.1}, status=ConfigStatus.DONE, epochs_done=2))
    hold_at = _LOOKS_FOR_CONFIGS if person_comes == "after the finisher looked" else _LOCKS_THE_WORKLOAD
    finisher_held, added = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def hold_the_finisher(conn, cursor, statement, parameters, context, executemany):
        if threading.current_thread().name == "finisher" and not finisher_held.is_set() and hold_at.search(statement):
            finisher_held.set()
            outcomes["add finished while the finisher was held"] = added.wait(timeout=3)

    def finisher() -> None:
        outcomes["finished"] = migrated_store.workloads.finish_idle([workload_id])

    def person() -> None:
        assert finisher_held.wait(timeout=30), f"the finisher never reached the point {person_comes!r} names"
        outcomes["added"] = migrated_store.configs.add(workload_id, {"lr": 0.2}, priority=0, origin="user",
                                                       actor="ada", action="add_config")
        added.set()

    event.listen(migrated_store.engine, "after_cursor_execute", hold_the_finisher)
    try:
        threads = [threading.Thread(target=finisher, name="finisher"), threading.Thread(target=person)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        event.remove(migrated_store.engine, "after_cursor_execute", hold_the_finisher)
    assert outcomes["added"].status == ConfigStatus.QUEUED, outcomes
    with migrated_store.session() as s:
        status = s.get(WorkloadRow, workload_id).status
    assert status == WorkloadStatus.RUNNING, f"the added config is stranded in a {status} workload ({outcomes})"
    if person_comes == "after the finisher locked":
        assert outcomes == {**outcomes, "finished": [workload_id], "add finished while the finisher was held": False}
    else:
        assert outcomes == {**outcomes, "finished": [], "add finished while the finisher was held": True}


def test_sqlite_runs_in_wal_mode(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'w.db'}", check_schema=False)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    store.dispose()


def test_a_script_grows_the_space_once_and_all_failed_configs_fail_the_workload(migrated_store):
    store = migrated_store
    config_id = _seed(store)
    with store.session() as s:
        config = s.get(ConfigRow, config_id)
        workload_id = config.workload_id
        s.add(ConfigRow(workload_id=workload_id, hparams={"lr": 0.2}, status="failed", error="ValueError: bad\ntb"))
        config.status, config.error = "failed", "ValueError: bad\nanother traceback"
    batch = {"batch_size": {"type": "choice", "values": [16, 32]}}
    assert store.workloads.grow_space(config_id, {**batch, "lr": {"type": "fixed", "value": 9}}) == ["batch_size"]
    assert store.workloads.grow_space(config_id, batch) == []  # a retried commit adds nothing twice
    workload = store.workloads.get(workload_id)
    assert workload.search_space == {"lr": 0.1, **batch}
    [event] = store.events.list(object_type="workload", object_id=workload_id)
    assert (event.actor, event.action, event.after["added"]) == ("script", "grow_space", batch)
    assert store.workloads.finish_idle([workload_id]) == [workload_id]
    workload = store.workloads.get(workload_id)
    assert workload.status == "failed"
    assert workload.error == "all 2 configs failed with the same error: ValueError: bad\nanother traceback"
