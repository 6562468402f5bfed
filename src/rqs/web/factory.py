"""The app as uvicorn workers build it, from ``RQS_*`` variables."""

from __future__ import annotations

import sys

from starlette.applications import Starlette

from rqs import settings
from rqs.web.app import create_app


def build() -> Starlette:
    # Reader threads and the thread that collects the SQLite writer's answers release the
    # GIL around every SQLite call and pipe read; a short switch interval hands it back to
    # them after 0.2 ms instead of the default 5 ms while the event loop is busy.
    sys.setswitchinterval(0.0002)
    return create_app(settings.from_env())
