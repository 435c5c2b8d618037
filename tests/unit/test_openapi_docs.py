"""The REST reference documents itself: each operation's summary and description are its handler's docstring."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from hopper.rest import routes
from hopper.rest._api import Api
from hopper.rest.openapi import build_document

ROOT = Path(__file__).resolve().parents[2]


def _operations(document: dict) -> list[tuple[str, str, dict]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_every_operation_has_a_summary_from_its_docstring():
    document = build_document(routes.api)
    operations = _operations(document)
    assert len(operations) == len(routes.api.routes) >= 40
    for method, path, op in operations:
        assert op["summary"].strip(), f"{method.upper()} {path} has no summary"
        assert "\n" not in op["summary"] and not op["summary"].endswith(".")
    # the first paragraph is the summary, the rest the description
    deploy = document["paths"]["/api/v1/configs/{config_id}/deploy"]["post"]
    doc = inspect.getdoc(routes.deploy_config)
    assert deploy["summary"] == " ".join(doc.split("\n\n")[0].split()).rstrip(".")
    assert "requested" in deploy["description"] and "export worker" in deploy["summary"]
    assert "description" not in document["paths"]["/api/v1/workloads"]["get"]  # one-paragraph docstring


def test_a_handler_without_a_docstring_is_refused():
    api = Api()
    with pytest.raises(TypeError, match="undocumented needs a docstring"):
        @api.route("GET", "/x", tag="t")
        def undocumented():  # noqa: ANN202
            return {}
    assert api.routes == []


@pytest.mark.parametrize("package", ["rest", "webui"])
def test_every_public_function_in_the_web_layer_has_a_docstring(package):
    missing = []
    for path in sorted((ROOT / package).glob("*.py")):
        tree = ast.parse(path.read_text())
        # module-level functions and methods; functions nested in a function are its private helpers
        nodes = [*tree.body, *(n for c in tree.body if isinstance(c, ast.ClassDef) for n in c.body)]
        for node in nodes:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and not ast.get_docstring(node):
                missing.append(f"{package}/{path.name}:{node.lineno} {node.name}")
    assert missing == []
