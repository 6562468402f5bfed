"""The app as uvicorn workers build it, from ``RQS_*`` variables."""

from __future__ import annotations

from starlette.applications import Starlette

from rqs import settings
from rqs.runtime import tune_interpreter
from rqs.web.app import create_app


def build() -> Starlette:
    tune_interpreter()
    return create_app(settings.from_env())
