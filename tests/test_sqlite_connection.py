"""What every SQLite connection rqs opens is set up with."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from rqs.storage.sqlite.connection import connect


@pytest.mark.parametrize("readonly", [False, True])
def test_connections_are_durable_wal_with_stable_plans(tmp_path: Path, readonly: bool) -> None:
    connect(tmp_path / "rqs.db").close()  # a read-only connection needs the file
    conn = connect(tmp_path / "rqs.db", "FULL", readonly=readonly)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        # Query plans independent of bound values: no re-preparing a statement for every
        # new binding (see connect()).
        assert conn.config(apsw.SQLITE_DBCONFIG_ENABLE_QPSG, -1) == 1
    finally:
        conn.close()
