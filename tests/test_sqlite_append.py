"""SQLite-specific bookkeeping of appends (the contract suite checks what readers see)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from rqs.domain.events import NewEvent
from rqs.errors import StorageUnavailable
from rqs.settings import Settings
from rqs.storage.sqlite.store import SqliteStorage


async def test_an_empty_append_writes_no_commit_row_and_no_runs(tmp_path: Path) -> None:
    store = SqliteStorage(Settings(data_dir=tmp_path))
    await store.open()
    try:
        await store.append("d", [])
        await store.append("d", [NewEvent("EMAIL_BOUNCED", "Email", b"{}")])
        await store.append("d", [])
        commits = await store._read(lambda c: list(c.execute(
            "SELECT first_index, last_index FROM commits ORDER BY first_index")))
        runs = await store._read(lambda c: list(c.execute("SELECT count(*) FROM type_runs")))
    finally:
        await store.close()
    assert commits == [(1, 1)]
    assert runs == [(1,)]


async def test_appends_fail_fast_once_the_writer_process_is_gone(tmp_path: Path) -> None:
    store = SqliteStorage(Settings(data_dir=tmp_path))
    await store.open()
    try:
        await store.append("d", [NewEvent("EMAIL_BOUNCED", "Email", b"{}")])
        proc = store._writer._proc
        assert proc is not None and proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        for _ in range(2):  # whether sent before or after the death is noticed: no hang
            with pytest.raises(StorageUnavailable):
                await asyncio.wait_for(
                    store.append("d", [NewEvent("EMAIL_BOUNCED", "Email", b"{}")]), 30)
    finally:
        await store.close()
