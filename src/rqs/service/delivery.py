"""The delivery worker: claims lanes, forms batches, sends them, records every attempt.

One lane (a subscription's live feed, or a replay of it) is worked by one worker at a
time, under a lease in the delivery store. Within a lane a batch is recorded before it
is sent (so its ``webhook-id`` and range survive a crash), and the next batch is formed
only once it succeeded or was dead-lettered: that is the ordering guarantee.

Tests drive ``run_once(now)`` with an explicit time; ``rqs serve`` and ``rqs worker`` run
``run_forever``, which ingest in the same process wakes through ``wake``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from rqs.adapters.webhook_sender import WebhookSender
from rqs.domain import delivery as d
from rqs.errors import RqsError
from rqs.service.blocks import Blocks
from rqs.service.delivery_options import DeliveryOptions
from rqs.service.lane import LaneRun
from rqs.storage.base import Storage
from rqs.storage.delivery_base import (
    DeliveryStore,
    Lane,
    LaneStopped,
    LeaseLost,
    delivery_store_for,
)

log = logging.getLogger("rqs.delivery")

Clock = Callable[[], float]
Micros = Callable[[], int]


@dataclass(slots=True)
class RunStats:
    lanes: int = 0
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    events: int = 0  # events in batches that succeeded

    def add(self, other: RunStats) -> None:
        self.lanes += other.lanes
        self.requests += other.requests
        self.succeeded += other.succeeded
        self.failed += other.failed
        self.events += other.events


class DeliveryWorker:
    def __init__(
        self,
        storage: Storage,
        options: DeliveryOptions,
        *,
        clock: Clock = time.time,
        sender: WebhookSender | None = None,
        rng: d.Random | None = None,
        store: DeliveryStore | None = None,
        owner: str | None = None,
    ) -> None:
        self.storage = storage
        self.options = options
        self.clock = clock
        # The signature timestamp is the real time of the attempt, whatever clock schedules
        # retries: receivers reject signatures more than five minutes off their own clock.
        self.wall: Clock = time.time
        self.sender = sender or WebhookSender(
            timeout=options.request_timeout, connect_timeout=options.connect_timeout,
            allow_private=options.allow_private)
        self.rng: d.Random = rng or random.Random()
        self._store = store
        self.owner = owner or "w-" + secrets.token_hex(6)
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0  # bumped by every wake-up; lingering lanes wait for a change
        self._events: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[RunStats]] = set()
        self.totals = RunStats()
        self.blocks = Blocks(storage)  # events read once for all lanes that want them
        # Until then (monotonic), ingest does not wake the worker: its last look found no
        # active subscription. Each wake-up costs two store reads; under ingest, with
        # nothing subscribed, that was ~4% of the HTTP process (py-spy). Changes made
        # through the API end it at once (``changed``), others show at the next poll.
        self._idle_until = 0.0

    @property
    def store(self) -> DeliveryStore:
        if self._store is None:
            self._store = delivery_store_for(self.storage)
        return self._store

    def _micros(self) -> int:
        return int(self.clock() * 1_000_000)

    # --- one pass, for tests and tools ----------------------------------------------------

    async def run_once(self, now: float | None = None) -> RunStats:
        """Claim every lane due at ``now`` and work each until it has nothing due."""
        at = int((self.clock() if now is None else now) * 1_000_000)
        lanes, newest = await self._claim(at, self.options.max_lanes)
        results = await asyncio.gather(
            *(self._run_lane(lane, newest.get(lane.subscription.domain, 0), lambda: at)
              for lane in lanes))
        stats = RunStats(lanes=len(lanes))
        for r in results:
            stats.add(r)
        return stats

    async def _claim(self, now_us: int, limit: int) -> tuple[list[Lane], dict[str, int]]:
        store = self.store
        asked = time.monotonic()
        domains = await store.active_domains()
        if not domains:  # no active subscription: nothing to claim, and no write to ask for
            self._idle_until = asked + self.options.poll_interval
            return [], {}
        self._idle_until = 0.0
        # Concurrently: one store read per domain, and a pass runs every poll interval.
        found = await asyncio.gather(*(self.storage.bounds(dom) for dom in domains))
        newest = {dom: b.newest for dom, b in zip(domains, found, strict=True)}
        lease = now_us + int(self.options.lease_seconds * 1_000_000)
        lanes = await store.claim(self.owner, now_us, lease, newest, limit)
        return lanes, newest

    # --- one lane --------------------------------------------------------------------------

    async def _run_lane(self, lane: Lane, newest: int, now: Micros,
                        linger: float = 0.0) -> RunStats:
        stats = RunStats()
        try:
            await LaneRun(self, lane, newest, now, stats, linger).run()
        except LeaseLost:
            log.info("lane %s was taken over by another worker", lane.key)
        except LaneStopped:  # paused, disabled or cancelled meanwhile
            await self.store.release(lane.key, self.owner)
        except Exception:
            log.exception("delivery lane %s failed; it is retried after its lease", lane.key)
        self.totals.add(stats)
        return stats

    # --- the background loop -----------------------------------------------------------

    def wake(self, domain: str | None = None) -> None:
        """New events were committed: look for work now rather than at the next poll."""
        if time.monotonic() < self._idle_until:
            return  # nothing is subscribed (as of a moment ago)
        self._nudge()

    def changed(self, domain: str | None = None) -> None:
        """Subscriptions or replays changed through this process: look for work now."""
        self._idle_until = 0.0
        self._nudge()

    def _nudge(self) -> None:
        event, loop = self._wake, self._loop
        if event is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._signal()
        else:
            loop.call_soon_threadsafe(self._signal)

    def _signal(self) -> None:
        self.generation += 1
        if self._wake is not None:
            self._wake.set()
        if self._events is not None:
            events, self._events = self._events, asyncio.Event()
            events.set()

    async def wait_for_events(self, seen: int, timeout: float) -> bool:
        """True once a wake-up happened after ``seen`` (a ``generation``), False on timeout."""
        if self.generation != seen:
            return True
        if self._events is None:
            self._events = asyncio.Event()
        try:
            await asyncio.wait_for(self._events.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run_forever(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        next_purge = 0.0
        log.info("delivery worker %s started", self.owner)
        try:
            while True:
                wake.clear()
                timeout = self.options.poll_interval
                try:
                    await self._spawn_due()
                    if time.monotonic() >= next_purge:
                        next_purge = time.monotonic() + self.options.purge_interval
                        await self.purge()
                    due = await self.store.next_due()
                    if due is not None:
                        timeout = min(timeout, max(0.0, due / 1e6 - self.clock()))
                except RqsError as exc:
                    log.warning("delivery pass skipped: %s", exc)
                except Exception:
                    log.exception("delivery pass failed")
                    timeout = max(timeout, 1.0)
                if not wake.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout)
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._wake = None

    async def _spawn_due(self) -> None:
        room = self.options.max_lanes - len(self._tasks)
        if room <= 0:
            return
        lanes, newest = await self._claim(self._micros(), room)
        for lane in lanes:
            task = asyncio.create_task(self._run_lane(
                lane, newest.get(lane.subscription.domain, 0), self._micros,
                self.options.linger))
            self._tasks.add(task)
            task.add_done_callback(self._lane_done)

    def _lane_done(self, task: asyncio.Task[RunStats]) -> None:
        self._tasks.discard(task)
        # Events that arrived while the lane was being released found it leased: look again.
        if self._wake is not None:
            self._wake.set()

    async def purge(self) -> int:
        """Drop attempts and finished batches older than the retention period."""
        cutoff = self._micros() - int(self.options.retention_days * 86_400 * 1_000_000)
        total = 0
        while True:
            removed = await self.store.purge_delivery_log(cutoff, self.options.purge_rows)
            total += removed
            if removed < self.options.purge_rows:
                return total
            await asyncio.sleep(0)

    async def close(self) -> None:
        await self.sender.close()
