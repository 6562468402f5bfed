from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rqs.settings import Settings
from tests.support import Server, running_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """rqs on SQLite, over real HTTP."""
    with running_server(Settings(data_dir=tmp_path, max_batch_items=100_000)) as srv:
        yield srv


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """rqs over real HTTP on each backend (PostgreSQL scans stream their rows)."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    settings = Settings(data_dir=tmp_path, database_url=url, max_batch_items=100_000)
    with running_server(settings) as srv:
        yield srv
