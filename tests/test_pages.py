"""``Streamed``: queries whose rows arrive as produced, fed to ``pipelined`` by chunks;
``in_thread``: a blocking query's chunks handed from its thread to the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from rqs.domain.events import StoredEvent
from rqs.errors import StorageUnavailable
from rqs.storage import pages
from rqs.storage.pages import Streamed, in_thread, pipelined


def event(index: int) -> StoredEvent:
    return StoredEvent("d", index, "EMAIL_SENT", "Email", index, b"{}", None, None)


class Source:
    """Events 1..total; each query yields chunks and records what it was asked for."""

    def __init__(self, total: int, chunk: int, fail_at: int | None = None) -> None:
        self.total, self.chunk, self.fail_at = total, chunk, fail_at
        self.pos = 0
        self.asked: list[int] = []
        self.finished = 0  # queries that ran to their end

    async def query(self, n: int) -> AsyncIterator[list[StoredEvent]]:
        self.asked.append(n)
        end = min(self.pos + n, self.total)
        while self.pos < end:
            await asyncio.sleep(0)  # rows arrive over several loop turns
            stop = min(self.pos + self.chunk, end)
            if self.fail_at is not None and self.pos < self.fail_at <= stop:
                raise RuntimeError("the database went away")
            rows = [event(i) for i in range(self.pos + 1, stop + 1)]
            self.pos = stop
            yield rows
        self.finished += 1


async def encode(rows: list[StoredEvent]) -> list[int]:
    return [e.index for e in rows]


def encoder(rows: list[StoredEvent]) -> asyncio.Future[list[int]]:
    return asyncio.ensure_future(encode(rows))


async def read_all(source: Source, limit: int, chunk: int, per_query: int) -> list[int]:
    stream = Streamed(source.query, limit, per_query)
    out: list[int] = []
    try:
        async for page in pipelined(stream.take, encoder, limit, chunk):
            assert len(page) <= chunk
            out.extend(page)
    finally:
        await stream.close()
    return out


async def test_every_event_once_in_order_up_to_the_limit() -> None:
    source = Source(total=95, chunk=10)
    assert await read_all(source, limit=1000, chunk=10, per_query=30) == list(range(1, 96))
    assert source.asked == [30, 30, 30, 30]  # the fourth found 5 and ended the scan

    source = Source(total=95, chunk=10)
    assert await read_all(source, limit=45, chunk=10, per_query=20) == list(range(1, 46))
    assert source.asked == [20, 20, 5]


async def test_the_next_query_waits_for_the_caller() -> None:
    source = Source(total=1000, chunk=10)
    stream = Streamed(source.query, 1000, per_query=20, ahead=2)
    for _ in range(20):  # let the producer run as far as it may
        await asyncio.sleep(0)
    # Two queries of two chunks each: the second started with 2 chunks waiting (not more
    # than `ahead`); after it, 4 are waiting and no third query begins.
    assert source.asked == [20, 20]
    first = await stream.take(10)
    assert [e.index for e in first] == list(range(1, 11))
    for _ in range(20):
        await asyncio.sleep(0)
    assert source.asked == [20, 20]  # 3 still waiting
    await stream.take(10)
    for _ in range(20):
        await asyncio.sleep(0)
    assert source.asked == [20, 20, 20]
    await stream.close()


async def test_a_failing_query_fails_the_take_that_waits_for_it() -> None:
    source = Source(total=100, chunk=10, fail_at=25)
    with pytest.raises(RuntimeError, match="went away"):
        await read_all(source, limit=100, chunk=10, per_query=50)


async def test_close_lets_the_running_query_finish_and_starts_no_other() -> None:
    source = Source(total=1000, chunk=10)
    stream = Streamed(source.query, 1000, per_query=40)
    await stream.take(10)  # the first query is under way
    await stream.close()
    assert source.asked == [40] and source.finished == 1


async def test_a_cancelled_query_is_an_error_never_the_end_of_the_scan() -> None:
    source = Source(total=100, chunk=10)
    stream = Streamed(source.query, 100, per_query=100)
    first = await stream.take(10)
    assert [e.index for e in first][-1] == 10
    stream._task.cancel()  # e.g. the event loop shutting down under a running scan
    await asyncio.wait([stream._task])
    got = [e.index for e in first]
    with pytest.raises(StorageUnavailable, match="cancelled"):
        while True:
            rows = await stream.take(10)  # chunks read before it still come, then the error
            assert rows, "an empty chunk would read as the end of the scan"
            got += [e.index for e in rows]
    assert got == list(range(1, len(got) + 1)) and len(got) < 100


class Blocking:
    """A blocking query on a thread: chunks of 10, ``go`` releases each one."""

    def __init__(self, chunks: int, fail_at: int | None = None) -> None:
        self.chunks, self.fail_at = chunks, fail_at
        self.go = threading.Semaphore(0)
        self.produced = 0
        self.ended = threading.Event()

    def rows(self) -> Iterator[list[int]]:
        try:
            for k in range(self.chunks):
                self.go.acquire()
                if k == self.fail_at:
                    raise StorageUnavailable("the database went away")
                self.produced += 1
                yield list(range(10 * k, 10 * k + 10))
        finally:
            self.ended.set()


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


async def test_in_thread_hands_chunks_over_in_order_as_they_come(
        threads: ThreadPoolExecutor) -> None:
    query = Blocking(3)
    query.go.release()
    got: list[list[int]] = []
    async for rows in in_thread(threads, query.rows):
        got.append(rows)
        assert query.produced == len(got)  # each chunk arrives before the next is made
        query.go.release()
    assert got == [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]


async def test_in_thread_raises_the_query_s_error_after_what_came_before(
        threads: ThreadPoolExecutor) -> None:
    query = Blocking(3, fail_at=1)
    for _ in range(3):
        query.go.release()
    got: list[list[int]] = []
    with pytest.raises(StorageUnavailable, match="went away"):
        async for rows in in_thread(threads, query.rows):
            got.append(rows)
    assert got == [list(range(10))]


async def test_in_thread_stopped_early_waits_for_the_query_to_end(
        threads: ThreadPoolExecutor) -> None:
    query = Blocking(4)
    query.go.release()
    stream = in_thread(threads, query.rows)
    assert await anext(stream) == list(range(10))
    for _ in range(3):
        query.go.release()
    await stream.aclose()  # returns only once the query ran to its end
    assert query.ended.is_set() and query.produced == 4


@pytest.mark.parametrize(("limit", "chunk"), [
    (1, 1_000), (1_000, 1_000), (1_001, 1_001), (2_001, 1_001), (3_001, 1_001),
    (3_999, 1_333), (4_000, 1_000), (4_004, 1_001), (10_000, 2_500), (10_001, 2_501),
    (11_000, 2_750), (12_000, 2_400), (20_000, 2_500), (100_000, 2_500), (100_001, 2_501),
])
def test_chunk_sizes(limit: int, chunk: int) -> None:
    assert pages.chunk_for(limit) == chunk


def test_chunks_are_even_and_bounded() -> None:
    """No last page of a few events (a native read asks for one more than it sends), and
    pages near MAX_CHUNK, for every limit up to the API's 100,000 (+1)."""
    for limit in range(1, 100_002):
        got = pages.chunk_for(limit)
        assert pages.MIN_CHUNK <= got <= pages.MAX_CHUNK * 9 // 8 + 1, limit
        if limit > pages.MIN_CHUNK:
            assert limit % got == 0 or limit % got > got * 9 // 10, limit
