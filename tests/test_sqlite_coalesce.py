"""The coalesced writer job: calls share one savepoint until one of them fails."""

from __future__ import annotations

from typing import Any

import apsw
import pytest

from rqs.errors import RqsError
from rqs.storage.sqlite.coalesce import run_many


@pytest.fixture
def db() -> apsw.Connection:
    c = apsw.Connection(":memory:")
    c.execute("CREATE TABLE t (v INTEGER NOT NULL)")
    c.execute("BEGIN")
    return c


def insert(c: apsw.Connection, v: int) -> int:
    c.execute("INSERT INTO t (v) VALUES (?)", (v,))
    if v < 0:
        raise ValueError(f"negative: {v}")
    return v * 10


def stored(c: apsw.Connection) -> list[int]:
    return [r[0] for r in c.execute("SELECT v FROM t ORDER BY rowid")]


def test_every_call_succeeding_keeps_every_change(db: apsw.Connection) -> None:
    assert run_many(db, insert, [(1,), (2,), (3,)]) == [(True, 10), (True, 20), (True, 30)]
    assert stored(db) == [1, 2, 3]


def test_a_failing_call_changes_nothing_and_the_others_still_apply(db: apsw.Connection) -> None:
    out: list[tuple[bool, Any]] = run_many(db, insert, [(1,), (-2,), (3,)])
    assert [ok for ok, _ in out] == [True, False, True]
    assert out[0][1] == 10 and out[2][1] == 30
    assert isinstance(out[1][1], RqsError) and "negative: -2" in str(out[1][1])
    # Each change once: the optimistic pass was rolled back before the one-by-one pass.
    assert stored(db) == [1, 3]
    assert db.in_transaction  # the job's outer transaction is the writer's to end
