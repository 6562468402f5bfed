"""Working one claimed lane: send its batches in order, record each attempt, pipelined.

Order and safety: a batch is recorded (opened) before it is sent, and only the head of
the lane is ever sent; the next batch goes out once the head succeeded or was
dead-lettered. Speed: the lane keeps one more batch opened ahead of the head, so when
the head succeeds its outcome is written *behind* — the write (success, promote the
next, open one more) runs while the next batch is already on the wire. A crash between
the two leaves the head pending: it is sent again (same webhook-id), then the next one
(same webhook-id too), so receivers see duplicates at worst, never a gap or a reorder.
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rqs.adapters.webhook_sender import SendResult
from rqs.domain import delivery as d
from rqs.domain.events import format_time
from rqs.service.batcher import Batch, Batcher, batch_body, rebuild
from rqs.storage.delivery_base import AttemptRecord, Lane, NewDelivery, Recorded

if TYPE_CHECKING:
    from rqs.service.delivery import DeliveryWorker, RunStats

Micros = Callable[[], int]
# Outcomes written behind at once: the writer may lag this many requests. bench.delivery,
# 100 lanes of batchSize 1 on SQLite: 2 gave 4,830-5,240 req/s, 4 gave 5,400-5,520.
MAX_BEHIND = 4
LOOKAHEAD = MAX_BEHIND + 1  # batches opened ahead: the head and one per write behind


def basic_auth(cb: d.Callback) -> str | None:
    if cb.auth_user is None:
        return None
    raw = f"{cb.auth_user}:{cb.auth_password or ''}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def signed_headers(secrets: Sequence[str], auth: str | None, msg_id: str, body: bytes,
                   timestamp: int) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": d.sign(secrets, msg_id, timestamp, body),
    }
    if auth is not None:
        headers["Authorization"] = auth
    return headers


def webhook_headers(cb: d.Callback, msg_id: str, body: bytes, now_us: int,
                    timestamp: int) -> dict[str, str]:
    return signed_headers(cb.signing_secrets(now_us), basic_auth(cb), msg_id, body, timestamp)


@dataclass(slots=True)
class Opened:
    delivery: d.Delivery
    body: bytes | None  # None: load it (stored after a failure) or rebuild it from its range
    kept: bool = False  # the body is stored already


class LaneRun:
    def __init__(self, worker: DeliveryWorker, lane: Lane, newest: int, now: Micros,
                 stats: RunStats, linger: float = 0.0) -> None:
        self.w = worker
        self.lane = lane
        self.key = lane.key
        self.now = now
        self.stats = stats
        self.opened: deque[Opened] = deque(Opened(x, None) for x in lane.open_batches)
        self.batcher = Batcher(worker.storage, lane, newest, worker.options.prefetch_batches,
                               worker.blocks)
        if self.opened:
            self.batcher.resume_after(self.opened[-1].delivery.advance_to)
        # Outcomes written behind, oldest first: (the write, the body of the batch it opens).
        self.behind: deque[tuple[asyncio.Future[Recorded], bytes | None]] = deque()
        self.active = True
        self.lease_us = int(worker.options.lease_seconds * 1_000_000)
        # Idle lanes stay held this long, woken by ingest: a new event then needs no claim.
        self.linger = linger
        self.seen = worker.generation
        # Per lane run, not per request: a secret expiring meanwhile only signs a bit longer.
        self.auth = basic_auth(lane.callback)
        self.secrets = lane.callback.signing_secrets(now())

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            # Shutting down: hand the lane back now rather than at the end of its lease, so
            # a restarted server (or another worker) carries on at once.
            await asyncio.gather(*(t for t, _ in self.behind), return_exceptions=True)
            await asyncio.shield(self.w.store.release(self.key, self.w.owner))
            raise
        finally:  # never leave a write unobserved
            await asyncio.gather(*(t for t, _ in self.behind), return_exceptions=True)

    async def _run(self) -> None:
        store, owner = self.w.store, self.w.owner
        for _ in range(self.w.options.batches_per_claim):
            await self._top_up()
            if not self.active:
                break
            if not self.opened:
                if self.linger and await self._linger():
                    continue
                idle = self.batcher.idle_position
                if idle > self.lane.position:
                    await store.advance(self.key, owner, idle, None, self.now())
                else:
                    await store.release(self.key, owner)
                return
            head = self.opened[0]
            if head.body is None:
                head.body, head.kept = await self._load_body(head.delivery)
            decision, result, at = await self._attempt(head.delivery, head.body)
            self.stats.requests += 1
            if decision.action not in (d.Action.SUCCEEDED, d.Action.DEAD):
                self.stats.failed += 1
                await self._absorb()
                rec = self._record(head, decision, result, at)
                await store.record(self.key, owner, rec)  # releases the lane
                return
            if decision.action is d.Action.SUCCEEDED:
                self.stats.succeeded += 1
                self.stats.events += head.delivery.count
            else:
                self.stats.failed += 1
            self.opened.popleft()
            if not await self._done_behind(head, decision, result, at):
                return  # nothing left; that write released the lane
            # Send on at once unless the writer lags too far, or nothing is opened yet.
            while self.behind and (len(self.behind) > MAX_BEHIND or not self.opened):
                await self._absorb_one()
            if not self.active:
                break
        await self._absorb()
        await store.release(self.key, owner)  # its turn is used up, or it stopped

    async def _top_up(self) -> None:
        """Open batches until LOOKAHEAD are open (only when no write is behind)."""
        while self.behind and not self.opened:
            await self._absorb_one()
        self.seen = self.w.generation  # ingest after this point wakes a lingering lane
        while self.active and not self.behind and len(self.opened) < LOOKAHEAD:
            batch = await self.batcher.take()
            if batch is None:
                return
            opened = await self.w.store.open_delivery(self.key, self.w.owner,
                                                      self._new(batch, self.now()))
            self.opened.append(Opened(opened, batch.body))

    async def _absorb_one(self) -> None:
        """Wait for the oldest write behind; it may have opened a batch."""
        task, body = self.behind.popleft()
        done = await task
        if done.next is not None:
            self.opened.append(Opened(done.next, body))
        if not done.lane_active:
            self.active = False

    async def _absorb(self) -> None:
        while self.behind:
            await self._absorb_one()

    async def _done_behind(self, head: Opened, decision: d.Decision, result: SendResult,
                           at: int) -> bool:
        """Write the head's outcome behind; False when the lane has nothing more."""
        self.seen = self.w.generation
        nxt = await self.batcher.take()
        keep = nxt is not None or bool(self.opened) or any(b is not None
                                                            for _, b in self.behind)
        position = head.delivery.advance_to
        if not keep:  # nothing left: the lane moves past what it looked at
            position = max(position, self.batcher.idle_position)
            keep = self.linger > 0  # and is released, unless it lingers
        rec = self._record(head, decision, result, at, position=position,
                           lease_until=at + self.lease_us if keep else None,
                           next=self._new(nxt, at) if nxt is not None else None)
        write = asyncio.ensure_future(self.w.store.record(self.key, self.w.owner, rec))
        self.behind.append((write, nxt.body if nxt is not None else None))
        if not keep:
            await self._absorb()
        return keep

    async def _linger(self) -> bool:
        """Wait (holding the lane) for ingest to signal new events; False on timeout."""
        await self._absorb()
        if not self.active:
            return False
        return await self.w.wait_for_events(self.seen, self.linger)

    # --- one batch -------------------------------------------------------------------

    def _new(self, batch: Batch, at: int) -> NewDelivery:
        sub = self.lane.subscription
        return NewDelivery(
            msg_id=d.new_msg_id(), domain=sub.domain, subscription_id=sub.id,
            replay_id=self.key.replay_id, after_index=batch.after_index,
            first_index=batch.events[0].index, last_index=batch.events[-1].index,
            advance_to=batch.advance_to, count=len(batch.events), created_at=at)

    async def _load_body(self, batch: d.Delivery) -> tuple[bytes, bool]:
        stored = await self.w.store.delivery_body(batch.id)
        if stored is not None:
            return stored, True
        events = await rebuild(self.w.storage, self.lane, batch)
        # Empty only if retention removed the events meanwhile; the receiver gets "[]" once
        # and the lane moves on, rather than stalling on a batch that cannot be rebuilt.
        return batch_body(events), False

    async def _attempt(self, batch: d.Delivery,
                       body: bytes) -> tuple[d.Decision, SendResult, int]:
        w, cb = self.w, self.lane.callback
        number = batch.attempts + 1
        url = cb.url_for_attempt(number)
        wall = w.wall()
        headers = self._headers(batch.msg_id, body, int(wall))
        result = await w.sender.send(url, body, headers)
        at = self.now()
        outcome = d.classify(result.status)
        retry_after = d.parse_retry_after(result.retry_after, wall)
        decision = d.next_attempt(number, outcome, w.options.schedule, w.rng, retry_after)
        # Failing for too long disables the callback, and keeps the batch pending (even one
        # whose retries just ran out), so re-enabling resumes exactly where it stopped.
        if outcome is d.Outcome.RETRY and d.should_disable(cb.failing_since, at,
                                                           w.options.disable_after):
            since = format_time(cb.failing_since or at)
            decision = d.Decision(d.Action.DISABLE, reason=(
                f"disabled: every attempt failed since {since}; last: {result.error}"))
        elif decision.action is d.Action.DISABLE:
            decision = replace(decision, reason=f"disabled: {url} answered 410 Gone at "
                                                f"{format_time(at)}")
        return decision, result, at

    def _headers(self, msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
        return signed_headers(self.secrets, self.auth, msg_id, body, timestamp)

    def _record(self, head: Opened, decision: d.Decision, result: SendResult, at: int, *,
                position: int | None = None, lease_until: int | None = None,
                next: NewDelivery | None = None) -> AttemptRecord:
        batch, action = head.delivery, decision.action
        number = batch.attempts + 1
        state = {d.Action.SUCCEEDED: d.DeliveryState.SUCCEEDED,
                 d.Action.DEAD: d.DeliveryState.DEAD}.get(action, d.DeliveryState.PENDING)
        retry_at = at + int(decision.delay * 1_000_000) if action is d.Action.RETRY else None
        error = result.error
        if action is d.Action.DEAD and decision.reason:
            error = f"{decision.reason}; last: {result.error}"
        delivery = d.Delivery(  # not dataclasses.replace: this runs for every request
            batch.id, batch.msg_id, batch.domain, batch.subscription_id, batch.after_index,
            batch.first_index, batch.last_index, batch.advance_to, batch.count,
            batch.replay_id, state, number, retry_at, result.status, error,
            batch.created_at, at)
        attempt = d.Attempt(batch.id, at, self.lane.callback.url_for_attempt(number),
                            result.status, round(result.latency_ms, 3), result.error,
                            action.value)
        keep_body = action is not d.Action.SUCCEEDED and not head.kept
        outcome = d.classify(result.status)
        done = state is not d.DeliveryState.PENDING
        return AttemptRecord(
            delivery=delivery, attempt=attempt, body=head.body if keep_body else None,
            position=(position or batch.advance_to) if done else None,
            retry_at=retry_at,
            failing="clear" if action is d.Action.SUCCEEDED else
            "start" if outcome is d.Outcome.RETRY else None,
            disable_reason=decision.reason if action is d.Action.DISABLE else None,
            lease_until=lease_until, next=next,
        )
