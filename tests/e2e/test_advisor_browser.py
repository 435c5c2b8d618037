"""Advisor mode in real Chromium against `hopper serve --with-scheduler`: a person accepts one suggestion and
rejects another on the workload page. The accepted exploit takes effect at the next free slot (its new config
trains from the source's weights), the rejected stop never does (its config trains to the end), both audited.

The suggestions are recorded through ``SteeringServices.route_decision``, the branch point the scheduler calls
with its procedure's decisions, so the test controls which decisions exist and when.
"""

from __future__ import annotations

import time

import pytest
import requests

from hopper.engine.procedures import Decision
from hopper.engine.status import DecisionKind
from tests.e2e.test_browser import SHOTS, _wait_text, browser, server  # noqa: F401 - the shared fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]
EPOCHS = 8  # long enough to still be training when the person decides


def _until(what: str, predicate, timeout: float = 180):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_accept_one_suggestion_and_reject_another_in_the_browser(server, browser):  # noqa: F811
    from hopper.engine.services import open_services
    from hopper.settings import load_settings

    base, token, home = server
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    r = api.post(base + "/api/v1/workloads", json={
        "name": "advised grid", "model": "mlp", "dataset": "digits", "procedure": "grid", "advisor": True,
        "max_epochs": EPOCHS, "space": {"lr": {"type": "choice", "values": [0.01, 0.003]}, "units": 16,
                                        "batch_size": 64}}, timeout=30)
    assert r.status_code == 201, r.text
    wid = r.json()["id"]

    def configs() -> dict[int, dict]:
        return {c["id"]: c for c in api.get(f"{base}/api/v1/workloads/{wid}/configs", timeout=30).json()["items"]}

    first, second = sorted(configs())
    _until("the first epoch of both configs", lambda: all(c["epochs_done"] >= 1 for c in configs().values()))
    services = open_services(load_settings({"HOPPER_HOME": str(home), "HOPPER_DATA_ROOTS": str(home / "data")}))
    try:
        services.route_decision(wid, Decision(DecisionKind.STOP, first, "asha: rung 1 (epoch 1), rank 2/2",
                                              key=f"asha:rung1:config{first}"))
        services.route_decision(wid, Decision(
            DecisionKind.EXPLOIT, second, "pbt: bottom half at epoch 1, exploits the top config",
            source_config_id=first, hparams={"lr": 0.005, "units": 16, "batch_size": 64},
            key=f"pbt:exploit:config{second}@epoch1"))
        stop_id, exploit_id = (s.id for s in sorted(services.list_suggestions(wid), key=lambda s: s.id))
    finally:
        services.store.dispose()

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(base + "/login")
    page.fill("#token", token)
    page.click("#login-button")
    page.wait_for_selector("#workload-table")
    page.goto(f"{base}/workloads/{wid}")
    _wait_text(page.locator(f"#suggestion-{stop_id}"), rf"stop config {first} \(suggested by grid\).*rank 2/2")
    _wait_text(page.locator(f"#suggestion-{exploit_id}"), rf"exploit config {first} into config {second}")

    # The decided item says the outcome (the notice above the list may be replaced by the panel's redraw).
    page.locator(f"#suggestion-{stop_id}").get_by_role("button", name="Reject").click()
    _wait_text(page.locator(f"#suggestion-{stop_id}"), "rejected by admin")
    page.locator(f"#suggestion-{exploit_id}").get_by_role("button", name="Accept").click()
    _wait_text(page.locator(f"#suggestion-{exploit_id}"), "accepted by admin")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "advisor-suggestions.png", full_page=True)
    decided_at = configs()[first]["epochs_done"]

    # The accepted exploit: the target stops, a clone of the source with the explored lr takes the next free slot
    # and trains on from the source's weights (it starts at the source's epoch, not at zero).
    clone = _until("the exploit's clone to train an epoch", lambda: next(
        (c for c in configs().values() if c["origin"] == "clone" and c["epochs_done"] > 1), None), timeout=240)
    assert clone["hparams"]["lr"] == 0.005 and clone["cloned_from_config_id"] == first
    assert configs()[second]["status"] == "stopped"
    # The rejected stop never took effect: its config goes on training past the epoch it was suggested at.
    _until("the rejected config to train on", lambda: configs()[first]["epochs_done"] > decided_at, timeout=240)
    assert configs()[first]["status"] in ("queued", "running", "done")
    _wait_text(page.locator("#cfg-table"), r"lr=0\.005")

    events = api.get(base + "/api/v1/events", params={"limit": 200}, timeout=30).json()
    decided = {e["action"]: e for e in events if e["object_type"] == "suggestion"}
    assert decided["reject_suggestion"]["after"]["summary"] == "suggested by grid, rejected by admin"
    assert decided["accept_suggestion"]["after"]["summary"] == "suggested by grid, accepted by admin"
    assert not any(e["action"] == "stop_config" and e["object_id"] == first for e in events)
    page.click("text=Audit log")
    _wait_text(page.locator("#event-table"), "accept_suggestion")
    assert "reject_suggestion" in page.locator("#event-table").inner_text()
    api.patch(f"{base}/api/v1/workloads/{wid}", json={"status": "paused"}, timeout=30)  # no need to train on
