"""A small route registry: one declaration gives the Flask route, body validation and the OpenAPI entry."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from pydantic import BaseModel

from hopper.engine.errors import Unprocessable, ValidationError
from hopper.engine.specs import parse_spec

_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/>])(/[^\s\"'(),:;<>]+)+")


def scrub_paths(text: str, settings: object) -> str:
    """``text`` with the server's own paths named, not spelt: an error answer must not map the server's disk.

    Hopper's directories become ``<artifacts>``, ``<data root>``, ``<hopper home>``; any other absolute path
    (a traceback's ``/usr/lib/python3.11/...``) is cut to its last part.
    """
    named = [(str(getattr(settings, "artifact_dir", "")), "<artifacts>"),
             *((str(root), "<data root>") for root in getattr(settings, "data_roots", ())),
             (str(getattr(settings, "home", "")), "<hopper home>")]
    for path, name in sorted(named, key=lambda item: -len(item[0])):
        if len(path) > 1:
            text = text.replace(path, name)
    return _ABSOLUTE_PATH.sub(lambda m: "…/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


@dataclass(frozen=True)
class Route:
    """One REST operation: the Flask route, its body model and everything the OpenAPI document says of it."""

    method: str
    path: str  # Flask syntax, e.g. /configs/<int:config_id>
    summary: str  # the docstring's first paragraph
    tag: str
    body: type[BaseModel] | None = None
    status: int = 200
    query: tuple[tuple, ...] = ()  # (name, type, description, minimum, maximum)
    errors: tuple[int, ...] = ()
    returns: str = "object"  # "object" | "list" | "page"
    headers: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""  # the rest of the docstring
    access: str = ""  # who may call it (``rest.gate``): read, write, device, artifact, enrol, admin

    @property
    def openapi_path(self) -> str:
        """The path in OpenAPI syntax (``{config_id}``)."""
        return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", self.path)

    @property
    def path_params(self) -> list[str]:
        """The names of the path parameters, in order."""
        return re.findall(r"<(?:\w+:)?(\w+)>", self.path)


class Api:
    """Collects routes on one blueprint under ``prefix``."""

    def __init__(self, prefix: str = "/api/v1") -> None:
        self.prefix = prefix
        self.blueprint = Blueprint("api", __name__, url_prefix=prefix)
        self.routes: list[Route] = []
        self.endpoints: list[str] = []

    def route(self, method: str, path: str, *, tag: str, body: type[BaseModel] | None = None,
              status: int = 200, query: tuple = (), errors: tuple[int, ...] = (), returns: str = "object",
              headers: tuple[str, ...] = (), access: str | None = None) -> Callable:
        """Declare a route; the handler's docstring is its OpenAPI summary (first paragraph) and description.

        The docstring is the one place the operation is described, so the code and the document agree;
        a handler without one is refused at import time. ``access`` is what the gate (``rest.gate``) asks of
        the caller: by default ``read`` for GET (viewers) and ``write`` otherwise (editors).
        """

        def decorate(fn: Callable) -> Callable:
            summary, description = split_docstring(fn)
            level = access or ("read" if method == "GET" else "write")
            spec = Route(method, path, summary, tag, body, status, query, errors, returns, headers, description,
                         level)
            self.routes.append(spec)

            @wraps(fn)
            def view(**kwargs: Any) -> Any:
                check_enum_args(spec)
                if spec.body is not None:
                    kwargs["body"] = parse_spec(spec.body, json_body())
                try:
                    result = fn(**kwargs)
                except ValidationError as exc:
                    if type(exc) is not ValidationError:
                        raise  # its own status: 403 for a path, 422 for a script, 400 for a malformed request
                    # The request matched the document (the body parsed above, query and headers by
                    # RequestInvalid): what the service refuses is its meaning, which is a 422.
                    raise Unprocessable(exc.message, field=exc.field) from exc
                if isinstance(result, tuple | current_app.response_class):
                    return result  # made by the handler (a cached read is conditional already)
                response = jsonify(result)
                response.status_code = spec.status
                if spec.method == "GET" and spec.status == 200:
                    # Pollers (the UI every 2 s, scripts) send the ETag back and get an empty 304 while nothing
                    # changed. It names the content: versions (If-Match) are separate and only on configs.
                    response.add_etag(weak=True)
                    response = response.make_conditional(request)
                return response

            endpoint = f"{fn.__name__}"
            self.endpoints.append(endpoint)
            self.blueprint.add_url_rule(path, endpoint, view, methods=[method])
            return view

        return decorate


def split_docstring(fn: Callable) -> tuple[str, str]:
    """A handler's docstring as (summary, description): first paragraph on one line, then the rest."""
    doc = inspect.getdoc(fn) or ""
    if not doc.strip():
        raise TypeError(f"REST handler {fn.__name__} needs a docstring: it is the OpenAPI summary of the route")
    first, _, rest = doc.strip().partition("\n\n")
    return " ".join(first.split()).rstrip("."), rest.strip()


class RequestInvalid(ValidationError):
    """The request itself is malformed (a query parameter, a header, the body's JSON): always a 400."""


def check_enum_args(route: Route) -> None:
    """A string query parameter whose route lists its values must be one of them: anything else does not match
    the document, a 400 naming the parameter and the values."""
    for name, kind, _description, values, _high in route.query:
        raw = request.args.get(name)
        if kind == "string" and values and raw not in (None, "") and raw not in values:
            raise RequestInvalid(f"query parameter {name} must be one of {', '.join(map(str, values))}", field=name)


def json_body() -> Any:
    """The request's JSON; a wrong content type or malformed JSON is a 400 naming the problem."""
    if not request.is_json:
        raise RequestInvalid("the request body must be JSON (Content-Type: application/json)", field="body")
    data = request.get_json(silent=True)
    if data is None:
        raise RequestInvalid("the request body is not valid JSON", field="body")
    return data


def services():  # noqa: ANN201
    """The ``Services`` of the app handling this request (set by ``create_app``)."""
    return current_app.config["HOPPER_SERVICES"]


def access_levels(api: Api) -> dict[str, str]:
    """Each route's endpoint name on the app mapped to its access level (what the gate reads)."""
    return {f"{api.blueprint.name}.{endpoint}": route.access
            for route, endpoint in zip(api.routes, api.endpoints, strict=True)}


def actor() -> str:
    """Who the audit log names for this request's changes: the authenticated person (or device)."""
    principal = g.get("hopper_principal")
    return principal.name if principal is not None else "api"


def principal():  # noqa: ANN201
    """The authenticated caller of this request (``hopper.engine.entities.Principal``), set by the gate."""
    return g.get("hopper_principal")


def int_arg(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter in [low, high]; anything else is a 400 naming the parameter."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RequestInvalid(f"query parameter {name} must be an integer", field=name) from None
    if not low <= value <= high:
        raise RequestInvalid(f"query parameter {name} must be in [{low}, {high}]", field=name)
    return value
