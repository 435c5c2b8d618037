"""20 REST clients steer a running workload at once: no 5xx, no lost update, stale writes get 409.

A 409 has two meanings, told apart by the error's code: ``conflict`` on the ``version`` field (the client acted
on a version that is gone: the optimistic lock) and ``invalid_state`` (resuming a queued config, say). Each
test below asserts the one it means, so a REST layer that ignored versions could not pass on wrong-state 409s.
"""

import random
import threading
import time
from collections import Counter

import pytest
import requests

from hopper.rest import create_app
from tests.support.postgres import free_port
from tests.support.running import RunningScheduler

pytestmark = pytest.mark.slow

CLIENTS, ACTIONS_PER_CLIENT = 20, 15
TOKEN = "concurrency-token"


@pytest.fixture
def api(services):
    from waitress import create_server

    app = create_app(services, token=TOKEN, secret_key="k" * 32)
    server = create_server(app, host="127.0.0.1", port=free_port(), threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}/api/v1"
    server.close()


def _stale_writes_are_refused(http: requests.Session, api: str, services, config_id: int) -> None:
    """Each write that takes a version (stop, resume, priority, clone), sent with a stale one (as If-Match and
    as ``version``), gets the version-conflict 409 and changes nothing; sent with the current one it is applied
    and appears exactly once in the audit log."""
    writes = [("stop", "POST", "stop", {}, "stop_config"), ("resume", "POST", "resume", {}, "resume_config"),
              ("priority", "PUT", "priority", {"priority": 4}, "set_priority"),
              ("clone", "POST", "clone", {"overrides": {"lr": 0.003}}, "clone_config")]
    for name, method, path, body, event in writes:
        url = f"{api}/configs/{config_id}/{path}"
        current = http.get(f"{api}/configs/{config_id}", timeout=60)
        version = int(current.headers["ETag"].strip('"'))
        before = current.json()
        events_before = len(services.list_events(limit=100_000))
        older = version - 1 if version > 1 else version + 3  # versions start at 1
        stale = [({"If-Match": f'"{older}"'}, body), ({}, {**body, "version": older}),
                 ({"If-Match": f'"{version + 7}"'}, body), ({}, {**body, "version": version + 7})]
        if version > 1:
            stale.append(({"If-Match": '"1"'}, body))
        for headers, sent in stale:
            r = http.request(method, url, json=sent, headers=headers, timeout=60)
            assert r.status_code == 409, (name, headers, sent, r.status_code, r.text)
            error = r.json()["error"]
            assert (error["code"], error["field"]) == ("conflict", "version"), (name, error)
            assert f"is at version {version}, not" in error["message"], error
        after = http.get(f"{api}/configs/{config_id}", timeout=60).json()
        assert {k: after[k] for k in ("version", "status", "priority")} == \
            {k: before[k] for k in ("version", "status", "priority")}, name
        assert len(services.list_events(limit=100_000)) == events_before, f"a refused {name} reached the audit log"
        r = http.request(method, url, json=body, headers={"If-Match": f'"{version}"'}, timeout=60)
        assert r.status_code in (200, 201), (name, r.text)
        log = services.list_events(limit=100_000)  # newest first
        new_events = log[: len(log) - events_before]
        changed = r.json()["id"]  # the config itself, or for a clone the new config
        assert [(e.action, e.object_id) for e in new_events] == [(event, changed)], (name, new_events)
    # the other 409: a write that does not apply to the config's state, told apart by its code
    r = http.post(f"{api}/configs/{config_id}/resume", json={}, timeout=60)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_state", r.text


def test_twenty_clients_steering_at_once(services, digits, api):
    workload = services.launch_workload({
        "name": "busy", "model": "mlp", "dataset": "digits", "max_epochs": 30, "procedure": "grid",
        "space": {"lr": {"type": "choice", "values": [0.001, 0.003, 0.01]}, "units": 32}})
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        _stale_writes_are_refused(http, api, services, services.list_configs(workload.id)[0].id)
    events_before = Counter(e.action for e in services.list_events(limit=100_000))
    statuses: Counter = Counter()
    refusals: Counter = Counter()  # (action, error code, error field) of every 409
    accepted: list[tuple[str, int, dict]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {TOKEN}"
            for _ in range(ACTIONS_PER_CLIENT):
                configs = http.get(f"{api}/workloads/{workload.id}/configs?limit=1000", timeout=60).json()["items"]
                target = rng.choice(configs)
                action = rng.choice(["stop", "resume", "priority", "priority_stale", "clone", "add"])
                if action in ("stop", "resume"):
                    r = http.post(f"{api}/configs/{target['id']}/{action}", json={}, timeout=60)
                elif action == "priority":
                    current = http.get(f"{api}/configs/{target['id']}", timeout=60)
                    value = rng.randint(-5, 5)
                    r = http.put(f"{api}/configs/{target['id']}/priority", json={"priority": value},
                                 headers={"If-Match": current.headers["ETag"]}, timeout=60)
                elif action == "priority_stale":
                    r = http.put(f"{api}/configs/{target['id']}/priority", json={"priority": 9, "version": 1},
                                 timeout=60)
                elif action == "clone":
                    r = http.post(f"{api}/configs/{target['id']}/clone", json={"overrides": {"lr": 0.002}}, timeout=60)
                else:
                    r = http.post(f"{api}/workloads/{workload.id}/configs",
                                  json={"hparams": {"lr": 0.004, "units": 16}}, timeout=60)
                with lock:
                    statuses[r.status_code] += 1
                    if r.status_code >= 500:
                        failures.append(f"{action}: {r.status_code} {r.text[:300]}")
                    elif r.status_code in (200, 201):
                        accepted.append((action, target["id"], r.json()))
                    elif r.status_code == 409:
                        error = r.json()["error"]
                        refusals[(action, error["code"], error["field"])] += 1
                    else:
                        failures.append(f"{action}: unexpected {r.status_code} {r.text[:300]}")

    with RunningScheduler(services):
        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        elapsed = time.monotonic() - started
    assert not failures, failures[:5]
    stale_refused = refusals[("priority_stale", "conflict", "version")]
    assert stale_refused > 0, f"stale version writes must be refused as version conflicts: {dict(refusals)}"
    # a write naming version 1 is refused exactly when the config had moved on: any that got through found it
    # at version 1 and left it at 2 (or at 1, when a clone already had priority 9: nothing to change); every
    # refusal of it is the optimistic lock, never a state error
    stale_accepted = [body for action, _, body in accepted if action == "priority_stale"]
    assert all(body["version"] in (1, 2) and body["priority"] == 9 for body in stale_accepted), stale_accepted
    assert {key for key in refusals if key[0] == "priority_stale"} == {("priority_stale", "conflict", "version")}
    # a priority sent with a fresh ETag can still lose a race (the config moved on between GET and PUT): that
    # refusal is the version conflict too
    assert {key for key in refusals if key[0] == "priority"} <= {("priority", "conflict", "version")}
    # stop and resume send no version: their refusals are state errors (stop a stopped config, resume a queued one)
    assert {code for (action, code, _) in refusals if action in ("stop", "resume")} <= {"invalid_state"}
    assert sum(statuses.values()) == CLIENTS * ACTIONS_PER_CLIENT
    # every accepted change is in the audit log, exactly once
    events = Counter(e.action for e in services.list_events(limit=100_000)) - events_before
    expected = Counter({"stop": "stop_config", "resume": "resume_config", "priority": "set_priority",
                        "priority_stale": "set_priority", "clone": "clone_config", "add": "add_config"}[a]
                       for a, _, _ in accepted)
    for action, count in expected.items():
        assert events[action] == count, (action, events[action], count)
    # no lost update: each config's final priority is the last accepted one
    last_priority: dict[int, int] = {}
    for action, config_id, body in accepted:
        if action.startswith("priority"):
            if body["version"] > last_priority.get(config_id, (0, 0))[0]:
                last_priority[config_id] = (body["version"], body["priority"])
    for config_id, (_, priority) in last_priority.items():
        assert services.get_config(config_id).priority == priority
    print(f"{sum(statuses.values())} requests in {elapsed:.1f} s: {dict(statuses)}; 409s: {dict(refusals)}")

