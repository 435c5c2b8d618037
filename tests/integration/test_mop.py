"""A real MOP run: 4-config grid, 2 local worker processes, 3 epochs on digits.

The MOP invariants are checked from the sub_epoch log, the metric table and the checkpoint files.
"""

from collections import Counter, defaultdict

import pytest
from sqlalchemy import select

from hopper.engine.store import CheckpointRow, MetricRow, SubEpochRow
from hopper.mop_scheduler.worker.checkpoints import file_sha256
from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

EPOCHS = 3


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def grid_run(request, tmp_path_factory):
    from hopper.app import open_services
    from hopper.engine.demo import ensure_digits
    from tests.conftest import make_settings

    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").create_database(f"mop_{tmp_path_factory.getbasetemp().name}")
    settings = make_settings(tmp_path_factory.mktemp("mop") / "home", database_url=url)
    services = open_services(settings, check_schema=False)
    services.store.upgrade()
    ensure_digits(services)
    workload = services.launch_workload({
        "name": "grid", "model": "mlp", "dataset": "digits", "procedure": "grid", "max_epochs": EPOCHS,
        "space": {"lr": {"type": "choice", "values": [0.003, 0.01]}, "units": {"type": "choice", "values": [32, 128]}},
    })
    with RunningScheduler(services) as running:
        running.wait_for(lambda: services.get_workload(workload.id).status == "done", 300, "the grid to finish")
        stats = dict(running.scheduler.stats)
    return services, workload.id, stats


def _log(services, workload_id):
    return sorted(services.list_sub_epochs(workload_id), key=lambda s: s.id)


def test_every_config_visits_every_partition_once_per_epoch(grid_run):
    services, workload_id, _ = grid_run
    configs = services.list_configs(workload_id)
    assert len(configs) == 4 and all(c.status == "done" and c.epochs_done == EPOCHS for c in configs)
    visits = Counter((s.config_id, s.epoch, s.partition) for s in _log(services, workload_id) if s.outcome == "ok")
    assert set(visits.values()) == {1}
    assert set(visits) == {(c.id, e, p) for c in configs for e in range(EPOCHS) for p in (0, 1)}


def test_no_config_trains_on_two_workers_at_once_and_workers_run_one_at_a_time(grid_run):
    services, workload_id, _ = grid_run
    log = [s for s in _log(services, workload_id) if s.outcome == "ok"]
    for key in ("config_id", "worker"):
        groups = defaultdict(list)
        for s in log:
            groups[getattr(s, key)].append((s.started_at, s.finished_at))
        for intervals in groups.values():
            intervals.sort()
            for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
                assert start >= end, f"overlapping sub-epochs by {key}"


def test_weights_carry_over_through_an_intact_checkpoint_chain(grid_run):
    services, workload_id, _ = grid_run
    with services.store.session() as session:
        for config in services.list_configs(workload_id):
            rows = list(session.scalars(select(SubEpochRow).where(SubEpochRow.config_id == config.id,
                                                                  SubEpochRow.outcome == "ok")
                                        .order_by(SubEpochRow.id)))
            assert rows[0].input_checkpoint_id is None
            for previous, current in zip(rows, rows[1:], strict=False):
                assert current.input_checkpoint_id == previous.output_checkpoint_id
            epoch_ends = list(session.scalars(select(CheckpointRow).where(
                CheckpointRow.config_id == config.id, CheckpointRow.epoch_end.is_(True)).order_by(CheckpointRow.seq)))
            assert [c.epoch for c in epoch_ends] == list(range(EPOCHS))
            for ck in epoch_ends:
                assert file_sha256(ck.path) == ck.sha256


def test_visit_order_is_shuffled_per_config_and_epoch(grid_run):
    services, workload_id, _ = grid_run
    first_partition = defaultdict(set)
    for s in _log(services, workload_id):
        if s.outcome == "ok":
            first_partition.setdefault((s.config_id, s.epoch), s.partition)
    orders = {(c, e): p for (c, e), p in first_partition.items()}
    assert len(set(orders.values())) == 2  # not every config starts every epoch on the same partition


def test_metrics_are_complete_unique_and_accurate(grid_run):
    services, workload_id, _ = grid_run
    with services.store.session() as session:
        rows = list(session.scalars(select(MetricRow)))
    per_key = Counter((m.config_id, m.epoch, m.name) for m in rows)
    assert set(per_key.values()) == {1}
    names = {m.name for m in rows}
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "params", "epoch_seconds"} <= names
    params = {m.config_id: m.value for m in rows if m.name == "params"}
    units = {c.id: c.hparams["units"] for c in services.list_configs(workload_id)}
    # the parameter count is the model's: more units, more parameters (mlp on 8x8 digits)
    assert all(params[a] > params[b] for a in units for b in units if units[a] > units[b])
    best = services.get_workload(workload_id).best
    assert best["metric"] == "val_accuracy" and best["value"] >= 0.90


def test_tensorboard_event_files_hold_the_epoch_scalars(grid_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    services, workload_id, _ = grid_run
    config = services.list_configs(workload_id)[0]
    acc = EventAccumulator(str(services.tensorboard_dir(workload_id) / f"config-{config.id}"))
    acc.Reload()
    scalars = acc.Scalars("val_accuracy")
    assert [s.step for s in scalars] == list(range(EPOCHS))
    assert scalars[-1].value == pytest.approx(config.latest_metrics["val_accuracy"], rel=1e-6)
    # TensorBoard's HParams dashboard: the config's hyperparameters, once, in the same run as its scalars.
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    assert list(content) == ["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.group_name == f"config-{config.id}"
    assert start.hparams["units"].number_value == config.hparams["units"]


def test_models_stay_in_worker_memory_when_the_next_partition_is_local(grid_run):
    services, workload_id, stats = grid_run
    reused = [s for s in _log(services, workload_id) if s.detail == "model reused from worker memory"]
    # a config's last partition of epoch e and first of e+1 can be the same worker: no reload then
    assert reused, "expected at least one sub-epoch to reuse the in-memory model"
    assert stats["lost"] == 0 and stats["failed"] == 0
