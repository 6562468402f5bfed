"""The SQLite delivery store: it shares the event store's writer process and reader pool.

Every write is a job on the single writer (``Writer.submit``), so a claim and the lease
check of each later write are atomic without any extra locking, and concurrent lanes'
writes share group commits. Leases are still written to the database, so a second
process (``rqs worker`` next to ``rqs serve``) could not take a lane either.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import apsw

from rqs.domain.delivery import (
    Attempt,
    Callback,
    Delivery,
    DeliveryState,
    Replay,
    Subscription,
)
from rqs.storage import delivery_rows as rows
from rqs.storage.delivery_base import (
    AttemptRecord,
    Lane,
    LaneKey,
    NewDelivery,
    Recorded,
)
from rqs.storage.sqlite import delivery_jobs as jobs
from rqs.storage.sqlite import delivery_sql as q
from rqs.storage.sqlite.coalesce import Coalescer
from rqs.storage.sqlite.writer import Writer

T = TypeVar("T")
Reader = Callable[..., Awaitable[Any]]


class SqliteDeliveryStore:
    def __init__(self, writer: Writer, read: Reader) -> None:
        self._writer = writer
        self._read = read
        self._records = Coalescer(writer, jobs.record_job)

    async def _r(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._read(fn, *args)
        return result

    # --- callbacks -----------------------------------------------------------------

    async def create_callback(self, callback: Callback) -> None:
        await self._writer.submit(jobs.create_callback, rows.callback_row(callback))

    async def get_callback(self, domain: str, name: str) -> Callback | None:
        found = await self._r(lambda c: c.execute(q.GET_CALLBACK, (domain, name)).fetchone())
        return rows.callback_of(found) if found else None

    async def list_callbacks(self, domain: str) -> list[Callback]:
        return await self._r(
            lambda c: [rows.callback_of(r) for r in c.execute(q.LIST_CALLBACKS, (domain,))])

    async def update_callback(self, callback: Callback) -> None:
        await self._writer.submit(jobs.update_callback, callback)

    async def delete_callback(self, domain: str, name: str) -> bool:
        return await self._writer.submit(jobs.delete_callback, domain, name)

    # --- subscriptions ---------------------------------------------------------------

    async def create_subscription(self, sub: Subscription) -> Subscription:
        new_id = await self._writer.submit(jobs.create_subscription,
                                           rows.subscription_values(sub))
        return replace(sub, id=new_id)

    async def get_subscription(self, domain: str, name: str) -> Subscription | None:
        found = await self._r(lambda c: c.execute(q.GET_SUBSCRIPTION, (domain, name)).fetchone())
        return rows.subscription_of(found) if found else None

    async def list_subscriptions(
        self, domain: str, callback: str | None = None
    ) -> list[Subscription]:
        def run(c: apsw.Connection) -> list[Subscription]:
            if callback is None:
                found = c.execute(q.LIST_SUBSCRIPTIONS, (domain,))
            else:
                found = c.execute(q.LIST_SUBSCRIPTIONS_OF, (domain, callback))
            return [rows.subscription_of(r) for r in found]

        return await self._r(run)

    async def update_subscription(self, sub: Subscription) -> None:
        await self._writer.submit(jobs.update_subscription, rows.subscription_update_values(sub))

    async def delete_subscription(self, domain: str, name: str) -> bool:
        return await self._writer.submit(jobs.delete_subscription, domain, name)

    # --- the worker's side -----------------------------------------------------------

    async def active_domains(self) -> list[str]:
        return await self._r(lambda c: [r[0] for r in c.execute(q.ACTIVE_DOMAINS)])

    async def claim(
        self, owner: str, now: int, lease_until: int, newest: Mapping[str, int], limit: int
    ) -> list[Lane]:
        return await self._writer.submit(jobs.claim_job, owner, now, lease_until, dict(newest),
                                         limit)

    async def open_delivery(self, lane: LaneKey, owner: str, new: NewDelivery) -> Delivery:
        return await self._writer.submit(jobs.open_delivery, lane, owner, new)

    def record(self, lane: LaneKey, owner: str, rec: AttemptRecord) -> asyncio.Future[Recorded]:
        d, a, n = rec.delivery, rec.attempt, rec.next
        flat = (lane.subscription_id, lane.replay_id, owner,
                (d.id, d.state.value, d.attempts, d.next_attempt_at, d.last_status,
                 d.last_error, d.updated_at, d.count),
                (a.delivery_id, a.at, a.url, a.status_code, a.latency_ms, a.error, a.outcome),
                rec.body, rec.position, rec.retry_at, rec.failing, rec.disable_reason,
                rec.lease_until, rows.new_delivery_values(n) if n is not None else None)
        # Queued now, in call order (the coalescer keeps it): no task per record.
        written = self._records.submit(flat)
        recorded: asyncio.Future[Recorded] = written.get_loop().create_future()
        written.add_done_callback(functools.partial(_settle_record, recorded, n))
        return recorded

    async def advance(
        self, lane: LaneKey, owner: str, position: int, lease_until: int | None, now: int
    ) -> bool:
        return await self._writer.submit(jobs.advance_job, lane, owner, position, lease_until, now)

    async def release(self, lane: LaneKey, owner: str) -> None:
        table = "replays" if lane.replay_id else "subscriptions"
        lane_id = lane.replay_id or lane.subscription_id
        await self._writer.submit(jobs.execute_job, q.RELEASE.format(table=table), (lane_id, owner))

    async def next_due(self) -> int | None:
        found = await self._r(lambda c: c.execute(q.NEXT_DUE).fetchone())
        return int(found[0]) if found and found[0] is not None else None

    # --- reading back ----------------------------------------------------------------

    async def get_delivery(self, domain: str, delivery_id: int) -> Delivery | None:
        found = await self._r(
            lambda c: c.execute(q.GET_DELIVERY, (domain, delivery_id)).fetchone())
        return rows.delivery_of(found) if found else None

    async def delivery_body(self, delivery_id: int) -> bytes | None:
        found = await self._r(lambda c: c.execute(q.DELIVERY_BODY, (delivery_id,)).fetchone())
        return bytes(found[0]) if found and found[0] is not None else None

    async def list_deliveries(
        self,
        domain: str,
        *,
        subscription_id: int | None = None,
        state: DeliveryState | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        sql, params = rows.list_deliveries_query("?", domain, subscription_id, state, before_id,
                                                 limit)
        return await self._r(lambda c: [rows.delivery_of(r) for r in c.execute(sql, params)])

    async def list_attempts(self, domain: str, delivery_id: int) -> list[Attempt]:
        return await self._r(lambda c: [
            rows.attempt_of(r) for r in c.execute(q.LIST_ATTEMPTS, (domain, delivery_id))])

    # --- replays -----------------------------------------------------------------------

    async def create_replay(self, replay: Replay) -> Replay:
        new_id = await self._writer.submit(jobs.inserted_id, q.INSERT_REPLAY,
                                           rows.replay_values(replay))
        return replace(replay, id=new_id)

    async def get_replay(self, domain: str, replay_id: int) -> Replay | None:
        found = await self._r(lambda c: c.execute(q.GET_REPLAY, (domain, replay_id)).fetchone())
        return rows.replay_of(found) if found else None

    async def list_replays(self, domain: str, subscription_id: int) -> list[Replay]:
        return await self._r(lambda c: [
            rows.replay_of(r) for r in c.execute(q.LIST_REPLAYS, (domain, subscription_id))])

    async def cancel_replay(self, domain: str, replay_id: int, now: int) -> bool:
        return await self._writer.submit(jobs.cancel_replay, domain, replay_id, now)

    # --- retention ---------------------------------------------------------------------

    async def purge_delivery_log(self, cutoff: int, max_rows: int) -> int:
        return await self._writer.submit(jobs.purge_log, cutoff, max_rows)


def _settle_record(recorded: asyncio.Future[Recorded], n: NewDelivery | None,
                   written: asyncio.Future[tuple[tuple[int, str] | None, bool]]) -> None:
    if written.cancelled():
        recorded.cancel()
        return
    failed = written.exception()  # retrieved even if nobody waits any more
    if recorded.done():  # its waiter was cancelled
        return
    if failed is not None:
        recorded.set_exception(failed)
        return
    try:
        opened, active = written.result()
        nxt = rows.opened_delivery(*opened, n) if opened is not None and n else None
    except Exception as exc:  # never leave the lane waiting on a future nobody settles
        recorded.set_exception(exc)
        return
    recorded.set_result(Recorded(nxt, active))
