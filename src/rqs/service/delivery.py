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
import base64
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from rqs.adapters.webhook_sender import SendResult, WebhookSender
from rqs.domain import delivery as d
from rqs.domain.events import format_time
from rqs.errors import RqsError
from rqs.service.batcher import Batch, Batcher, rebuild
from rqs.service.delivery_options import DeliveryOptions
from rqs.storage.base import Storage
from rqs.storage.delivery_base import (
    AttemptRecord,
    DeliveryStore,
    Lane,
    LeaseLost,
    NewDelivery,
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


def basic_auth(cb: d.Callback) -> str | None:
    if cb.auth_user is None:
        return None
    raw = f"{cb.auth_user}:{cb.auth_password or ''}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def webhook_headers(cb: d.Callback, msg_id: str, body: bytes, now_us: int,
                    timestamp: int) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": d.sign(cb.signing_secrets(now_us), msg_id, timestamp, body),
    }
    auth = basic_auth(cb)
    if auth is not None:
        headers["Authorization"] = auth
    return headers


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
        self._tasks: set[asyncio.Task[RunStats]] = set()
        self.totals = RunStats()

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
        newest = {dom: (await self.storage.bounds(dom)).newest
                  for dom in await store.active_domains()}
        lease = now_us + int(self.options.lease_seconds * 1_000_000)
        lanes = await store.claim(self.owner, now_us, lease, newest, limit)
        return lanes, newest

    # --- one lane --------------------------------------------------------------------------

    async def _run_lane(self, lane: Lane, newest: int, now: Micros) -> RunStats:
        stats = RunStats()
        try:
            await self._work(lane, newest, now, stats)
        except LeaseLost:
            log.info("lane %s was taken over by another worker", lane.key)
        except Exception:
            log.exception("delivery lane %s failed; it is retried after its lease", lane.key)
        self.totals.add(stats)
        return stats

    async def _work(self, lane: Lane, newest: int, now: Micros, stats: RunStats) -> None:
        store = self.store
        key = lane.key
        batcher = Batcher(self.storage, lane, newest, self.options.prefetch_batches)
        pending = lane.pending
        body: bytes | None = None
        body_kept = False  # a body loaded from the store needs no storing again
        lease_us = int(self.options.lease_seconds * 1_000_000)
        for _ in range(self.options.batches_per_claim):
            if pending is None:
                batch = await batcher.take()
                if batch is None:
                    if batcher.idle_position > lane.position:
                        await store.advance(key, self.owner, batcher.idle_position, None, now())
                    else:
                        await store.release(key, self.owner)
                    return
                pending = await store.open_delivery(key, self.owner,
                                                    self._new_delivery(lane, batch, now()))
                body, body_kept = batch.body, False
            if body is None:
                body, body_kept = await self._load_body(lane, pending)
            decision, result, at = await self._attempt(lane, pending, body, now)
            stats.requests += 1
            nxt: Batch | None = None
            if decision.action in (d.Action.SUCCEEDED, d.Action.DEAD):
                nxt = await batcher.take()
            rec = self._record(lane, pending, body, body_kept, decision, result, at, nxt)
            if nxt is not None:
                rec = replace(rec, lease_until=at + lease_us,
                              next=self._new_delivery(lane, nxt, at))
            elif decision.action is d.Action.SUCCEEDED or decision.action is d.Action.DEAD:
                rec = replace(rec, position=max(pending.advance_to, batcher.idle_position))
            done = await store.record(key, self.owner, rec)
            if decision.action is d.Action.SUCCEEDED:
                stats.succeeded += 1
                stats.events += pending.count
            else:
                stats.failed += 1
            if nxt is None or done.next is None:
                if nxt is not None:  # the lane stopped (paused, disabled...): let it go now
                    await store.release(key, self.owner)
                return
            pending, body, body_kept = done.next, nxt.body, False
        if pending is not None:
            await store.release(key, self.owner)  # used its turn; the next claim resumes

    def _new_delivery(self, lane: Lane, batch: Batch, at: int) -> NewDelivery:
        return NewDelivery(
            msg_id=d.new_msg_id(), domain=lane.subscription.domain,
            subscription_id=lane.subscription.id, replay_id=lane.key.replay_id,
            after_index=batch.after_index, first_index=batch.events[0].index,
            last_index=batch.events[-1].index, advance_to=batch.advance_to,
            count=len(batch.events), created_at=at)

    async def _load_body(self, lane: Lane, pending: d.Delivery) -> tuple[bytes, bool]:
        stored = await self.store.delivery_body(pending.id)
        if stored is not None:
            return stored, True
        events = await rebuild(self.storage, lane, pending)
        # Empty only if retention removed the events meanwhile; the receiver gets "[]" once
        # and the lane moves on, rather than stalling on a batch that cannot be rebuilt.
        return b"[" + b",".join(e.payload for e in events) + b"]", False

    async def _attempt(
        self, lane: Lane, pending: d.Delivery, body: bytes, now: Micros
    ) -> tuple[d.Decision, SendResult, int]:
        cb = lane.callback
        number = pending.attempts + 1
        url = cb.url_for_attempt(number)
        wall = self.wall()
        headers = webhook_headers(cb, pending.msg_id, body, now(), int(wall))
        result = await self.sender.send(url, body, headers)
        at = now()
        outcome = d.classify(result.status)
        retry_after = d.parse_retry_after(result.retry_after, wall)
        decision = d.next_attempt(number, outcome, self.options.schedule, self.rng, retry_after)
        # Failing for too long disables the callback, and keeps the batch pending (even one
        # whose retries just ran out), so re-enabling resumes exactly where it stopped.
        if outcome is d.Outcome.RETRY and d.should_disable(
                cb.failing_since, at, self.options.disable_after):
            since = format_time(cb.failing_since or at)
            decision = d.Decision(d.Action.DISABLE, reason=(
                f"disabled: every attempt failed since {since}; last: {result.error}"))
        elif decision.action is d.Action.DISABLE:
            decision = replace(decision, reason=f"disabled: {url} answered 410 Gone at "
                                                f"{format_time(at)}")
        return decision, result, at

    def _record(self, lane: Lane, pending: d.Delivery, body: bytes, body_kept: bool,
                decision: d.Decision, result: SendResult, at: int,
                nxt: Batch | None) -> AttemptRecord:
        action = decision.action
        number = pending.attempts + 1
        state = {d.Action.SUCCEEDED: d.DeliveryState.SUCCEEDED,
                 d.Action.DEAD: d.DeliveryState.DEAD}.get(action, d.DeliveryState.PENDING)
        retry_at = at + int(decision.delay * 1_000_000) if action is d.Action.RETRY else None
        error = result.error
        if action is d.Action.DEAD and decision.reason:
            error = f"{decision.reason}; last: {result.error}"
        delivery = replace(pending, state=state, attempts=number, next_attempt_at=retry_at,
                           last_status=result.status, last_error=error, updated_at=at)
        attempt = d.Attempt(pending.id, at, lane.callback.url_for_attempt(number),
                            result.status, round(result.latency_ms, 3), result.error,
                            action.value)
        keep_body = action is not d.Action.SUCCEEDED and not body_kept
        return AttemptRecord(
            delivery=delivery, attempt=attempt, body=body if keep_body else None,
            position=pending.advance_to if state is not d.DeliveryState.PENDING else None,
            retry_at=retry_at,
            failing="clear" if action is d.Action.SUCCEEDED else
            "start" if d.classify(result.status) is d.Outcome.RETRY else None,
            disable_reason=decision.reason if action is d.Action.DISABLE else None,
        )

    # --- the background loop -----------------------------------------------------------

    def wake(self, domain: str | None = None) -> None:
        """New events were committed: look for work now rather than at the next poll."""
        event, loop = self._wake, self._loop
        if event is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

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
                lane, newest.get(lane.subscription.domain, 0), self._micros))
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
