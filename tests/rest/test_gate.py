"""The one gate in front of the REST API and the UI (``hopper.rest.gate``), on the server ``hopper serve`` builds."""

import pytest

from hopper.serve import build_app

TOKEN_HEADER = "Authorization"


@pytest.fixture
def served(services, digits):
    wsgi, token = build_app(services, host="127.0.0.1", no_auth=False, tensorboard_port=None)
    wsgi.testing = True
    return wsgi, token


def test_one_hook_guards_the_whole_server(served):
    wsgi, _ = served
    hooks = wsgi.before_request_funcs.get(None, [])
    ours = [f"{f.__module__}.{f.__name__}" for f in hooks if f.__module__.startswith("hopper")]
    # the one authentication hook, then the contract's request checks (JSON depth, unknown /api paths): they
    # decide nothing about who may do what; before them, the room the Dash callback path gets for an upload's body
    # (it only sets that path's body limit). Dash's own setup hook is the only other one.
    assert ours == ["hopper.webui.room_for_uploads", "hopper.rest.gate._gate", "hopper.rest._contract"]


def test_health_api_and_ui_rules(served):
    wsgi, token = served
    c = wsgi.test_client()
    assert c.get("/healthz").get_json() == {"status": "ok", "store": "ok"}  # open, even with the UI mounted
    r = c.get("/api/v1/workloads")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert c.get("/api/v1/workloads", headers={TOKEN_HEADER: "Bearer nope"}).status_code == 403
    assert c.get("/api/v1/workloads", headers={TOKEN_HEADER: f"Bearer {token}"}).status_code == 200
    for page in ("/", "/workloads/1", "/devices", "/logout"):
        r = c.get(page)
        assert r.status_code == 302 and r.headers["Location"].endswith("/login"), page
    for xhr in ("/_dash-layout", "/_dash-dependencies"):
        r = c.get(xhr)
        assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized", xhr
    assert c.post("/_dash-update-component", json={}).status_code == 401
    assert c.get("/login").status_code == 200 and c.get("/assets/hopper.css").status_code == 200
    assert c.post("/login", data={"token": "wrong"}).status_code == 403
    assert c.get("/").status_code == 302


def test_a_logged_in_browser_reads_pages_and_the_api(served):
    wsgi, token = served
    c = wsgi.test_client()
    assert c.post("/login", data={"token": token}).status_code == 302
    assert c.get("/").status_code == 200
    assert c.get("/_dash-layout").status_code == 200
    assert c.get("/api/v1/workloads").status_code == 200  # the session cookie is enough for the API
    assert c.get("/api/docs").status_code == 200
    assert c.get("/api/v1/workloads", headers={TOKEN_HEADER: "Bearer nope"}).status_code == 403  # a bad token still fails
    c.get("/logout")
    assert c.get("/api/v1/workloads").status_code == 401


def test_auth_disabled_on_loopback_passes_everything(services, digits):
    wsgi, token = build_app(services, host="127.0.0.1", no_auth=True, tensorboard_port=None)
    assert token is None
    c = wsgi.test_client()
    assert c.get("/").status_code == 200 and c.get("/_dash-layout").status_code == 200
    assert c.get("/api/v1/workloads").status_code == 200
    from hopper.engine.errors import ValidationError

    with pytest.raises(ValidationError, match="loopback"):
        build_app(services, host="0.0.0.0", no_auth=True, tensorboard_port=None)  # noqa: S104
