"""The OpenAPI document: it describes exactly the routes the app mounts, and is valid 3.1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openapi_spec_validator import validate
from starlette.routing import Match, Route

from rqs.settings import Settings
from rqs.web import mapp
from rqs.web.app import create_app
from rqs.web.openapi import spec

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
PARAM = re.compile(r"\{[^}]*\}")


def normal(path: str) -> str:
    """A path template with its parameter names dropped: /v1/events/{index} -> /v1/events/{}."""
    return PARAM.sub("{}", path)


def mounted_routes(tmp_path: Path) -> list[Route]:
    app = create_app(Settings(data_dir=tmp_path), background=False)
    routes = []
    for route in app.routes:
        assert isinstance(route, Route), f"unexpected route type {route!r}"
        routes.append(route)
    return routes


def mounted(tmp_path: Path) -> set[tuple[str, str]]:
    """(template, method) for every route; HEAD (which Starlette adds to GET) left out.

    The Mapp API is one route, ``/api/rest/v{version}/async/{method}``, dispatching on
    ``method``: it is expanded to one template per method it serves.
    """
    found = set()
    for route in mounted_routes(tmp_path):
        templates = [route.path_format]
        if route.endpoint is mapp.dispatch:
            templates = [route.path_format.replace("{method}", m) for m in mapp.HANDLERS]
        for template in templates:
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((normal(template), method.lower()))
    return found


def documented() -> set[tuple[str, str]]:
    paths = spec()["paths"]
    assert isinstance(paths, dict)
    return {(normal(p), m) for p, ops in paths.items() for m in ops if m in HTTP_METHODS}


def test_every_mounted_route_is_documented_and_every_documented_one_mounted(
        tmp_path: Path) -> None:
    app_side, doc_side = mounted(tmp_path), documented()
    assert sorted(app_side - doc_side) == [], "routes missing from the OpenAPI document"
    assert sorted(doc_side - app_side) == [], "documented operations the app does not serve"


def _sample(template: str, operation: dict[str, object]) -> str:
    """The template with a value in each parameter that its declared schema allows."""
    params = {p["name"]: p for p in operation.get("parameters", [])
              if p["in"] == "path"}

    def value(m: re.Match[str]) -> str:
        schema = params[m.group()[1:-1]]["schema"]
        if schema.get("type") == "integer":
            return str(schema.get("maximum", 7))
        return "x"

    return PARAM.sub(value, template)


def test_every_documented_path_is_routed_to_a_handler(tmp_path: Path) -> None:
    routes = mounted_routes(tmp_path)
    paths = spec()["paths"]
    assert isinstance(paths, dict)
    for template, ops in paths.items():
        for method, operation in ops.items():
            concrete = _sample(template, operation)
            scope = {"type": "http", "path": concrete, "root_path": "",
                     "method": method.upper()}
            assert any(r.matches(scope)[0] is Match.FULL for r in routes), (method, concrete)


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = spec()
    assert doc["openapi"] == "3.1.0"
    validate(json.loads(json.dumps(doc)))  # also proves it is plain JSON


def test_every_operation_renders_on_the_docs_page() -> None:
    # /docs shows summary, parameters (name, in, description) and response descriptions.
    paths = spec()["paths"]
    assert isinstance(paths, dict)
    for template, ops in paths.items():
        assert set(ops) <= HTTP_METHODS, template  # no path-level keys: /docs iterates them
        for method, operation in ops.items():
            assert operation["summary"], (method, template)
            for p in operation.get("parameters", []):
                assert p["description"], (method, template, p["name"])
            for code, response in operation["responses"].items():
                assert response["description"], (method, template, code)


@pytest.mark.parametrize("method", sorted(mapp.SINCE))
def test_mapp_methods_document_their_version_gate(method: str) -> None:
    paths = spec()["paths"]
    assert isinstance(paths, dict)
    operation = paths[f"/api/rest/v{{version}}/async/{method}"]["get"]
    version = next(p for p in operation["parameters"] if p["name"] == "version")
    assert version["schema"]["minimum"] == mapp.SINCE[method]
    assert version["schema"]["maximum"] == mapp.MAX_VERSION
    assert set(operation["responses"]["200"]["content"]) == {"application/json",
                                                             "application/xml"}
