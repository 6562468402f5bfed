"""WAL checkpoints run beside the SQLite writer's commits, not inside them."""

from __future__ import annotations

from pathlib import Path

from rqs.storage.sqlite import connection
from rqs.storage.sqlite.writer import Checkpoints


def test_a_checkpoint_is_due_past_the_threshold_and_copies_the_whole_wal(
    tmp_path: Path,
) -> None:
    writer = connection.connect(tmp_path / "rqs.db")
    writer.execute("CREATE TABLE t (x BLOB)")
    checkpoints = Checkpoints(writer, connection.connect(tmp_path / "rqs.db"), pages=20)
    assert checkpoints.run_once() is None  # nothing due yet
    writer.execute("INSERT INTO t VALUES (zeroblob(16000))")
    assert not checkpoints.due.is_set()  # a few pages: below the threshold
    for _ in range(30):  # each row fills a 16 KiB page
        writer.execute("INSERT INTO t VALUES (zeroblob(16000))")
    assert checkpoints.due.is_set()
    found = checkpoints.run_once()
    assert found is not None
    frames, copied = found
    assert frames >= 20 and copied == frames  # nothing else held the WAL: all of it
    assert not checkpoints.due.is_set()
    writer.execute("INSERT INTO t VALUES (zeroblob(16000))")  # the WAL restarts: still fine
    assert writer.execute("SELECT count(*) FROM t").fetchall() == [(32,)]
