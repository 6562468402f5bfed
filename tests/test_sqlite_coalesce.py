"""The coalesced writer job: calls share one savepoint until one of them fails; and the
future a delivery record hands back, settled from its coalesced write."""

from __future__ import annotations

import asyncio
from typing import Any

import apsw
import pytest

from rqs.errors import RqsError
from rqs.storage.delivery_base import NewDelivery, Recorded
from rqs.storage.sqlite.coalesce import run_many
from rqs.storage.sqlite.delivery import _settle_record


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


# --- a record's future, settled from its coalesced write ------------------------------------


async def test_a_record_s_future_carries_the_write_s_outcome() -> None:
    loop = asyncio.get_running_loop()
    n = NewDelivery(msg_id="msg_1", domain="d", subscription_id=1, replay_id=0, after_index=0,
                    first_index=1, last_index=1, advance_to=1, count=1, created_at=5)

    def settle(outcome: Any, *, fail: BaseException | None = None,
               waiter_gone: bool = False) -> asyncio.Future[Recorded]:
        written: asyncio.Future[Any] = loop.create_future()
        recorded: asyncio.Future[Recorded] = loop.create_future()
        if waiter_gone:
            recorded.cancel()
        if fail is not None:
            written.set_exception(fail)
        else:
            written.set_result(outcome)
        _settle_record(recorded, n, written)
        return recorded

    ok = settle(((7, "pending"), True)).result()
    assert ok.lane_active and ok.next is not None and ok.next.id == 7
    assert settle((None, False)).result() == Recorded(None, False)
    with pytest.raises(RqsError, match="writer died"):
        settle(None, fail=RqsError("the writer died")).result()
    with pytest.raises(ValueError):  # a result it cannot read fails the future, never hangs
        settle(((7, "no such state"), True)).result()
    gone = settle(None, fail=RqsError("nobody listens"), waiter_gone=True)
    assert gone.cancelled()  # and the write's error was taken: no "never retrieved" log
