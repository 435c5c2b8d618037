"""The one authentication gate of the web server: every request to the REST API and the UI passes here.

``hopper serve`` runs the REST API and the Dash UI on one Flask server; this gate, one ``before_request``
hook, decides for every path who may pass, so no route and no Dash endpoint can be left outside it. It
authenticates the caller into a ``Principal`` (``flask.g.hopper_principal``; the audit log names it) and
checks the route's access level (declared on the route, ``rest._api.Route.access``) against its role:

* ``/healthz``: open (load balancers and container health checks carry no token).
* ``/api/...``: ``Authorization: Bearer <token>`` (the bootstrap admin token, a person's token, a device's token
  or an enrolment token; an unknown one is 403), or the session cookie of a person who logged in; otherwise
  401 with ``WWW-Authenticate``. Viewers read; editors also steer and launch; admins do everything. A device
  token reaches only the device routes, and only for its own device and the jobs it holds; an enrolment token
  only registers a device. Refusals are 403 JSON.
* everything else, when the UI is mounted: a person's live server-side session. Pages redirect to ``/login``;
  Dash's ``/_dash-*`` requests and non-GETs get 401 JSON. ``/login`` and its stylesheet are open.
* auth disabled (token None, which ``hopper serve`` allows on loopback only): everything passes as the local
  admin, but only for a loopback ``Host`` header (127.0.0.1, localhost, [::1]): a page of another origin that
  rebinds its DNS name to 127.0.0.1 gets 400.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context, jsonify, redirect, request, session

from hopper.engine.entities import Principal, Role
from hopper.engine.errors import NotPermitted

OPEN_PATHS = frozenset({"/healthz"})
LOGIN_PATHS = frozenset({"/login", "/assets/hopper.css"})
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
LOCAL = Principal("local", Role.ADMIN)  # auth off: the person at this machine

# What each access level lets in (admins pass everywhere).
READ, WRITE, DEVICE, ARTIFACT, ENROL, ADMIN = "read", "write", "device", "artifact", "enrol", "admin"
_ALLOWED = {
    Role.EDITOR: {READ, WRITE, ARTIFACT},
    Role.VIEWER: {READ, ARTIFACT},
    Role.DEVICE: {DEVICE, ARTIFACT, ENROL},
    Role.ENROL: {ENROL},
}


def _error(status: int, code: str, message: str, field: str | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "field": field}})
    response.status_code = status
    return response


def host_allowed(host: str, port: int | None) -> bool:
    """Whether a ``Host`` header names this machine's loopback (with the server's port, when it is known)."""
    for name in LOOPBACK_HOSTS:
        if host == name:
            return True
        if host.startswith(name + ":"):
            rest = host[len(name) + 1:]
            return rest.isdigit() and (port is None or int(rest) == port)
    return False


def current_principal() -> Principal | None:
    """Who is calling in this request (None outside a request, e.g. in unit tests of callbacks)."""
    if not has_request_context():
        return None
    return g.get("hopper_principal")


def require_editor(default: str = "web") -> str:
    """The caller's name for the audit log, refusing viewers: UI actions that change things call this first."""
    principal = current_principal()
    if principal is None:
        return default
    if principal.role not in (Role.ADMIN, Role.EDITOR):
        raise NotPermitted(f"{principal.name} is a {principal.role}: only editors and admins change things")
    return principal.name


def _device_scope(principal: Principal, access: str, view_args: dict[str, Any]) -> str | None:
    """Why a device may not make this call (None: it may): only its own device, its own jobs and exports."""
    services = current_app.config["HOPPER_SERVICES"]
    if "device_id" in view_args and view_args["device_id"] != principal.device_id:
        return "a device token may act only for its own device"
    if "job_id" in view_args:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or body.get("device_id") != principal.device_id:
            return "a device token may report only its own jobs (device_id must be this device's id)"
        if not services.device_holds_job(principal.device_id, view_args["job_id"]):
            return "this job is not held by this device"
    if "export_id" in view_args and not services.device_holds_export(principal.device_id, view_args["export_id"]):
        return "a device may download only the exports of the jobs it holds"
    if access == ENROL:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or f"device:{body.get('name')}" != principal.name:
            return "a device token may re-register only its own device (same name)"
    return None


def authorize(principal: Principal, access: str, view_args: dict[str, Any]) -> Response | None:
    """The verdict for an authenticated caller on a route of ``access`` level: None lets it through."""
    if principal.role == Role.ADMIN:
        return None
    if access not in _ALLOWED.get(principal.role, set()):
        return _error(403, "forbidden", f"{principal.name} ({principal.role}) may not call {request.method} "
                      f"{request.path}: it needs {'an admin' if access == ADMIN else 'another role'}")
    if principal.role == Role.DEVICE:
        reason = _device_scope(principal, access, view_args)
        if reason:
            return _error(403, "forbidden", reason)
    return None


def _route_access() -> str:
    rule = request.url_rule
    registry = current_app.config.get("HOPPER_ROUTE_ACCESS", {})
    if rule is not None and rule.endpoint in registry:
        return registry[rule.endpoint]
    return READ if request.method in ("GET", "HEAD", "OPTIONS") else WRITE


def _authenticate(token: str | None) -> tuple[Principal | None, Response | None]:
    services = current_app.config["HOPPER_SERVICES"]
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        principal = services.authenticate(authorization[len("Bearer "):], admin_token=token)
        if principal is None:
            return None, _error(403, "forbidden", "the token is not valid (unknown, revoked or already used)")
        return principal, None
    sid = session.get("sid")
    if isinstance(sid, str):
        principal = services.session_principal(sid, admin_token=token)
        if principal is not None:
            return principal, None
        session.clear()  # logged out, expired or revoked: the cookie is dropped
    return None, None


def decide(token: str | Callable[[], str] | None, ui: bool, port: int | None) -> Response | None:
    """The gate's verdict for the current request: None lets it through, a response turns it away.

    ``token`` is the bootstrap admin token, or a callable returning the current one (``rest.auth.AdminTokenFile``).
    """
    path = request.path
    if callable(token):
        token = token()
    if token is None:
        if not host_allowed(request.host, port):
            return _error(400, "bad_host", f"Host {request.host!r} is not this machine's loopback: with auth off "
                          "only 127.0.0.1, localhost and [::1] are served (DNS rebinding)", field="Host")
        g.hopper_principal = LOCAL
        return None
    if path in OPEN_PATHS:
        return None
    principal, refusal = _authenticate(token)
    if refusal is not None:
        return refusal
    if principal is not None:
        g.hopper_principal = principal
    if path.startswith("/api/"):
        if principal is None:
            response = _error(401, "unauthorized", "send Authorization: Bearer <token> (see `hopper token`)")
            response.headers["WWW-Authenticate"] = 'Bearer realm="hopper"'
            return response
        return authorize(principal, _route_access(), request.view_args or {})
    if not ui or path in LOGIN_PATHS:
        return None  # without the UI, other paths are the API's own 404s
    if principal is not None and principal.role in Role.PEOPLE:
        return None
    if principal is not None:
        return _error(403, "forbidden", "the UI is for people: a device or enrolment token cannot open it")
    if request.method == "GET" and not path.startswith("/_dash"):
        return redirect("/login")
    return _error(401, "unauthorized", "log in first")


def admin_token() -> str | None:
    """The bootstrap admin token in force for this app (None: auth off)."""
    state = current_app.extensions["hopper_gate"]
    token = state["token"]
    return token() if callable(token) else token


def install_gate(app: Flask, *, token: str | Callable[[], str] | None, ui: bool, port: int | None = None) -> None:
    """Put the gate in front of every route of ``app``; a second call only widens it to the UI.

    ``create_app`` installs it for the API; ``create_dash`` mounts the API on the Dash server and asks for the
    UI rules as well. One hook, whichever of them built the server.
    """
    state = app.extensions.get("hopper_gate")
    if state is not None:
        state["ui"] = state["ui"] or ui
        state["token"] = token
        state["port"] = port if port is not None else state["port"]
        return
    state = app.extensions["hopper_gate"] = {"token": token, "ui": ui, "port": port}

    @app.before_request
    def _gate() -> Response | None:
        return decide(state["token"], state["ui"], state["port"])


__all__ = ["LOGIN_PATHS", "LOOPBACK_HOSTS", "OPEN_PATHS", "authorize", "current_principal", "decide",
           "host_allowed", "install_gate", "require_editor"]
