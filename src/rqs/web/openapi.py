"""The OpenAPI document (placeholder until the full spec lands)."""

from __future__ import annotations

from rqs import __version__


def spec() -> dict[str, object]:
    return {"openapi": "3.1.0", "info": {"title": "rqs", "version": __version__}, "paths": {}}
