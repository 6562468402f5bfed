"""``/dashboard``: a live page drawn in the browser from the public APIs.

The page and its script are static files in this package; the browser asks for a key's
token and calls ``/v1/stats``, ``/v1/events`` and ``/v1/consumers`` with it, so the dashboard
sees exactly what that key may see, and serving it needs no credentials.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@functools.cache
def _static(name: str) -> bytes:
    return resources.files("rqs.web").joinpath("static", name).read_bytes()


@functools.cache
def csp() -> str:
    """Nothing but this server: no CDN, no inline script, and of inline styles only the
    page's own style sheet (by its hash). Event data is written as text only."""
    found = re.search(rb"<style>(.*?)</style>", _static("dashboard.html"), re.S)
    assert found is not None, "dashboard.html has its style sheet inline"
    digest = base64.b64encode(hashlib.sha256(found.group(1)).digest()).decode()
    return ("default-src 'none'; script-src 'self'; connect-src 'self'; "
            f"style-src 'sha256-{digest}'; img-src 'self'; object-src 'none'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


async def dashboard_page(request: Request) -> Response:
    return Response(_static("dashboard.html"), media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": csp(), "Cache-Control": "no-cache",
                             "Referrer-Policy": "no-referrer",
                             "X-Content-Type-Options": "nosniff"})


async def dashboard_script(request: Request) -> Response:
    return Response(_static("dashboard.js"), media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


routes = [
    Route("/dashboard", dashboard_page, methods=["GET"]),
    Route("/dashboard.js", dashboard_script, methods=["GET"]),
]
