"""The Flask JSON API. Handlers call ``engine.services`` only; nothing here imports TensorFlow."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from hopper.engine.errors import HopperError, ScriptRejected, TooBusy
from hopper.engine.services import Services
from hopper.rest import (
    advisor_routes,  # noqa: F401 - registers its routes on ``api`` before any app is built
    note_routes,  # noqa: F401 - the notes' routes, likewise
    schedule_routes,  # noqa: F401 - likewise
    sharing_routes,  # noqa: F401 - likewise
    worker_routes,  # noqa: F401 - registers its routes on ``api`` before any app is built
)
from hopper.rest._api import access_levels, scrub_paths
from hopper.rest._json import OrjsonProvider
from hopper.rest.gate import install_gate
from hopper.rest.openapi import build_document, render_reference
from hopper.rest.routes import api

log = logging.getLogger("hopper.rest")

MAX_BODY_BYTES = 2 * 1024 * 1024
#: Deepest JSON nesting accepted in a request body; deeper bodies are refused before parsing (Python's
#: parser would recurse into a RecursionError, a 500).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_JSON_BRACKETS = re.compile(rb"[\[\]{}]")


def json_depth(raw: bytes) -> int:
    """How deeply a JSON text nests arrays and objects (brackets inside strings ignored), without parsing it."""
    depth = deepest = 0
    for bracket in _JSON_BRACKETS.findall(_JSON_STRING.sub(b'""', raw)):
        if bracket in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest
_CODE_NAMES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type",
               429: "too_busy"}


def error_response(status: int, code: str, message: str, field: str | None = None, **extra: str) -> Response:
    """The one error shape of the API, ``{"error": {code, message, field}}``, so clients parse one format."""
    response = jsonify({"error": {"code": code, "message": message, "field": field, **extra}})
    response.status_code = status
    return response


def create_app(services: Services, *, token: str | Callable[[], str] | None, secret_key: str, flask_app: Flask | None = None,
               ui: bool = False, port: int | None = None, secure_cookies: bool = False) -> Flask:
    """The API on a Flask app (a new one, or the Dash server passed in), behind the one gate (``rest.gate``).

    Args:
        services: user actions on the store.
        token: the bootstrap admin token (or a callable returning the current one); None disables auth
            (loopback only, enforced by ``hopper serve``). People and devices carry their own tokens.
        secret_key: signs the UI's session cookie (a logged-in browser may read the API too).
        flask_app: the server to mount on; ``create_dash`` passes the Dash server.
        ui: the UI is mounted too, so the gate also asks for a login on UI paths.
        port: the port served (with auth off, the gate accepts only loopback Host headers with it).
        secure_cookies: the server is reached over HTTPS (``public_url``): the session cookie is ``Secure`` and
            every answer carries HSTS.
    """
    app = flask_app or Flask("hopper")
    app.json = OrjsonProvider(app)
    app.config.update(HOPPER_SERVICES=services, HOPPER_TOKEN=token, MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
                      SECRET_KEY=secret_key, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=secure_cookies, JSON_SORT_KEYS=False,
                      HOPPER_ROUTE_ACCESS=access_levels(api))
    app.register_blueprint(api.blueprint)
    if os.environ.get("HOPPER_TEST_INVENTORY"):  # the test suite's record of which routes answered
        from hopper.inventory import record_requests

        record_requests(app)
    document = build_document(api)
    document_bytes = app.json.dumps(document).encode()

    install_gate(app, token=token, ui=ui, port=port)

    if secure_cookies:
        @app.after_request
        def _hsts(response: Response) -> Response:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
            return response

    @app.before_request
    def _contract() -> Response | None:
        """After the gate: unknown /api paths are JSON 404s (never the UI's catch-all page), bad Dash asset paths
        404s, and too deeply nested JSON a 400, before anything parses it."""
        path = request.path
        if path.startswith("/api/") or path == "/api":
            rule = request.url_rule
            if rule is None and isinstance(request.routing_exception, MethodNotAllowed):
                pass  # a known resource, another method: the 405 (with Allow) comes from routing
            elif rule is None or not (rule.rule.startswith("/api/") or rule.rule == "/api"):
                return error_response(404, "not_found", f"no API resource at {path}")
        elif path.startswith("/_dash-component-suites/") and _bad_asset_path(path):
            return error_response(404, "not_found", f"no UI asset at {path}")
        if request.method in ("POST", "PUT", "PATCH") and request.is_json:
            raw = request.get_data(cache=True)
            if len(raw) <= MAX_BODY_BYTES and json_depth(raw) > MAX_JSON_DEPTH:
                return error_response(400, "bad_request",
                                      f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels", "body")
        return None

    @app.get("/healthz")
    def healthz() -> Response:
        """Liveness for load balancers and container health checks: no token, no details beyond the store.

        200 ``{"status": "ok", "store": "ok"}`` when the store answers, 503 ``{"status": "unavailable", ...}``
        with the kind of failure (never the URL) when it does not.
        """
        try:
            services.ping_store()
        except HopperError as exc:
            response = jsonify({"status": "unavailable", "store": exc.code})
            response.status_code = 503
            return response
        return jsonify({"status": "ok", "store": "ok"})

    @app.get("/api/openapi.json")
    def openapi() -> Response:
        """The OpenAPI document, built once from the route registry (behind the gate like the API)."""
        response = Response(document_bytes, mimetype="application/json")
        response.add_etag()
        return response.make_conditional(request)

    @app.get("/api/docs")
    def reference() -> Response:
        """A human-readable reference of the same document, served without a CDN."""
        return Response(render_reference(document), mimetype="text/html")

    @app.errorhandler(HopperError)
    def _hopper_error(exc: HopperError) -> Response:
        extra = {"details": scrub_paths(exc.details, services.settings)} \
            if isinstance(exc, ScriptRejected) and exc.details else {}
        status = 422 if isinstance(exc, ScriptRejected) else exc.http_status
        response = error_response(status, exc.code, scrub_paths(exc.message, services.settings), exc.field, **extra)
        if isinstance(exc, TooBusy):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if not request.path.startswith("/api/"):
            return exc
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"the request body is larger than {MAX_BODY_BYTES} bytes"
        response = error_response(exc.code or 500, _CODE_NAMES.get(exc.code, "http_error"), message)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if request.path.startswith("/_dash-component-suites/"):
            # Dash raises on asset paths it cannot resolve (unknown package, traversal): that is a missing file.
            return error_response(404, "not_found", f"no UI asset at {request.path}")
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; the server log has the details")

    return app


def _bad_asset_path(path: str) -> bool:
    """A Dash component-suite path that tries to leave its package (``..``, absolute parts, backslashes, NULs)."""
    parts = path[len("/_dash-component-suites/"):].split("/")
    return any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts)


__all__ = ["MAX_JSON_DEPTH", "create_app", "error_response", "json_depth", "scrub_paths"]
