"""20 REST clients steer a running workload at once: no 5xx, no lost update, stale writes get 409."""

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


def test_twenty_clients_steering_at_once(services, digits, api):
    workload = services.launch_workload({
        "name": "busy", "model": "mlp", "dataset": "digits", "max_epochs": 30, "procedure": "grid",
        "space": {"lr": {"type": "choice", "values": [0.001, 0.003, 0.01]}, "units": 32}})
    statuses: Counter = Counter()
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
                    elif r.status_code != 409:
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
    assert statuses[409] > 0, "stale If-Match / version writes must be refused"
    assert sum(statuses.values()) == CLIENTS * ACTIONS_PER_CLIENT
    # every accepted change is in the audit log, exactly once
    events = Counter(e.action for e in services.list_events(limit=100_000))
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
    print(f"{sum(statuses.values())} requests in {elapsed:.1f} s: {dict(statuses)}")
