"""/openapi.json and /docs over real HTTP: public, and complete."""

from __future__ import annotations

import httpx

from tests.support import Server


def test_openapi_json_is_served_without_credentials(server: Server) -> None:
    r = httpx.get(server.url + "/openapi.json", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"] == "3.1.0"
    assert "/v1/events" in doc["paths"]
    assert "/api/rest/v{version}/async/pollByType" in doc["paths"]


def test_docs_page_lists_every_operation(server: Server) -> None:
    r = httpx.get(server.url + "/docs", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "pollByType" in page
    for path in httpx.get(server.url + "/openapi.json", timeout=30).json()["paths"]:
        assert path.replace("&", "&amp;") in page, path
