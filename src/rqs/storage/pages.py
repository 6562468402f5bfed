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
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from rqs.domain.events import StoredEvent

R = TypeVar("R")

Take = Callable[[int], "asyncio.Future[list[StoredEvent]]"]
Encode = Callable[[list[StoredEvent]], "asyncio.Future[R]"]


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
