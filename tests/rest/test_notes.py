"""Notes over REST: written on a workload or a config, listed oldest first, audited; bad input is a 4xx naming the
field and writes nothing."""

import pytest

from hopper.rest import create_app

TOKEN = "test-token-123"


@pytest.fixture
def client(services, digits):
    app = create_app(services, token=TOKEN, secret_key="s" * 32)
    app.testing = True
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return c


def test_notes_on_a_workload_and_a_config(client, services):
    r = client.post("/api/v1/workloads", json={"name": "w", "model": "mlp", "dataset": "digits", "max_epochs": 1,
                                                "space": {"lr": {"type": "choice", "values": [0.01, 0.001]}}})
    wid = r.json["id"]
    cid = client.get(f"/api/v1/workloads/{wid}/configs").json["items"][0]["id"]
    assert client.get(f"/api/v1/workloads/{wid}/notes").json == []
    first = client.post(f"/api/v1/workloads/{wid}/notes", json={"text": "Stopped **lr=0.01**: it diverges"})
    assert first.status_code == 201 and first.json["author"] == "admin" and first.json["object_type"] == "workload"
    client.post(f"/api/v1/workloads/{wid}/notes", json={"text": "second"})
    assert [n["text"] for n in client.get(f"/api/v1/workloads/{wid}/notes").json] == [
        "Stopped **lr=0.01**: it diverges", "second"]
    on_config = client.post(f"/api/v1/configs/{cid}/notes", json={"text": "clone this one"})
    assert on_config.status_code == 201
    assert [n["id"] for n in client.get(f"/api/v1/configs/{cid}/notes").json] == [on_config.json["id"]]
    [event] = [e for e in services.list_events() if e.action == "add_note" and e.object_type == "config"]
    assert event.object_id == cid and event.after == {"note_id": on_config.json["id"], "text": "clone this one"}

    for path, body, status, field in [
        (f"/api/v1/workloads/{wid}/notes", {"text": "   "}, 422, "text"),  # blank: says nothing
        (f"/api/v1/workloads/{wid}/notes", {"text": ""}, 400, "text"),
        (f"/api/v1/workloads/{wid}/notes", {"text": "x" * 20_001}, 400, "text"),
        (f"/api/v1/workloads/{wid}/notes", {"txt": "typo"}, 400, None),
        ("/api/v1/workloads/999999/notes", {"text": "lost"}, 404, "workload_id"),
        ("/api/v1/configs/999999/notes", {"text": "lost"}, 404, "config_id"),
    ]:
        r = client.post(path, json=body)
        assert r.status_code == status, (path, body, r.json)
        if field:
            assert r.json["error"]["field"] == field, r.json
    assert client.get("/api/v1/configs/999999/notes").status_code == 404
    assert len(client.get(f"/api/v1/workloads/{wid}/notes").json) == 2
    assert sum(e.action == "add_note" for e in services.list_events()) == 3
