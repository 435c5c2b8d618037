"""Advisor mode through the services on a real store: a procedure's decisions become suggestions (once per key),
people accept (applied through apply_decision, audited "suggested by ..., accepted by ...") or reject (never
applied), moot ones expire with the reason; over REST viewers read and editors decide. No training here."""

from __future__ import annotations

import pytest

from hopper.engine.errors import InvalidState, NotFound, ValidationError
from hopper.engine.procedures import Decision
from hopper.engine.status import DecisionKind
from hopper.rest import create_app

TOKEN = "advisor-admin"
SPACE = {"lr": {"type": "choice", "values": [0.01, 0.003, 0.001]}, "units": 32}


def _advisor(services):
    workload = services.launch_workload({"name": "advised", "model": "mlp", "dataset": "digits", "procedure": "grid",
                                         "space": SPACE, "max_epochs": 4, "advisor": True})
    return workload, [c.id for c in services.list_configs(workload.id)]


def _stop(config_id: int, rung: int = 1) -> Decision:
    return Decision(DecisionKind.STOP, config_id, f"asha: rung {rung}, rank 3/3, val_accuracy 0.41 < cutoff 0.77",
                    key=f"asha:rung{rung}:config{config_id}")


def test_decisions_become_suggestions_once_and_a_rejected_one_never_takes_effect(services, digits):
    workload, (a, b, c) = _advisor(services)
    assert workload.advisor
    exploit = Decision(DecisionKind.EXPLOIT, c, "pbt: bottom quantile at epoch 2", source_config_id=a,
                       hparams={"lr": 0.008, "units": 32}, key=f"pbt:exploit:config{c}@epoch2")
    for decision in (_stop(a), _stop(b), exploit, _stop(a)):  # a rebuilt procedure repeats itself
        assert services.route_decision(workload.id, decision) is False
    listed = services.list_suggestions(workload.id)
    assert [(s.kind, s.config_id, s.status) for s in listed] == [
        ("exploit", c, "pending"), ("stop", b, "pending"), ("stop", a, "pending")]
    assert listed[0].payload == {"source_config_id": a, "hparams": {"lr": 0.008, "units": 32}}
    assert listed[0].summary == f"exploit config {a} into config {c} (suggested by grid)"
    assert {cfg.status for cfg in services.list_configs(workload.id)} == {"queued"}  # nothing applied

    rejected = services.reject_suggestion(workload.id, listed[1].id, actor="bob")
    assert (rejected.status, rejected.decided_by) == ("rejected", "bob")
    with pytest.raises(InvalidState, match="already rejected by bob"):
        services.accept_suggestion(workload.id, listed[1].id, actor="alice")
    services.route_decision(workload.id, _stop(b))  # the procedure decides it again: not suggested again
    assert len(services.list_suggestions(workload.id)) == 3
    assert services.get_config(b).status == "queued"
    event = next(e for e in services.list_events(limit=20) if e.action == "reject_suggestion")
    assert event.actor == "bob" and event.after["summary"] == "suggested by grid, rejected by bob"

    accepted = services.accept_suggestion(workload.id, listed[2].id, actor="alice")
    assert (accepted.status, accepted.decided_by) == ("accepted", "alice")
    assert services.get_config(a).status == "stopped"
    applied = services.list_decisions(workload.id)
    assert [(d.key, d.actor) for d in applied] == [(f"asha:rung1:config{a}", "alice")]
    assert applied[0].reason.startswith("suggested by grid, accepted by alice: asha: rung 1")
    with pytest.raises(InvalidState, match="already accepted by alice"):
        services.accept_suggestion(workload.id, listed[2].id, actor="alice")
    with pytest.raises(NotFound):
        services.accept_suggestion(workload.id + 1, listed[0].id)
    with pytest.raises(ValidationError, match="status must be one of"):
        services.list_suggestions(workload.id, status="maybe")
    assert [s.id for s in services.list_suggestions(workload.id, status="pending")] == [listed[0].id]


def test_a_suggestion_the_state_made_moot_expires_with_the_reason(services, digits):
    workload, (a, b, c) = _advisor(services)
    services.route_decision(workload.id, _stop(a))
    services.route_decision(workload.id, _stop(b))
    first, second = sorted(services.list_suggestions(workload.id), key=lambda s: s.config_id)
    services.stop_config(a, actor="carol")  # a person got there first
    with pytest.raises(InvalidState, match=f"expired: config {a} is already stopped; it was not applied"):
        services.accept_suggestion(workload.id, first.id, actor="alice")
    expired = services.list_suggestions(workload.id, status="expired")
    assert [(s.id, s.detail) for s in expired] == [(first.id, f"config {a} is already stopped")]
    # Moot pending suggestions also expire when the procedure next reports (the scheduler's decision point).
    services.stop_config(b, actor="carol")
    services.route_decision(workload.id, _stop(c))
    assert services.list_suggestions(workload.id)[-1].status != "pending"
    assert {s.config_id: s.status for s in services.list_suggestions(workload.id)} == {
        a: "expired", b: "expired", c: "pending"}
    assert second.id in {e.object_id for e in services.list_events(limit=20) if e.action == "expire_suggestion"}
    # The scheduler's decision point expires what an epoch made moot even when the procedure decides nothing.
    services.stop_config(c, actor="carol")
    assert services.run_procedure(workload.id) == 0
    assert {s.status for s in services.list_suggestions(workload.id)} == {"expired"}
    services.resume_config(c, actor="carol")
    # A decision already true of its config is not suggested at all (ASHA promoting a config that never paused).
    services.route_decision(workload.id, Decision(DecisionKind.PROMOTE, c, "asha: top of rung 1", key="asha:p:c"))
    services.route_decision(workload.id, _stop(c, rung=2))
    assert len(services.list_suggestions(workload.id)) == 4
    with pytest.raises(ValidationError, match="advisor mode needs an automatic procedure") as caught:
        services.launch_workload({"name": "m", "model": "mlp", "dataset": "digits", "procedure": "manual",
                                  "advisor": True})
    assert caught.value.field == "advisor"


def test_viewers_read_suggestions_and_editors_decide_over_rest(services, digits):
    workload, (a, b, _) = _advisor(services)
    services.route_decision(workload.id, _stop(a))
    services.route_decision(workload.id, _stop(b))
    first, second = sorted(services.list_suggestions(workload.id), key=lambda s: s.config_id)
    _, viewer = services.add_user("vera", "viewer")
    _, editor = services.add_user("eddie", "editor")
    client = create_app(services, token=TOKEN, secret_key="s" * 32).test_client()

    def call(method: str, path: str, token: str):  # noqa: ANN202
        return client.open(f"/api/v1/workloads/{workload.id}{path}", method=method,
                           headers={"Authorization": f"Bearer {token}"})

    listed = call("GET", "/suggestions", viewer)
    assert listed.status_code == 200 and [s["key"] for s in listed.json] == [second.key, first.key]
    assert listed.json[0]["reason"].startswith("asha: rung 1")
    assert call("GET", "/suggestions?status=nope", viewer).status_code == 400
    refused = call("POST", f"/suggestions/{first.id}/accept", viewer)
    assert refused.status_code == 403 and "vera" in refused.json["error"]["message"]
    assert call("POST", f"/suggestions/{first.id}/accept", editor).json["decided_by"] == "eddie"
    assert services.get_config(a).status == "stopped"
    assert call("POST", f"/suggestions/{first.id}/reject", editor).status_code == 409
    assert call("POST", f"/suggestions/{second.id}/reject", editor).json["status"] == "rejected"
    assert call("POST", "/suggestions/999/accept", editor).status_code == 404
    assert services.get_config(b).status == "queued"
