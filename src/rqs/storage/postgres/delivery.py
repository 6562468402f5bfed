"""The PostgreSQL delivery store: any number of workers, in any number of processes.

Lanes are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` inside a transaction that
also writes the lease, so two workers never claim the same lane and never wait for each
other. Every later write of a worker locks the lane's row and checks that the lease is
still its own; a worker whose lease expired and was taken over changes nothing but the
attempts log. Connections come from the event store's pool.

A worker claims and records all the time, so both run pipelined: statements go out
without waiting for each other, BEGIN and COMMIT ride along, and only a result the code
must look at before going on costs a round trip. Each takes two.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

import psycopg

from rqs.domain.delivery import (
    Attempt,
    Callback,
    CallbackStatus,
    Delivery,
    DeliveryState,
    Replay,
    Subscription,
)
from rqs.errors import Conflict, NotFound
from rqs.storage import delivery_rows as rows
from rqs.storage.delivery_base import (
    LIVE,
    AttemptRecord,
    Lane,
    LaneKey,
    LaneStopped,
    LeaseLost,
    NewDelivery,
    Recorded,
)
from rqs.storage.postgres import delivery_sql as q
from rqs.storage.postgres.connection import Conn, pipelined_transaction

T = TypeVar("T")
Row = tuple[Any, ...]


class PostgresDeliveryStore:
    def __init__(self, connections: Callable[[], Any]) -> None:
        # ``connections()`` is the event store's pooled-connection context manager.
        self._connections = connections
        self._tails: dict[LaneKey, asyncio.Future[None]] = {}  # the last record per lane

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[Conn]:
        async with self._connections() as conn, conn.transaction():
            yield conn

    async def _run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        async with self._tx() as conn:
            return await fn(conn, *args)

    async def _one(self, sql: str, params: Any) -> Row | None:
        async with self._connections() as conn:
            found: Row | None = await (await conn.execute(sql, params)).fetchone()
            return found

    async def _all(self, sql: str, params: Any) -> list[Row]:
        async with self._connections() as conn:
            found: list[Row] = await (await conn.execute(sql, params)).fetchall()
            return found

    # --- callbacks -----------------------------------------------------------------

    async def create_callback(self, callback: Callback) -> None:
        try:
            async with self._tx() as conn:
                await conn.execute(q.INSERT_CALLBACK, rows.callback_row(callback))
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"callback {callback.name!r} exists") from None

    async def get_callback(self, domain: str, name: str) -> Callback | None:
        found = await self._one(q.GET_CALLBACK, (domain, name))
        return rows.callback_of(found) if found else None

    async def list_callbacks(self, domain: str) -> list[Callback]:
        return [rows.callback_of(r) for r in await self._all(q.LIST_CALLBACKS, (domain,))]

    async def update_callback(self, callback: Callback) -> None:
        await self._run(_update_callback, callback)

    async def delete_callback(self, domain: str, name: str) -> bool:
        async def run(conn: Conn) -> bool:
            if await (await conn.execute(q.CALLBACK_IN_USE, (domain, name))).fetchone():
                raise Conflict(f"callback {name!r} has subscriptions; delete them first")
            return (await conn.execute(q.DELETE_CALLBACK, (domain, name))).rowcount > 0

        return await self._run(run)

    # --- subscriptions ---------------------------------------------------------------

    async def create_subscription(self, sub: Subscription) -> Subscription:
        try:
            async with self._tx() as conn:
                cur = await conn.execute(q.INSERT_SUBSCRIPTION, rows.subscription_values(sub))
                new_id = await _returned_id(cur)
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"subscription {sub.name!r} exists") from None
        return replace(sub, id=new_id)

    async def get_subscription(self, domain: str, name: str) -> Subscription | None:
        found = await self._one(q.GET_SUBSCRIPTION, (domain, name))
        return rows.subscription_of(found) if found else None

    async def list_subscriptions(
        self, domain: str, callback: str | None = None
    ) -> list[Subscription]:
        if callback is None:
            found = await self._all(q.LIST_SUBSCRIPTIONS, (domain,))
        else:
            found = await self._all(q.LIST_SUBSCRIPTIONS_OF, (domain, callback))
        return [rows.subscription_of(r) for r in found]

    async def update_subscription(self, sub: Subscription) -> None:
        params = rows.subscription_update_values(sub)
        async with self._tx() as conn:
            if (await conn.execute(q.UPDATE_SUBSCRIPTION, params)).rowcount == 0:
                raise NotFound(f"no subscription {sub.name!r}")

    async def delete_subscription(self, domain: str, name: str) -> bool:
        async with self._tx() as conn:
            found = await (await conn.execute(q.SUBSCRIPTION_ID, (domain, name))).fetchone()
            if found is None:
                return False
            for sql in q.DELETE_SUBSCRIPTION_ALL:
                await conn.execute(sql, {"id": found[0]})
            return True

    # --- the worker's side -----------------------------------------------------------

    async def active_domains(self) -> list[str]:
        return [r[0] for r in await self._all(q.ACTIVE_DOMAINS, None)]

    async def claim(
        self, owner: str, now: int, lease_until: int, newest: Mapping[str, int], limit: int
    ) -> list[Lane]:
        if limit <= 0:
            return []
        params = {"owner": owner, "now": now, "lease_until": lease_until, "limit": limit,
                  "domains": list(newest), "newest": list(newest.values())}
        batches = None
        async with self._connections() as conn:
            # The batches are read by a statement of their own, after the claim locked
            # their lanes (see OPEN_DELIVERIES): a second round trip, shared with COMMIT.
            async with pipelined_transaction(conn):
                claimed = await (await conn.execute(q.CLAIM, params)).fetchall()
                if claimed:
                    subscription_ids = [r[rows.REPLAY_WIDTH] for r in claimed]
                    replay_ids = [r[0] or LIVE for r in claimed]
                    batches = await conn.execute(q.OPEN_DELIVERIES,
                                                 (subscription_ids, replay_ids))
            opened = await batches.fetchall() if batches else []
        return _lanes(claimed, [rows.delivery_of(r) for r in opened], lease_until)

    async def open_delivery(self, lane: LaneKey, owner: str, new: NewDelivery) -> Delivery:
        async def run(conn: Conn) -> Delivery:
            state = await _lane_state(conn, lane)
            if state is None or state[2] != owner:
                raise LeaseLost(f"lane {lane} is no longer held by {owner}")
            if not state[3]:
                raise LaneStopped(f"lane {lane} is paused, disabled or finished")
            return await _insert_delivery(conn, new)

        try:
            return await self._run(run)
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"lane {lane} has a pending batch already") from None

    async def record(self, lane: LaneKey, owner: str, rec: AttemptRecord) -> Recorded:
        # Records of one lane apply in call order (a worker writes outcomes behind while
        # the next request is out): each waits for the previous one of its lane, since
        # pooled connections would otherwise race for the lane's row lock.
        previous = self._tails.get(lane)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tails[lane] = mine
        try:
            if previous is not None:
                await asyncio.shield(previous)
            async with self._connections() as conn:
                return await _record(conn, lane, owner, rec)
        finally:
            mine.set_result(None)
            if self._tails.get(lane) is mine:
                del self._tails[lane]

    async def advance(
        self, lane: LaneKey, owner: str, position: int, lease_until: int | None, now: int
    ) -> bool:
        async def run(conn: Conn) -> bool:
            if not await _owns(conn, lane, owner):
                return False
            await _move_lane(conn, lane, position, None, lease_until, 0, now)
            return True

        return await self._run(run)

    async def release(self, lane: LaneKey, owner: str) -> None:
        async with self._connections() as conn:
            if lane.replay_id:
                await conn.execute(q.RELEASE_REPLAY, (lane.replay_id, owner))
            else:
                await conn.execute(q.RELEASE_SUBSCRIPTION, (lane.subscription_id, owner))

    async def next_due(self) -> int | None:
        found = await self._one(q.NEXT_DUE, None)
        return int(found[0]) if found and found[0] is not None else None

    # --- reading back ----------------------------------------------------------------

    async def get_delivery(self, domain: str, delivery_id: int) -> Delivery | None:
        found = await self._one(q.GET_DELIVERY, (domain, delivery_id))
        return rows.delivery_of(found) if found else None

    async def delivery_body(self, delivery_id: int) -> bytes | None:
        found = await self._one(q.DELIVERY_BODY, (delivery_id,))
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
        sql, params = rows.list_deliveries_query("%s", domain, subscription_id, state,
                                                 before_id, limit)
        return [rows.delivery_of(r) for r in await self._all(sql, params)]

    async def list_attempts(self, domain: str, delivery_id: int) -> list[Attempt]:
        return [rows.attempt_of(r)
                for r in await self._all(q.LIST_ATTEMPTS, (domain, delivery_id))]

    # --- replays -----------------------------------------------------------------------

    async def create_replay(self, replay: Replay) -> Replay:
        async with self._tx() as conn:
            cur = await conn.execute(q.INSERT_REPLAY, rows.replay_values(replay))
            new_id = await _returned_id(cur)
        return replace(replay, id=new_id)

    async def get_replay(self, domain: str, replay_id: int) -> Replay | None:
        found = await self._one(q.GET_REPLAY, (domain, replay_id))
        return rows.replay_of(found) if found else None

    async def list_replays(self, domain: str, subscription_id: int) -> list[Replay]:
        return [rows.replay_of(r)
                for r in await self._all(q.LIST_REPLAYS, (domain, subscription_id))]

    async def cancel_replay(self, domain: str, replay_id: int, now: int) -> bool:
        async with self._tx() as conn:
            if (await conn.execute(q.CANCEL_REPLAY, (now, domain, replay_id))).rowcount == 0:
                return False
            await conn.execute(q.DROP_REPLAY_PENDING, (now, replay_id))
            return True

    # --- retention ---------------------------------------------------------------------

    async def purge_delivery_log(self, cutoff: int, max_rows: int) -> int:
        removed = 0
        async with self._tx() as conn:
            for sql in q.PURGE_LOG:
                removed += (await conn.execute(sql, (cutoff, max_rows))).rowcount
        return removed


# --- transactions ----------------------------------------------------------------------


async def _update_callback(conn: Conn, cb: Callback) -> None:
    before = await (await conn.execute(q.LOCK_CALLBACK, (cb.domain, cb.name))).fetchone()
    if before is None:
        raise NotFound(f"no callback {cb.name!r}")
    await conn.execute(q.UPDATE_CALLBACK, (*rows.callback_row(cb)[2:], cb.domain, cb.name))
    if before[0] != CallbackStatus.ACTIVE and cb.status is CallbackStatus.ACTIVE:
        # Re-enabled: pending batches start their schedule over, lanes may run at once.
        for sql in q.REENABLE:
            await conn.execute(sql, {"domain": cb.domain, "name": cb.name})


async def _lane_state(conn: Conn, lane: LaneKey) -> Row | None:
    """(domain, callback, lease owner, active) of a lane, locked; None if it is gone."""
    # Both sent before either is read: in a pipeline, they share one round trip.
    sub_cur = await conn.execute(q.LANE_STATE, (lane.subscription_id,))
    rep_cur = await conn.execute(q.REPLAY_STATE, (lane.replay_id,)) if lane.replay_id else None
    found: Row | None = await sub_cur.fetchone()
    if found is not None and rep_cur is not None:
        rep = await rep_cur.fetchone()
        found = None if rep is None else (found[0], found[1], rep[0], found[3] and rep[1])
    return found


async def _owns(conn: Conn, lane: LaneKey, owner: str) -> bool:
    if lane.replay_id:
        cur = await conn.execute(q.REPLAY_OWNER, (lane.replay_id,))
    else:
        cur = await conn.execute(q.SUBSCRIPTION_OWNER, (lane.subscription_id,))
    found = await cur.fetchone()
    return found is not None and found[0] == owner


async def _returned_id(cur: psycopg.AsyncCursor[tuple[Any, ...]]) -> int:
    """The id an ``INSERT … RETURNING id`` gave (it always gives one)."""
    found = await cur.fetchone()
    assert found is not None
    return int(found[0])


async def _send_delivery(conn: Conn, n: NewDelivery) -> psycopg.AsyncCursor[Row]:
    """Open a batch: the lane's head (pending) if it has none, else queued behind it."""
    return await conn.execute(q.INSERT_DELIVERY, (*rows.new_delivery_values(n),
                                                  n.subscription_id, n.replay_id))


async def _opened(cur: psycopg.AsyncCursor[Row], n: NewDelivery) -> Delivery:
    """The batch ``_send_delivery`` opened."""
    found = await cur.fetchone()
    assert found is not None  # RETURNING always yields the new row
    return rows.opened_delivery(int(found[0]), found[1], n)


async def _insert_delivery(conn: Conn, n: NewDelivery) -> Delivery:
    return await _opened(await _send_delivery(conn, n), n)


async def _move_lane(conn: Conn, lane: LaneKey, position: int | None, retry_at: int | None,
                     lease_until: int | None, delivered: int, now: int) -> None:
    params = {"position": position, "retry_at": retry_at, "lease_until": lease_until,
              "clear": lease_until is None, "delivered": delivered, "now": now,
              "id": lane.replay_id or lane.subscription_id}
    await conn.execute(q.MOVE_REPLAY if lane.replay_id else q.MOVE_SUBSCRIPTION, params)


async def _record(conn: Conn, lane: LaneKey, owner: str, rec: AttemptRecord) -> Recorded:
    d, a = rec.delivery, rec.attempt
    opening = None
    # Whether the lane is still ours decides what to write, so reading its state waits
    # for the server; everything after it goes out at once with COMMIT.
    async with pipelined_transaction(conn):
        await conn.execute(q.INSERT_ATTEMPT, (a.delivery_id, a.at, a.url, a.status_code,
                                              a.latency_ms, a.error, a.outcome))
        batch = await conn.execute(q.DELIVERY_STATE, (d.id,))  # read with the lane's state
        state = await _lane_state(conn, lane)
        if state is None or state[2] != owner:
            # Deleted meanwhile, or another worker took the lane over: the attempt is
            # logged, and nothing else changes (the new holder decides about the batch).
            return Recorded(None, False)
        if await batch.fetchone() != (DeliveryState.PENDING.value,):
            return Recorded(None, False)  # not the lane's head: it stops (see delivery_base)
        domain, callback, _, active = state
        await conn.execute(q.UPDATE_DELIVERY, {
            "state": d.state.value, "attempts": d.attempts, "next_at": d.next_attempt_at,
            "status": d.last_status, "error": d.last_error, "updated": d.updated_at,
            "body": rec.body, "id": d.id})
        if rec.failing == "start":
            await conn.execute(q.CALLBACK_FAILING, (a.at, domain, callback))
        elif rec.failing == "clear":
            await conn.execute(q.CALLBACK_RECOVERED, (domain, callback))
        if rec.disable_reason is not None:
            await conn.execute(q.DISABLE_CALLBACK, (rec.disable_reason, a.at, domain, callback))
            active = False
        done = d.state is not DeliveryState.PENDING
        if done:  # the next opened batch becomes the head
            await conn.execute(q.PROMOTE_QUEUED, (lane.subscription_id, lane.replay_id))
        await _move_lane(conn, lane, rec.position, rec.retry_at, rec.lease_until,
                         d.count if done else 0, a.at)
        if active and rec.next is not None:
            opening = await _send_delivery(conn, rec.next)
    if opening is None or rec.next is None:
        return Recorded(None, active)
    return Recorded(await _opened(opening, rec.next), True)


def _lanes(claimed: list[Row], opened: list[Delivery], lease_until: int) -> list[Lane]:
    """CLAIM's rows (replay, subscription, callback) as lanes, each with its open batches."""
    n_sub, n_rep = rows.SUBSCRIPTION_WIDTH, rows.REPLAY_WIDTH
    batches: dict[LaneKey, list[Delivery]] = {}
    for x in opened:
        batches.setdefault(LaneKey(x.subscription_id, x.replay_id or LIVE), []).append(x)
    lanes = []
    for r in claimed:
        rep = rows.replay_of(r[:n_rep]) if r[0] is not None else None
        sub = rows.subscription_of(r[n_rep:n_rep + n_sub])
        cb = rows.callback_of(r[n_rep + n_sub:])
        key = LaneKey(sub.id, rep.id if rep else LIVE)
        lanes.append(rows.lane_of(sub, cb, rep, batches.get(key, []), lease_until))
    return lanes
