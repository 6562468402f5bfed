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
