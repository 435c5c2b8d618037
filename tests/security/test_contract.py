"""The API contract on the real app (REST and Dash on one server, behind the gate): deep JSON is a 400, every
unknown or malformed /api path a JSON 404, 405 carries Allow, If-Match: * matches any version, and bad Dash
asset paths are 404s."""

from __future__ import annotations

import pytest

from hopper.rest import MAX_JSON_DEPTH, json_depth
from hopper.webui import create_dash

TOKEN = "contract-token-1234"


@pytest.fixture
def client(services, digits):
    app = create_dash(services, token=TOKEN, secret_key="c" * 32, tensorboard_url=lambda: None).server
    app.testing = True
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return c


@pytest.fixture
def config(services, digits):
    wl = services.launch_workload({"name": "c", "model": "mlp", "dataset": "digits",
                                   "space": {"lr": {"type": "choice", "values": [0.01]}}})
    return services.list_configs(wl.id)[0]


def _json_error(response, status):
    assert response.status_code == status, (response.status_code, response.data[:200])
    assert response.mimetype == "application/json", response.mimetype
    return response.json["error"]


def test_json_depth_counts_only_structure():
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{"}]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(b"[" * 5000 + b"]" * 5000) == 5000


@pytest.mark.parametrize("depth", [1000, 5000, 100_000])
def test_deeply_nested_json_is_a_400_not_a_500(client, depth):
    body = "[" * depth + "]" * depth
    r = client.post("/api/v1/workloads", data=body, content_type="application/json")
    error = _json_error(r, 400)
    assert error["field"] == "body" and str(MAX_JSON_DEPTH) in error["message"]
    nested = '{"name": "x", "space": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    _json_error(client.post("/api/v1/workloads", data=nested, content_type="application/json"), 400)


def test_dash_callbacks_refuse_deep_json_too(client):
    """Dash parses its own bodies; the same limit applies before it does."""
    client.post("/login", data={"token": TOKEN})
    body = '{"output": "x", "inputs": ' + "[" * 3000 + "]" * 3000 + "}"
    r = client.post("/_dash-update-component", data=body, content_type="application/json")
    assert r.status_code == 400


def test_reasonable_nesting_still_works(client):
    space = {"lr": {"type": "choice", "values": [0.01, 0.001]}, "units": 32}
    r = client.post("/api/v1/workloads", json={"name": "ok", "model": "mlp", "dataset": "digits", "space": space})
    assert r.status_code == 201, r.json


@pytest.mark.parametrize("path", ["/api/v1/exports/-1/artifact", "/api/v1/configs/abc", "/api/v1/nothing-here",
                                  "/api/v1/workloads/1/../../x", "/api/v2/workloads", "/api/v1/configs/1.5",
                                  "/api/v1/", "/api/whatever", "/api/v1/workloads/99999999999999999999"])
def test_unknown_or_malformed_api_paths_are_json_404s(client, path):
    r = client.get(path)
    if r.status_code in (301, 308):  # werkzeug's slash redirect stays inside /api
        assert r.headers["Location"].split("//", 1)[-1].split("/", 1)[-1].startswith("api/")
        return
    error = _json_error(r, 404)
    assert error["code"] == "not_found"
    assert b"<html" not in r.data.lower()


def test_405_names_the_allowed_methods(client):
    r = client.delete("/api/v1/workloads")
    error = _json_error(r, 405)
    assert error["code"] == "method_not_allowed"
    allowed = {m.strip() for m in r.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed and "DELETE" not in allowed


def test_if_match_star_matches_any_version(client, config):
    r = client.put(f"/api/v1/configs/{config.id}/priority", json={"priority": 3}, headers={"If-Match": "*"})
    assert r.status_code == 200, r.json
    r = client.put(f"/api/v1/configs/{config.id}/priority", json={"priority": 4}, headers={"If-Match": '"1"'})
    _json_error(r, 409)  # a real, stale ETag is still checked
    r = client.put(f"/api/v1/configs/{config.id}/priority", json={"priority": 5}, headers={"If-Match": "nonsense"})
    assert _json_error(r, 400)["field"] == "If-Match"


@pytest.mark.parametrize("path", [
    "/_dash-component-suites/dash/../../../../etc/passwd",
    "/_dash-component-suites/dash/..%2f..%2f..%2fetc/passwd",
    "/_dash-component-suites/no_such_package/x.js",
    "/_dash-component-suites/dash/deps/does-not-exist.js",
    "/_dash-component-suites/dash//etc/passwd",
])
def test_bad_dash_asset_paths_are_404s(client, path):
    client.post("/login", data={"token": TOKEN})
    r = client.get(path)
    assert r.status_code == 404, (r.status_code, r.data[:200])
    assert b"root:" not in r.data
