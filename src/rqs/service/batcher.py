"""Forming a lane's batches from the event store.

A lane reads several batches' worth of matching events per scan and hands them out one
batch at a time, so a busy lane costs one read per few requests. Events are immutable
and the index is gapless in commit order, so what was read stays valid while the lane
is held.
"""

from __future__ import annotations

from dataclasses import dataclass

from rqs.domain.delivery import CampaignRule, Delivery
from rqs.domain.events import StoredEvent
from rqs.domain.selectors import EVERYTHING, Selector
from rqs.service.blocks import Blocks
from rqs.storage.base import EventQuery, Storage
from rqs.storage.delivery_base import Lane


@dataclass(frozen=True, slots=True)
class Batch:
    after_index: int  # the lane position the batch starts after
    events: list[StoredEvent]
    advance_to: int  # the lane position once the batch is done

    @property
    def body(self) -> bytes:
        return batch_body(self.events)


def batch_body(events: list[StoredEvent]) -> bytes:
    """The stored payloads byte for byte, as ingested: never decoded, never re-encoded."""
    return b"[" + b",".join(e.payload for e in events) + b"]"


MIN_SCAN = 512  # events read per scan at least
INDEXED_TYPES = 3  # up to this many types, scans use the per-type index


class _Keep:
    """The rows of a scanned chunk the lane wants: (rows seen, last index seen, kept)."""

    __slots__ = ("rule", "selector")

    def __init__(self, selector: Selector | None, rule: CampaignRule | None) -> None:
        self.selector = selector
        self.rule = rule

    def __call__(self, rows: list[StoredEvent]) -> tuple[int, int, list[StoredEvent]]:
        sel, rule = self.selector, self.rule
        kept = rows
        if sel is not None:
            kept = [e for e in kept if sel.matches(e.type, e.channel)]
        if rule is not None:
            kept = [e for e in kept if rule.passes(e.type, e.payload)]
        return len(rows), rows[-1].index, kept


class Batcher:
    def __init__(self, storage: Storage, lane: Lane, newest: int, prefetch_batches: int,
                 blocks: Blocks | None = None) -> None:
        self.storage = storage
        self.lane = lane
        sub = lane.subscription
        self.domain = sub.domain
        self.selector = sub.selector()
        self.rule: CampaignRule | None = sub.campaign_rule()
        replay = lane.replay
        self.limit = replay.through_index if replay else None  # a replay stops at its end
        self.since = replay.since if replay else None
        self.until = replay.until if replay else None
        self.size = lane.callback.batch_size
        # Small batches still read a good stretch at a time: a read is a thread round trip.
        self.prefetch = max(MIN_SCAN, max(1, prefetch_batches) * self.size)
        # A few types: let the store use its per-type index. Many: one range scan, filtered
        # here, is far cheaper than merging many per-type streams.
        types = self.selector.types
        few = types is not None and len(types) <= INDEXED_TYPES
        self.index_selector = self.selector if few else EVERYTHING
        self.keep = _Keep(None if few else self.selector, self.rule)
        # A lane that reads whole ranges shares them with the worker's other lanes.
        shared = not few and self.since is None and self.until is None
        self.blocks = blocks if shared else None
        self.scanned = lane.position
        self.handed = self.scanned  # the last position handed out with a batch
        self.buffer: list[StoredEvent] = []
        self.newest = newest  # known at claim time; re-read once it is used up
        self.exhausted = False

    def resume_after(self, index: int) -> None:
        """Batches up to ``index`` are opened already (they are sent as recorded)."""
        self.scanned = self.handed = index

    async def _fill(self) -> None:
        through = self.newest
        if through <= self.scanned:
            self.newest = through = (await self.storage.bounds(self.domain)).newest
        if self.limit is not None:
            through = min(through, self.limit)
        if through <= self.scanned:
            self.exhausted = True
            return
        if self.blocks is not None:
            upto = min(through, self.scanned + self.prefetch)
            rows = await self.blocks.between(self.domain, self.scanned, upto, self.newest)
            if rows or upto >= through:
                if rows:
                    self.buffer.extend(self.keep(rows)[2])
                self.scanned = upto
                self.exhausted = upto >= through
                return
            # Nothing there: retention removed that stretch. One scan below jumps the
            # whole gap, where stepping through it block by block would take a read each.
        query = EventQuery(after=self.scanned, through=through, selector=self.index_selector,
                           since=self.since, until=self.until, limit=self.prefetch)
        seen = 0
        last = self.scanned
        # The filter runs where the rows are read (the SQLite reader thread).
        async for n, last_index, kept in self.storage.scan_map(self.domain, query, self.keep):
            seen += n
            last = last_index
            self.buffer.extend(kept)
        if seen < self.prefetch:
            self.scanned = through  # everything up to ``through`` has been looked at
            self.exhausted = True
        else:
            self.scanned = last

    async def take(self) -> Batch | None:
        """The next batch, or None when the lane has nothing more right now."""
        if len(self.buffer) < self.size:
            self.exhausted = False  # new events may have been committed since the last look
            while len(self.buffer) < self.size and not self.exhausted:
                await self._fill()
        if not self.buffer:
            return None
        events = self.buffer[: self.size]
        del self.buffer[: self.size]
        after = self.handed
        # The last batch of a scan also covers the non-matching events after it.
        advance = self.scanned if not self.buffer and self.exhausted else events[-1].index
        self.handed = advance
        return Batch(after, events, advance)

    @property
    def idle_position(self) -> int:
        """Where the lane may move when ``take`` found nothing: all of it was looked at."""
        return self.scanned if not self.buffer else self.handed


async def rebuild(storage: Storage, lane: Lane, delivery: Delivery) -> list[StoredEvent]:
    """A recorded batch's events again (its body was not kept: it never failed before)."""
    sub = lane.subscription
    rule = sub.campaign_rule()
    replay = lane.replay
    query = EventQuery(after=delivery.after_index, through=delivery.last_index,
                       selector=sub.selector(), since=replay.since if replay else None,
                       until=replay.until if replay else None,
                       limit=max(1, delivery.last_index - delivery.after_index))
    events: list[StoredEvent] = []
    async for chunk in storage.scan(sub.domain, query):
        events.extend(chunk if rule is None
                      else [e for e in chunk if rule.passes(e.type, e.payload)])
    return events
