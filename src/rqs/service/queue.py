"""The response queue's use cases: ingest, reads with retention checks, cursors, stats, purge."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from rqs.domain import catalog, selectors
from rqs.domain.events import StoredEvent, format_time, parse_batch
from rqs.domain.selectors import Selector
from rqs.errors import Gone, InvalidRequest, NotFound
from rqs.service.keys import Principal
from rqs.settings import Settings
from rqs.storage.base import AppendResult, Bounds, CursorLease, EventQuery, Storage, Topic

log = logging.getLogger("rqs.queue")

Clock = Callable[[], float]


@dataclass(slots=True)
class CursorPoll:
    """One poll through a server-managed cursor, holding the cursor until finished."""

    lease: CursorLease
    query: EventQuery
    bounds: Bounds
    skipped: int

    async def finish(self, delivered: int, last_index: int | None) -> None:
        """Move the cursor past what was delivered; call only once the response is sent."""
        if delivered < self.query.limit or last_index is None:
            # The scan reached the newest index that existed when it began: nothing up to
            # there is left for this cursor, matching or not.
            position = max(self.query.after, self.query.through or 0, last_index or 0)
        else:
            position = last_index
        await self.lease.commit(position, delivered, self.skipped)


class ResponseQueue:
    def __init__(self, storage: Storage, settings: Settings, clock: Clock = time.time) -> None:
        self.storage = storage
        self.settings = settings
        self.clock = clock
        # Called with the domain after each append that stored something; push delivery
        # sets it to wake its worker, so events reach callbacks without waiting for a poll.
        self.on_append: Callable[[str], None] | None = None

    # --- ingest --------------------------------------------------------------------

    async def ingest(self, who: Principal, body: bytes, content_type: str | None) -> AppendResult:
        who.require("ingest")
        domain = who.domain
        events = parse_batch(body, content_type, domain, self.settings.max_batch_items)
        result = await self.storage.append(domain, events)
        if result.stored and self.on_append is not None:
            self.on_append(domain)
        return result

    # --- reads ---------------------------------------------------------------------

    def check_limit(self, limit: int | None) -> int:
        if limit is None:
            return self.settings.default_poll_limit
        if limit < 1 or limit > self.settings.max_poll_limit:
            raise InvalidRequest(
                f"limit must be between 1 and {self.settings.max_poll_limit}", parameter="limit"
            )
        return limit

    async def query_after(
        self,
        who: Principal,
        after: int | None,
        *,
        selector: Selector = selectors.EVERYTHING,
        campaign: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
    ) -> tuple[EventQuery, Bounds]:
        """A self-managed-index read. ``after=None`` starts at the oldest retained event;
        an ``after`` that retention has passed is a Gone, never a silent skip."""
        who.require("read")
        bounds = await self.storage.bounds(who.domain)
        if after is None:
            after = bounds.purged_through
        elif after < 0:
            raise InvalidRequest("after must be 0 or more", parameter="after")
        elif after < bounds.purged_through:
            raise Gone(bounds.oldest, after + 1)
        if since is not None and until is not None and until <= since:
            raise InvalidRequest("until must be later than since", parameter="until")
        query = EventQuery(
            after=after,
            through=bounds.newest,
            selector=selector,
            campaign=campaign,
            since=since,
            until=until,
            limit=self.check_limit(limit),
        )
        return query, bounds

    async def get_event_checked(self, who: Principal, index: int) -> StoredEvent:
        who.require("read")
        event = await self.storage.get_event(who.domain, index)
        if event is not None:
            return event
        bounds = await self.storage.bounds(who.domain)
        if 1 <= index <= bounds.purged_through:
            raise Gone(bounds.oldest, index)
        raise NotFound(f"no event with index {index} in domain {who.domain!r}")

    # --- server-managed cursors -----------------------------------------------------

    @asynccontextmanager
    async def cursor_poll(
        self, who: Principal, cursor: str, selector: Selector, limit: int | None
    ) -> AsyncIterator[CursorPoll]:
        """Hold the cursor (key, domain, name) for one poll.

        Concurrent polls on one cursor run one after the other, so they never return the
        same event and never skip one. Leaving without ``finish`` leaves the cursor
        where it was: a response that failed halfway is delivered again.
        """
        who.require("read")
        checked = self.check_limit(limit)
        async with self.storage.lease_cursor(who.key_id, who.domain, cursor) as lease:
            bounds = await self.storage.bounds(who.domain)
            start = lease.state.position
            skipped = 0
            if 0 < start < bounds.purged_through:
                skipped = bounds.purged_through - start
                log.warning("cursor %s of key %s fell behind retention by %d events",
                            cursor, who.key_id, skipped)
            start = max(start, bounds.purged_through)  # a new cursor starts at the oldest
            query = EventQuery(after=start, through=bounds.newest, selector=selector,
                               limit=checked)
            yield CursorPoll(lease, query, bounds, skipped)

    async def next_index(self, who: Principal, cursor: str) -> int:
        who.require("read")
        state = await self.storage.cursor_state(who.key_id, who.domain, cursor)
        bounds = await self.storage.bounds(who.domain)
        position = state.position if state else 0
        return max(position, bounds.purged_through) + 1

    async def poll_count(self, who: Principal, cursor: str) -> int:
        who.require("read")
        state = await self.storage.cursor_state(who.key_id, who.domain, cursor)
        return state.polled if state else 0

    async def submit_count(self, who: Principal, selector: Selector) -> int:
        who.require("read")
        return sum(c.ingested for c in await self.storage.counts(who.domain)
                   if selector.matches(c.type, c.channel))

    # --- topics --------------------------------------------------------------------

    async def resolve_topic(self, who: Principal, name: str) -> Selector:
        topic = await self.storage.get_topic(who.domain, name)
        if topic is not None:
            return selectors.for_filters(topic.types, topic.channels)
        implicit = selectors.for_poll_type(name)
        if implicit is None:
            raise NotFound(f"no topic {name!r}: create it, or use a poll group or type name")
        return implicit

    async def create_topic(
        self, who: Principal, name: str, types: list[str], channels: list[str]
    ) -> Topic:
        who.require("admin")
        name = name.strip()
        if not name or len(name) > 100:
            raise InvalidRequest("topic name must be 1 to 100 characters", parameter="name")
        if selectors.for_poll_type(name) is not None:
            raise InvalidRequest(f"{name!r} is a poll group or type name and needs no topic",
                                 parameter="name")
        bad = [c for c in channels if catalog.parse_channel(c) is None]
        if bad:
            raise InvalidRequest(f"unknown channel(s) {bad}; use "
                                 f"{[c.value for c in catalog.Channel]}", parameter="channels")
        if not types and not channels:
            raise InvalidRequest("a topic needs types or channels", parameter="types")
        topic = Topic(who.domain, name, tuple(types), tuple(
            str(catalog.parse_channel(c)) for c in channels), int(self.clock() * 1_000_000))
        await self.storage.create_topic(topic)
        return topic

    # --- stats and retention --------------------------------------------------------

    def retention_horizon(self) -> int:
        return int((self.clock() - self.settings.retention_days * 86400) * 1_000_000)

    async def stats(self, who: Principal) -> dict[str, object]:
        who.require("read")
        bounds = await self.storage.bounds(who.domain)
        counts = await self.storage.counts(who.domain)
        by_channel: dict[str, dict[str, int]] = {}
        uncatalogued = {"retained": 0, "ingested": 0}
        by_type = []
        for c in counts:
            known = catalog.lookup(c.type) is not None
            by_type.append({"type": c.type, "channel": c.channel, "retained": c.retained,
                            "ingested": c.ingested, "catalogued": known})
            ch = by_channel.setdefault(c.channel, {"retained": 0, "ingested": 0})
            ch["retained"] += c.retained
            ch["ingested"] += c.ingested
            if not known:
                uncatalogued["retained"] += c.retained
                uncatalogued["ingested"] += c.ingested
        return {
            "domain": who.domain,
            "oldest_index": bounds.oldest,
            "newest_index": bounds.newest,
            "purged_through": bounds.purged_through,
            "retained": sum(c.retained for c in counts),
            "ingested": sum(c.ingested for c in counts),
            "by_type": by_type,
            "by_channel": by_channel,
            "uncatalogued": uncatalogued,
            "retention_days": self.settings.retention_days,
            "retention_horizon": format_time(max(self.retention_horizon(), 0)),
        }

    async def purge(self, max_steps: int | None = None) -> int:
        """Remove expired events in small steps, so ingest is never stalled for long."""
        cutoff = self.retention_horizon()
        total = 0
        steps = 0
        while max_steps is None or steps < max_steps:
            removed = await self.storage.purge_step(cutoff, self.settings.purge_step_rows)
            total += removed
            steps += 1
            if removed == 0:
                break
            await asyncio.sleep(0)  # let waiting requests run between steps
        if total:
            log.info("retention removed %d events received before %s", total,
                     format_time(max(cutoff, 0)))
        return total
