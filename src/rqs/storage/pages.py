"""The page pipeline shared by both stores' ``scan_map``.

Three stages overlap: the caller sends page k while page k+1 is encoded and page k+2 is
read. Reads run in order (each starts where the last stopped), and so do encodes, one at
a time: encoders keep state across pages (a response's framing, caches). The encoders of
big responses (``rqs._speedups``) run without the GIL, so with encodes on a thread of
their own the stages use both cores.
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
        pending: list[asyncio.Future[Any]] = []
        if taking is not None:
            pending.append(taking)
        if encoding is not None:
            pending.append(encoding)
        for f in pending:
            f.cancel()
        if pending:
            await asyncio.wait(pending)
            for f in pending:
                if not f.cancelled():
                    f.exception()  # retrieved: no one is waiting for it any more
