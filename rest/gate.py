"""The one authentication gate of the web server: every request to the REST API and the UI passes here.

``hopper serve`` runs the REST API and the Dash UI on one Flask server; this gate, one ``before_request``
hook, decides for every path who may pass, so no route and no Dash endpoint can be left outside it:

* ``/healthz``: open (load balancers and container health checks carry no token).
* ``/api/...``: ``Authorization: Bearer <token>`` (a wrong token is 403), or the session cookie of a
  browser that logged in (the API reference page is read that way); otherwise 401 with ``WWW-Authenticate``.
* everything else, when the UI is mounted: a logged-in session. Pages redirect to ``/login``; Dash's
  ``/_dash-*`` requests (XHRs that cannot follow a redirect to a form) and non-GETs get 401 JSON.
  ``/login`` and its stylesheet are open.
* auth disabled (token None, which ``hopper serve`` allows on loopback only): everything passes.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, redirect, request, session

from hopper.rest.auth import token_matches

OPEN_PATHS = frozenset({"/healthz"})
LOGIN_PATHS = frozenset({"/login", "/assets/hopper.css"})


def _error(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "field": None}})
    response.status_code = status
    return response


def decide(path: str, method: str, authorization: str, logged_in: bool, *, token: str | None,
           ui: bool) -> Response | None:
    """The gate's verdict for one request: None lets it through, a response turns it away.

    A plain function of the request's parts so that the rules read (and test) in one place.
    """
    if token is None or path in OPEN_PATHS:
        return None
    if path.startswith("/api/"):
        if authorization.startswith("Bearer "):
            if token_matches(authorization[len("Bearer "):].strip(), token):
                return None
            return _error(403, "forbidden", "the token is not valid")
        if logged_in:
            return None
        response = _error(401, "unauthorized", "send Authorization: Bearer <token> (see `hopper token`)")
        response.headers["WWW-Authenticate"] = 'Bearer realm="hopper"'
        return response
    if not ui or path in LOGIN_PATHS or logged_in:
        return None  # without the UI, other paths are the API's own 404s
    if method == "GET" and not path.startswith("/_dash"):
        return redirect("/login")
    return _error(401, "unauthorized", "log in first")


def install_gate(app: Flask, *, token: str | None, ui: bool) -> None:
    """Put the gate in front of every route of ``app``; a second call only widens it to the UI.

    ``create_app`` installs it for the API; ``create_dash`` mounts the API on the Dash server and asks for the
    UI rules as well. One hook, whichever of them built the server.
    """
    state = app.extensions.get("hopper_gate")
    if state is not None:
        state["ui"] = state["ui"] or ui
        state["token"] = token
        return
    state = app.extensions["hopper_gate"] = {"token": token, "ui": ui}

    @app.before_request
    def _gate() -> Response | None:
        return decide(request.path, request.method, request.headers.get("Authorization", ""),
                      bool(session.get("authenticated")), token=state["token"], ui=state["ui"])


__all__ = ["LOGIN_PATHS", "OPEN_PATHS", "decide", "install_gate"]
