"""Event blocks shared by the lanes of one delivery worker.

Several subscriptions of a domain usually want the same events: a CRM sync, a warehouse
feed and a dashboard each take (nearly) every type. Without sharing, each lane reads the
same rows from the store, and on SQLite those reads (row conversion, under the GIL of the
worker's own process) were ~40% of the worker's time with 10 lanes of batchSize 200.

Here the index is cut into aligned blocks of ``BLOCK`` events. A block whose last index is
committed never changes (indexes are gapless and events immutable), so it is read once,
kept in a small LRU, and sliced by every lane that passes through it; lanes asking for the
same block at once share one read. The part of a range past the last complete block (the
live tail) is read directly, uncached. Retention may remove events a kept block still
holds; a lane behind retention then receives events that were stored a moment ago, never
a gap.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import OrderedDict
from functools import partial
from operator import attrgetter

from rqs.domain.events import StoredEvent
from rqs.storage.base import EventQuery, Storage

BLOCK = 2_048  # events per block
KEEP = 24  # blocks kept: ~50k events, ~35 MB of ~500-byte payloads

_INDEX = attrgetter("index")


class Blocks:
    def __init__(self, storage: Storage, keep: int = KEEP, block: int = BLOCK) -> None:
        self._storage = storage
        self._keep = keep
        self.block = block
        self._cache: OrderedDict[tuple[str, int], asyncio.Future[list[StoredEvent]]] = (
            OrderedDict())
        self.reads = 0  # store reads made (blocks and tails), for tests and benchmarks

    async def between(self, domain: str, after: int, through: int,
                      committed: int) -> list[StoredEvent]:
        """Every event with ``after < index <= through``, in index order. ``committed``
        (at least ``through``) is the newest committed index: a block that ends at or
        below it is complete, and is read whole and kept."""
        out: list[StoredEvent] = []
        size = self.block
        lo = after
        while lo < through:
            b = lo // size
            start, end = b * size, (b + 1) * size
            if end > committed:  # the live tail: not a complete block yet
                out += await self._read(domain, lo, through)
                break
            rows = await self._get(domain, b)
            if lo > start or end > through:
                first = bisect_right(rows, lo, key=_INDEX) if lo > start else 0
                last = bisect_right(rows, through, key=_INDEX) if end > through else len(rows)
                rows = rows[first:last]
            out += rows
            lo = end
        return out

    async def _get(self, domain: str, b: int) -> list[StoredEvent]:
        key = (domain, b)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
        else:
            found = asyncio.ensure_future(self._read(domain, b * self.block,
                                                     (b + 1) * self.block))
            self._cache[key] = found
            found.add_done_callback(partial(self._forget_failed, key))
            while len(self._cache) > self._keep:
                self._cache.popitem(last=False)
        # Shielded: a lane cancelled while it waits leaves the read to the others.
        return await asyncio.shield(found)

    def _forget_failed(self, key: tuple[str, int],
                       read: asyncio.Future[list[StoredEvent]]) -> None:
        """A failed or cancelled read is not kept: the next lane that asks reads again."""
        if (read.cancelled() or read.exception() is not None) and self._cache.get(key) is read:
            del self._cache[key]

    async def _read(self, domain: str, after: int, through: int) -> list[StoredEvent]:
        self.reads += 1
        query = EventQuery(after=after, through=through, limit=through - after)
        rows: list[StoredEvent] = []
        async for chunk in self._storage.scan(domain, query, max(1, through - after)):
            rows += chunk
        return rows
