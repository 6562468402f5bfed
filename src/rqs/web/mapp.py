"""Mapp Engage Response Queue compatibility: ``/api/rest/v{N}/async/...`` (placeholder)."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
