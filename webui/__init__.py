"""The Dash web UI. It talks to ``engine.services`` only and never imports TensorFlow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dash
from flask import Flask, Response, redirect, request, session

from hopper.engine.entities import Role
from hopper.engine.services import Services
from hopper.engine.services.data import MAX_DATASET_UPLOAD_BYTES
from hopper.rest.gate import admin_token
from hopper.webui import callbacks, layout

# A dataset dropped on the Data & scripts page arrives base64-encoded (4/3 of its size) inside one Dash callback
# request, beside the form's other values.
DASH_CALLBACK_BYTES = MAX_DATASET_UPLOAD_BYTES * 4 // 3 + 1_000_000
_DASH_CALLBACK_PATH = "/_dash-update-component"

_LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Hopper: log in</title>
<link rel="stylesheet" href="/assets/hopper.css"></head><body><div class="login">
<h1>Hopper</h1><p>Paste your token (<code>hopper user add</code> gave it to you; the admin's:
<code>hopper token</code>).</p>
<form method="post" action="/login"><label class="field-label" for="token">Token</label>
<input class="input" id="token" name="token" type="password" autofocus autocomplete="current-password">
<p class="notice"><span class="error">{error}</span></p>
<button class="button primary" id="login-button" type="submit">Log in</button></form></div></body></html>"""


def create_dash(services: Services, *, token: str | Callable[[], str] | None, secret_key: str,
                tensorboard_url: Callable[[], str | None] = lambda: None, server: Flask | None = None,
                port: int | None = None, secure_cookies: bool = False) -> dash.Dash:
    """The UI (and, on the same Flask server, the REST API).

    Args:
        services: user actions on the store.
        token: the bootstrap admin token; None disables the login (loopback only). People log in with their
            own tokens (``hopper user add``) too.
        secret_key: signs the session cookie.
        tensorboard_url: returns the URL of the TensorBoard process for the iframe (or None).
    """
    # Plotly imports pandas on its first figure; two callback threads racing that import met a half-initialised
    # module ("partially initialized module 'pandas' has no attribute 'NaT'") and failed their callbacks.
    import pandas  # noqa: F401

    from hopper.rest import create_app

    server = server or Flask("hopper")
    app = dash.Dash("hopper", server=server, title="Hopper", suppress_callback_exceptions=True,
                    assets_folder=str(Path(__file__).parent / "assets"), update_title=None)
    app.layout = layout.shell(token is not None)
    # one gate for the API and the UI: create_app installs it, ui=True adds the login rules for UI paths
    create_app(services, token=token, secret_key=secret_key, flask_app=server, ui=True, port=port,
               secure_cookies=secure_cookies)
    callbacks.register_callbacks(app, services, tensorboard_url)

    def room_for_uploads() -> None:
        """The API's body limit (2 MiB) would answer an upload's callback with a 413 the page never shows; the
        callback path alone gets room for the largest upload the services take (they refuse larger files with a
        notice). First among the hooks, since the API's contract hook reads JSON bodies; it only sets the limit, and the
        gate, which reads no body on this path, still refuses a caller without a session before anything reads it."""
        if request.path == _DASH_CALLBACK_PATH:
            request.max_content_length = DASH_CALLBACK_BYTES

    server.before_request_funcs.setdefault(None, []).insert(0, room_for_uploads)

    @server.route("/login", methods=["GET", "POST"])
    def login() -> Response:
        """The login form: a person's token (or the admin token) opens a server-side session (``rest.gate``)."""
        if request.method == "POST":
            if token is None:
                return redirect("/")
            principal = services.authenticate(request.form.get("token", ""), admin_token=admin_token())
            if principal is not None and principal.role in Role.PEOPLE:
                session.clear()
                session["sid"] = services.open_session(principal, admin_token=admin_token())
                return redirect("/")
            return Response(_LOGIN_PAGE.format(error="That token is not valid."), status=403, mimetype="text/html")
        return Response(_LOGIN_PAGE.format(error=""), mimetype="text/html")

    @server.route("/logout")
    def logout() -> Response:
        """End the session on the server (a copy of the cookie stops working too); the login form comes next."""
        sid = session.get("sid")
        if isinstance(sid, str):
            services.close_session(sid)
        session.clear()
        return redirect("/login")

    return app
