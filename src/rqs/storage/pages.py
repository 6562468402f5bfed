"""The page pipelines of the stores' ``scan_map``.

``pipelined``: three stages overlap. The caller sends page k while page k+1 is encoded and
page k+2 is read. Reads run in order (each starts where the last stopped), and so do
encodes, one at a time: encoders keep state across pages (a response's framing, caches).
Rendering Mapp outputs in C runs without the GIL, so with encodes on a thread of their own
the stages use both cores (one-off A/B timings, not a bench script: a 100,000-event poll
took 0.22-0.35 s against 0.27-0.38 s).

``prefetched``: one job reads and encodes each page, one page ahead of the caller. For a
light encoder (native pages: the C code splices stored payloads) that is faster: a third
busy thread only adds handoffs and contention for the GIL (one-off timings: pages of
10,000 events read after an index, 290-320k against 230-270k events/s).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import Any, TypeVar

from rqs.domain.events import StoredEvent
from rqs.errors import StorageUnavailable

R = TypeVar("R")
T = TypeVar("T")

Take = Callable[[int], "asyncio.Future[list[StoredEvent]]"]

Encode = Callable[[list[StoredEvent]], "asyncio.Future[R]"]

MAX_CHUNK = 2_500
MIN_CHUNK = 1_000


def chunk_for(limit: int) -> int:
    """Events per page for a scan of ``limit``: at least four pages, so the stages overlap
    (a 10,000-event read in pages of 5,000 had two, and no overlap to speak of), but not
    much more than MAX_CHUNK. Pages in flight are most of a read's memory: on SQLite, the
    server's peak RSS over bench.core's 100,000-event reads grew by 96 MiB with pages of
    5,000 and 65 MiB with 2,500, at the same speed within this machine's noise
    (alternated runs; the 0.35 s target is met either way). On SQLite, reads in
    pages of 10,000 over HTTP, two sets of alternated one-off runs (means of 9 and of 6):
    one type 257k -> 303k and 301k -> 320k, after an index 363k -> 409k and 417k -> 446k
    events/s; 100,000-event reads were unchanged. PostgreSQL measured ~10% slower with it
    while its rows streamed in on the event loop; since they stream on a thread (a
    cheaper hand-off per page), it measured ~6% faster with it (alternated one-off runs,
    one type 214k -> 228k, after an index 252k -> 274k events/s, pages of 10,000).

    Pages are even: a limit one past a round number (a native read asks for one event
    more than it sends, see ``render.Capped``) must not leave a last page, or on
    PostgreSQL a last query, of a single event."""
    pages = max(4, round(limit / MAX_CHUNK))  # so pages may be a little over MAX_CHUNK
    if limit < pages * MIN_CHUNK:  # a small read: as many pages of MIN_CHUNK as fit
        pages = max(1, limit // MIN_CHUNK)
    return max(MIN_CHUNK, -(-limit // pages))


async def pipelined(take: Take, encode: Encode[R], limit: int, chunk: int) -> AsyncIterator[R]:
    """Pages of up to ``chunk`` events, ``limit`` in all, each through ``encode``.

    ``take(n)`` starts reading the next n events; ``encode(rows)`` starts encoding a page.
    A page shorter than asked for ends the scan.
    """
    if limit <= 0 or chunk <= 0:
        return
    remaining = limit
    want = min(chunk, remaining)
    taking: asyncio.Future[list[StoredEvent]] | None = take(want)
    encoding: asyncio.Future[R] | None = None
    try:
        while taking is not None or encoding is not None:
            rows: list[StoredEvent] = []
            if taking is not None:
                rows = await taking
                remaining -= len(rows)
                taking = None
                if len(rows) == want and remaining > 0:
                    want = min(chunk, remaining)
                    taking = take(want)
            if encoding is None:
                encoding = encode(rows) if rows else None
                continue
            done = await encoding
            encoding = encode(rows) if rows else None
            yield done
    finally:  # the caller stopped early, or a stage failed
        await _abandon(taking, encoding)


Query = Callable[[int], AsyncIterator[list[StoredEvent]]]


class Streamed:
    """A ``Take`` for ``pipelined`` over queries whose rows arrive as they are produced.

    ``query(n)`` runs one query for up to n events and yields them in chunks. Each query
    runs to its end without waiting for the caller, so a slow client never holds a
    statement open; the next one starts once the caller has taken all but ``ahead`` of
    the chunks. ``per_query`` must be a multiple of the chunk size ``pipelined`` asks
    for, so that every chunk but the last has exactly that size.
    """

    def __init__(self, query: Query, limit: int, per_query: int, ahead: int = 2) -> None:
        self._chunks: deque[list[StoredEvent]] = deque()
        self._ahead = ahead
        self._waiter: asyncio.Future[list[StoredEvent]] | None = None
        self._room = asyncio.Event()
        self._error: BaseException | None = None
        self._done = False
        self._stopped = False
        self._task = asyncio.ensure_future(self._run(query, limit, per_query))

    async def _run(self, query: Query, limit: int, per_query: int) -> None:
        remaining = limit
        try:
            while remaining > 0 and not self._stopped:
                want = min(per_query, remaining)
                got = 0
                async for rows in query(want):
                    got += len(rows)
                    self._put(rows)
                remaining -= got
                if got < want:
                    break
                while len(self._chunks) > self._ahead and not self._stopped:
                    self._room.clear()
                    await self._room.wait()
        except asyncio.CancelledError:
            # Never a silent end: the caller would take it for the end of the scan.
            self._error = StorageUnavailable("the scan's query was cancelled")
            raise
        except Exception as exc:
            self._error = exc
        finally:
            self._done = True
            self._put(None)

    def _put(self, rows: list[StoredEvent] | None) -> None:
        if rows is not None:
            self._chunks.append(rows)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            self._hand(waiter)

    def _hand(self, fut: asyncio.Future[list[StoredEvent]]) -> bool:
        if self._chunks:
            fut.set_result(self._chunks.popleft())
            self._room.set()
        elif self._error is not None:
            fut.set_exception(self._error)
        elif self._done:
            fut.set_result([])
        else:
            return False
        return True

    def take(self, _want: int) -> asyncio.Future[list[StoredEvent]]:
        fut: asyncio.Future[list[StoredEvent]] = asyncio.get_running_loop().create_future()
        if not self._hand(fut):
            self._waiter = fut
        return fut

    async def close(self) -> None:
        """Start no more queries (the caller stopped early, or failed), and wait for the one
        under way. It is not cancelled: it ends soon on its own, and a query cancelled in
        mid-stream left its pooled connection unusable for a while (seen in tests)."""
        self._stopped = True
        self._room.set()
        await asyncio.wait([self._task])


async def in_thread(executor: Executor, produce: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """The items of a blocking generator run on ``executor``, handed over as they come.

    The generator always runs to its end: a query is never abandoned in mid-stream. If
    the caller stops early, the rest is dropped, and the caller waits for that end (so a
    scan that stopped has given its connection back)."""
    loop = asyncio.get_running_loop()
    handed: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()  # (last, item or error)

    def run() -> None:
        try:
            for item in produce():
                loop.call_soon_threadsafe(handed.put_nowait, (False, item))
        except BaseException as exc:  # handed to the caller, raised there
            loop.call_soon_threadsafe(handed.put_nowait, (True, exc))
        else:
            loop.call_soon_threadsafe(handed.put_nowait, (True, None))

    job = loop.run_in_executor(executor, run)

    def ended(job: asyncio.Future[None]) -> None:  # the job died before it could say so
        if not job.cancelled() and job.exception() is not None:
            handed.put_nowait((True, job.exception()))

    job.add_done_callback(ended)
    try:
        while True:
            last, value = await handed.get()
            if last:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        await asyncio.wait([job])


Job = Callable[[int], "asyncio.Future[tuple[int, R | None]]"]


async def prefetched(job: Job[R], limit: int, chunk: int) -> AsyncIterator[R]:
    """Pages through ``job(n)``, which reads and encodes up to n events at once: (events
    read, encoded page or None when none were). The next job starts when this page is
    handed to the caller."""
    if limit <= 0 or chunk <= 0:
        return
    remaining = limit
    want = min(chunk, remaining)
    pending: asyncio.Future[tuple[int, R | None]] | None = job(want)
    try:
        while pending is not None:
            got, result = await pending
            remaining -= got
            pending = None
            if got == want and remaining > 0:
                want = min(chunk, remaining)
                pending = job(want)
            if result is not None:
                yield result
    finally:  # the caller stopped early, or the job failed
        await _abandon(pending)


async def _abandon(*stages: asyncio.Future[Any] | None) -> None:
    """Cancel what a stopped scan still had running, wait for it to settle, and take its
    exceptions, which no one is waiting for any more."""
    pending = [f for f in stages if f is not None]
    for f in pending:
        f.cancel()
    if pending:
        await asyncio.wait(pending)
        for f in pending:
            if not f.cancelled():
                f.exception()
