"""Procedures' decisions applied through the steering services on a real store (no training: epochs are
committed through the scheduler's own store calls): idempotency by key, audit, human interventions, the
scheduler's queue, the Pareto front and hypervolume, fANOVA importance and their REST routes."""

import pytest
from sqlalchemy import select

from hopper.engine import fronts
from hopper.engine.entities import SubEpochStats
from hopper.engine.errors import Conflict, InvalidState, ValidationError
from hopper.engine.procedures import Decision
from hopper.engine.status import DecisionKind
from hopper.engine.store import DecisionRow, EventRow
from hopper.mop_scheduler.policy import MopPolicy, Snapshot
from hopper.rest import create_app

SPACE = {"lr": {"type": "choice", "values": [0.001, 0.003, 0.01, 0.03]}, "units": {"type": "choice",
                                                                                  "values": [8, 16, 32]}}
TOKEN = "decisions-token-123"


def _epoch(services, config_id, metrics):
    """Commit one epoch of a config on both partitions, as the ledger does after real training."""
    store = services.store
    for partition in range(2):
        start = store.schedule.start_sub_epoch(config_id, partition, f"w{partition}", n_partitions=2, layouts={},
                                               scripts={})
        store.schedule.commit_ok(
            sub_epoch_id=start.sub_epoch_id, config_id=config_id, n_partitions=2,
            checkpoint_path=f"/nowhere/c{config_id}-e{start.epoch}-p{partition}.npz", checkpoint_sha256="0" * 64,
            checkpoint_bytes=1, stats=SubEpochStats(10, 0.5, 0.5, 0.1, 0.0), val_metrics=dict(metrics),
            summarize=lambda subs, val: dict(val))


@pytest.fixture
def asha(services, digits):
    workload = services.launch_workload({
        "name": "asha", "model": "mlp", "dataset": "digits", "procedure": "asha", "space": SPACE, "max_epochs": 4,
        "max_configs": 6, "procedure_options": {"eta": 2}, "objectives": {"val_accuracy": "max", "params": "min"}})
    return workload.id


def test_asha_decisions_apply_once_and_people_win(services, asha):
    a, b = (c.id for c in services.list_configs(asha))
    _epoch(services, a, {"val_accuracy": 0.5, "params": 100})
    assert services.run_procedure(asha) == 1  # alone at rung 1: paused
    assert services.get_config(a).status == "paused"
    assert services.run_procedure(asha) == 0, "the same decision again is a no-op"
    (pause,) = services.list_decisions(asha)
    assert (pause.kind, pause.key, pause.actor) == ("pause", f"asha:rung1:config{a}", "procedure:asha")
    again = Decision(DecisionKind.PAUSE, a, "again", key=pause.key)
    assert services.apply_decision(asha, again, actor="someone") is None
    assert len(services.list_decisions(asha)) == 1

    _epoch(services, b, {"val_accuracy": 0.3, "params": 50})
    assert services.run_procedure(asha) == 2  # b pauses, a (now top 1 of 2) is promoted
    assert services.get_config(a).status == "queued" and services.get_config(b).status == "paused"
    with services.store.session() as s:
        events = {(e.object_id, e.action): e for e in s.scalars(select(EventRow).where(
            EventRow.actor == "procedure:asha"))}
    assert events[(a, "promote_config")].after["reason"].startswith("asha: rung 1 (epoch 1), rank 1/2")
    assert events[(b, "pause_config")].after["decision"] == f"asha:rung1:config{b}"

    # A person promotes b by hand: it continues; its rung decision is not re-applied.
    services.resume_config(b, actor="alice")
    assert services.run_procedure(asha) == 0 and services.get_config(b).status == "queued"
    # A person stops a: however it ranks, the procedure never resurrects it.
    services.stop_config(a, actor="alice")
    c = services.add_config(asha, {"lr": 0.01, "units": 8}, actor="alice").id
    _epoch(services, c, {"val_accuracy": 0.1, "params": 10})
    services.run_procedure(asha)
    assert services.get_config(a).status == "stopped"
    # Paused configs are not runnable, and priorities still order the queue among the rest.
    assert services.get_config(c).status == "paused"
    d = services.add_config(asha, {"lr": 0.03, "units": 8}, actor="alice").id
    services.set_priority(b, 5, actor="alice")
    runnable = services.store.schedule.runnable()
    assert {row[0] for row in runnable} == {b, d}
    snapshot = Snapshot(runnable=runnable, visited={}, in_flight=set(), cooling=set(), idle=[0], n_partitions=2)
    assert [a.config_id for a in MopPolicy().assign(snapshot)] == [b], "priority before least progress"


def test_exploit_clones_from_the_source_and_stops_the_target_once(services, asha):
    a, b = (c.id for c in services.list_configs(asha))
    _epoch(services, a, {"val_accuracy": 0.9, "params": 100})
    _epoch(services, b, {"val_accuracy": 0.2, "params": 100})
    exploit = Decision(DecisionKind.EXPLOIT, b, "pbt: test", source_config_id=a, hparams={"lr": 0.003},
                       key=f"pbt:exploit:config{b}@epoch1")
    clone = services.apply_decision(asha, exploit, actor="procedure:pbt")
    assert clone.cloned_from_config_id == a and clone.epochs_done == 1 and clone.hparams["lr"] == 0.003
    assert services.get_config(b).status == "stopped"
    assert services.apply_decision(asha, exploit, actor="procedure:pbt") is None
    (row,) = [d for d in services.list_decisions(asha) if d.kind == "exploit"]
    assert row.result_config_id == clone.id and row.source_config_id == a
    with services.store.session() as s:
        stop = s.scalar(select(EventRow).where(EventRow.object_id == b, EventRow.action == "stop_config"))
        assert stop.after["replaced_by"] == clone.id and stop.actor == "procedure:pbt"
        with pytest.raises(Conflict):  # the store itself refuses a duplicate key
            with services.store.session() as s2:
                s2.add(DecisionRow(workload_id=asha, key=exploit.key, kind="stop", config_id=b, reason="",
                                   actor="x"))
    observed = services.store.workloads.decide(asha, lambda w, cs: {c.id: c for c in cs})
    assert observed[clone.id].parent_id == a and observed[b].stopped_by_person is False


def test_an_exploit_of_a_finished_source_is_refused_and_changes_nothing(services, asha):
    """The clone would continue from the source's last epoch with nothing left to train (queued forever)."""
    a, b = (c.id for c in services.list_configs(asha))
    for _ in range(4):  # the workload's max_epochs
        _epoch(services, a, {"val_accuracy": 0.9, "params": 100})
    _epoch(services, b, {"val_accuracy": 0.2, "params": 100})
    assert services.get_config(a).status == "done"
    before = services.get_config(b).status
    exploit = Decision(DecisionKind.EXPLOIT, b, "pbt: test", source_config_id=a, hparams={"lr": 0.003},
                       key=f"pbt:exploit:config{b}@epoch1")
    with pytest.raises(InvalidState, match="nothing left to train"):
        services.apply_decision(asha, exploit, actor="procedure:pbt")
    assert services.get_config(b).status == before != "stopped" and len(services.list_configs(asha)) == 2
    assert not services.list_decisions(asha)


def test_decisions_are_checked(services, asha):
    a = services.list_configs(asha)[0].id
    with pytest.raises(ValidationError):
        services.apply_decision(asha, Decision(DecisionKind.STOP, a, "no key"), actor="x")
    with pytest.raises(ValidationError):
        services.apply_decision(asha, Decision(DecisionKind.EXPLOIT, a, "no source", key="k"), actor="x")


def test_front_hypervolume_and_importance_over_rest(services, asha, digits):
    grid = services.launch_workload({"name": "one objective", "model": "mlp", "dataset": "digits",
                                     "procedure": "grid", "space": SPACE, "max_epochs": 2}).id
    results = {(0.001, 8): (0.6, 80), (0.003, 16): (0.8, 160), (0.01, 32): (0.9, 320), (0.03, 8): (0.5, 80),
               (0.01, 8): (0.85, 80)}
    for proposed in services.list_configs(asha):  # its random proposals stay out of the picture
        services.stop_config(proposed.id)
    ids = [services.add_config(asha, {"lr": lr, "units": units}).id for lr, units in results]
    for config_id in ids:
        config = services.get_config(config_id)
        accuracy, params = results[(config.hparams["lr"], config.hparams["units"])]
        _epoch(services, config_id, {"val_accuracy": accuracy - 0.1, "params": params})
        if accuracy >= 0.8:
            _epoch(services, config_id, {"val_accuracy": accuracy, "params": params})
    app = create_app(services, token=TOKEN, secret_key="s" * 32)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"

    front = client.get(f"/api/v1/workloads/{asha}/pareto?x=objectives")
    assert front.status_code == 200, front.json
    by_hparams = {(services.get_config(p["config_id"]).hparams["lr"], services.get_config(p["config_id"])
                   .hparams["units"]): p for p in front.json["points"]}
    assert {k for k, p in by_hparams.items() if p["on_front"]} == {(0.01, 8), (0.01, 32)}
    epochs = front.json["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2] and epochs[1]["hypervolume"] > epochs[0]["hypervolume"] > 0
    assert client.get(f"/api/v1/workloads/{grid}/pareto?x=objectives").status_code == 422  # one objective

    imp = client.get(f"/api/v1/workloads/{asha}/importance")
    assert imp.status_code == 200, imp.json
    assert imp.json["method"] == "fanova" and imp.json["n_configs"] == 5
    assert set(imp.json["importances"]) == {"lr", "units"}
    assert sum(imp.json["importances"].values()) == pytest.approx(1.0)
    assert services.importance(asha) is services.importance(asha), "cached until a config changes"
    too_few = client.get(f"/api/v1/workloads/{grid}/importance")
    assert too_few.status_code == 409 and "at least 4 configs" in too_few.json["error"]["message"]
    assert client.get("/api/v1/workloads/999999/importance").status_code == 404

    log = client.get(f"/api/v1/workloads/{asha}/decisions")
    assert log.status_code == 200 and log.json == []  # nothing ran the procedure in this test
    services.run_procedure(asha)
    assert {d["kind"] for d in client.get(f"/api/v1/workloads/{asha}/decisions").json} >= {"pause"}
    assert client.get("/api/v1/workloads/999999/decisions").status_code == 404


def test_hypervolume_matches_optuna():
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    points = [(0.1, 0.9, 0.5), (0.4, 0.4, 0.4), (0.9, 0.1, 0.7), (0.5, 0.5, 0.5), (0.2, 0.8, 0.2)]
    reference = (1.0, 1.0, 1.0)
    assert fronts.hypervolume(points, reference) == pytest.approx(
        compute_hypervolume(np.array(points), np.array(reference)))
    two = [p[:2] for p in points]
    assert fronts.hypervolume(two, reference[:2]) == pytest.approx(
        compute_hypervolume(np.array(two), np.array(reference[:2])))
    assert fronts.pareto_indices(two) == [0, 1, 2, 4], "(0.5, 0.5) is dominated by (0.4, 0.4)"
    assert fronts.hypervolume([(2.0, 2.0)], (1.0, 1.0)) == 0.0
