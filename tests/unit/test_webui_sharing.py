"""The workload view's sharing card called as plain functions against a real SQLite store: pause, resume,
stop, weight and the budget line; a bad weight shows an error and changes nothing."""

from __future__ import annotations

import pytest
from dash import html

from hopper.webui import layout, sharing

GRID = {"lr": {"type": "choice", "values": [0.01, 0.001]}, "units": 32}


@pytest.fixture
def workload(services, digits):
    return services.launch_workload({"name": "w", "model": "mlp", "dataset": "digits", "space": GRID,
                                     "max_epochs": 2, "budget": {"worker_seconds": 60}})


def test_pause_resume_stop_and_weight_from_the_workload_view(services, workload):
    wid = workload.id
    card = layout.detail_page(workload, None)
    assert "wl-controls" in str(card)  # the card is on the page
    notice = sharing.workload_action(services, "wl-pause", wid, None)
    assert notice.className == "ok" and "paused" in notice.children
    notice = sharing.workload_action(services, "wl-pause", wid, None)
    assert notice.className == "error" and "it is paused" in notice.children
    assert "running" in sharing.workload_action(services, "wl-resume", wid, None).children
    assert "stopped" in sharing.workload_action(services, "wl-stop", wid, None).children
    assert services.get_workload(wid).status == "stopped"
    assert "weight 2.5" in sharing.workload_action(services, "wl-set-weight", wid, 2.5).children
    for bad in (None, 0, -1):
        notice = sharing.workload_action(services, "wl-set-weight", wid, bad)
        assert isinstance(notice, html.Span) and notice.className == "error" and "[weight]" in notice.children
    assert services.get_workload(wid).weight == 2.5
    actions = [e.action for e in services.list_events(limit=50) if e.object_id == wid]
    assert {"pause_workload", "resume_workload", "stop_workload", "set_workload_weight"} <= set(actions)


def test_the_budget_line_shows_spend_remaining_and_eta(services, workload):
    text = sharing.budget_text(services, workload.id)
    assert text.startswith("running · weight 1")
    assert "worker time 0 min 00 s of 1 min 00 s, 1 min 00 s left" in text
    assert "8 sub-epochs left, ETA unknown until a sub-epoch finished" in text
