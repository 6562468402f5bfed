"""``/openapi.json`` and a browsable ``/docs`` page."""

from __future__ import annotations

import functools
import json

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from rqs.web.openapi import spec


# The document is made of constants: build and encode it once per process, not per request.
@functools.cache
def _openapi_body() -> bytes:
    return json.dumps(spec(), ensure_ascii=False, separators=(",", ":")).encode()


@functools.cache
def _docs_body() -> str:
    return render_html(spec())


async def openapi_json(request: Request) -> Response:
    return Response(_openapi_body(), media_type="application/json")


async def docs_page(request: Request) -> Response:
    return HTMLResponse(_docs_body())


def render_html(doc: dict[str, object]) -> str:
    """A self-contained page (no CDN): every operation, its parameters and responses."""
    from html import escape

    info = doc["info"]
    assert isinstance(info, dict)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>rqs API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;"
        "padding:0 1em}code,pre{background:#f4f4f4;padding:2px 4px}h2{border-top:1px solid #ddd;"
        "padding-top:1em}.m{font-weight:bold;display:inline-block;width:5em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;"
        "text-align:left}</style></head><body>",
        f"<h1>{escape(str(info['title']))} {escape(str(info['version']))}</h1>",
        f"<p>{escape(str(info.get('description', '')))}</p>",
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>",
    ]
    paths = doc["paths"]
    assert isinstance(paths, dict)
    for path, ops in paths.items():
        for method, op in ops.items():
            parts.append(f"<h2><span class='m'>{method.upper()}</span><code>{escape(path)}"
                         f"</code></h2><p>{escape(op.get('summary', ''))}</p>")
            if op.get("description"):
                parts.append(f"<p>{escape(op['description'])}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<table><tr><th>parameter</th><th>in</th><th>description</th></tr>")
                for prm in params:
                    parts.append(f"<tr><td><code>{escape(prm['name'])}</code></td>"
                                 f"<td>{escape(prm['in'])}</td>"
                                 f"<td>{escape(prm.get('description', ''))}</td></tr>")
                parts.append("</table>")
            responses = op.get("responses", {})
            parts.append("<p>Responses: " + ", ".join(
                f"<b>{escape(code)}</b> {escape(r.get('description', ''))}"
                for code, r in responses.items()) + "</p>")
    parts.append("</body></html>")
    return "".join(parts)


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs_page, methods=["GET"]),
]
