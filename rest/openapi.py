"""The OpenAPI 3 document, generated from the route registry and the pydantic request models."""

from __future__ import annotations

import html

from pydantic import BaseModel

from hopper import __version__
from hopper.rest._api import Api

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": ["string", "null"]},
        "details": {"type": "string"}}}},
}
_ERROR_TEXT = {400: "Invalid input", 401: "Missing token", 403: "Bad token or path outside the data roots",
               404: "Not found", 409: "Version conflict or wrong state", 413: "Body too large",
               422: "Well-formed but refused for its meaning: it names something that does not exist, a space "
                    "outside its parent's, hyperparameters the model does not take, a script that does not run"}


def _schema_for(model: type[BaseModel], components: dict) -> dict:
    """A $ref to the model's JSON schema, with the schema (and its $defs) added to ``components``."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_document(api: Api) -> dict:
    """The OpenAPI 3.1 document of ``api``: paths, parameters, bodies and error responses per route.

    Summaries and descriptions are the handlers' docstrings (see ``Api.route``).
    """
    components: dict = {"Error": ERROR_SCHEMA}
    paths: dict = {}
    for route in api.routes:
        op: dict = {"summary": route.summary, "tags": [route.tag], "operationId": f"{route.method.lower()}"
                    f"_{route.openapi_path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"}
        if route.description:
            op["description"] = route.description
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0,
                                                                                      "maximum": 2**31 - 1}}
                  for p in route.path_params]
        params += [{"name": n, "in": "query", "required": False, "description": d,
                    "schema": {"type": t, **({"minimum": lo, "maximum": hi} if t == "integer" else
                                             {"enum": list(lo)} if lo else {})}}
                   for n, t, d, lo, hi in route.query]
        if route.body is not None and route.body.__name__ in ("VersionedBody", "CloneBody", "PriorityBody"):
            params.append({"name": "If-Match", "in": "header", "required": False,
                           "description": "the config's ETag (its version), or * for any version",
                           "schema": {"type": "string", "pattern": r'^\s*(\*|(W/)?"?[0-9]+"?)\s*$'}})
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": _schema_for(route.body, components)}}}
        if route.returns == "list":
            body_schema: dict = {"type": "array", "items": {"type": "object"}}
        elif route.returns == "page":
            body_schema = {"type": "object", "required": ["items", "total", "limit", "offset"], "properties": {
                "items": {"type": "array", "items": {"type": "object"}}, "total": {"type": "integer"},
                "limit": {"type": "integer"}, "offset": {"type": "integer"}}}
        elif route.returns == "list_or_object":
            body_schema = {"type": ["array", "object"]}
        else:
            body_schema = {"type": "object"}
        if route.returns == "binary":
            responses = {str(route.status): {"description": "OK", "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}}}
        else:
            responses = {str(route.status): {"description": "OK",
                                             "content": {"application/json": {"schema": body_schema}}}}
            if route.method == "GET":
                responses[str(route.status)]["headers"] = {"ETag": {
                    "description": "names this content; send it back as If-None-Match to get a 304 while it is "
                                   "unchanged (on a config, the ETag is its version, for If-Match)",
                    "schema": {"type": "string"}}}
                responses["304"] = {"description": "Not modified: If-None-Match named the current content"}
        # 422: the request matched this document but the service refused what it means (a name that refers to
        # nothing, a space outside its parent's, a script that does not run); any input can carry that.
        has_input = bool(route.body or route.query or route.path_params)
        for code in sorted({401, 403, *route.errors, *((400, 413) if route.body else ()), *((400,) if route.query else ()),
                            *((404,) if route.path_params else ()), *((422,) if has_input else ())}):
            responses[str(code)] = {"description": _ERROR_TEXT.get(code, "Error"),
                                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        op["responses"] = responses
        paths.setdefault(api.prefix + route.openapi_path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",  # pydantic writes JSON Schema 2020-12, which is what OpenAPI 3.1 uses
        "info": {"title": "Hopper REST API", "version": __version__,
                 "description": "Steer model-selection workloads. Every endpoint needs `Authorization: Bearer "
                                "<token>` (see `hopper token`). Errors are `{\"error\": {code, message, field}}`."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


def render_reference(document: dict) -> str:
    """A self-contained HTML reference page (no CDN: Hopper may run without internet)."""
    rows = []
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            body_name = body.get("$ref", "").rsplit("/", 1)[-1]
            codes = ", ".join(op["responses"])
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op['summary'])}</td><td>{html.escape(body_name)}</td><td>{codes}</td></tr>")
    schemas = "".join(
        f"<h3 id='{html.escape(name)}'>{html.escape(name)}</h3><pre>{html.escape(_pretty(schema))}</pre>"
        for name, schema in document["components"]["schemas"].items())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Hopper REST API</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2rem;max-width:75rem}table{border-collapse:collapse}"
            "td,th{border-bottom:1px solid #ddd;padding:.35rem .6rem;text-align:left}pre{background:#f6f8fa;"
            "padding:.6rem;overflow:auto}</style></head><body>"
            f"<h1>Hopper REST API {html.escape(document['info']['version'])}</h1>"
            f"<p>{html.escape(document['info']['description'])}</p>"
            "<p>Machine-readable: <a href='/api/openapi.json'>/api/openapi.json</a></p>"
            "<table><tr><th>method</th><th>path</th><th>what</th><th>body</th><th>responses</th></tr>"
            + "".join(rows) + "</table><h2>Schemas</h2>" + schemas + "</body></html>")


def _pretty(schema: dict) -> str:
    import json

    return json.dumps(schema, indent=2)
