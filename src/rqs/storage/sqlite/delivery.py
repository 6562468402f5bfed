"""The SQLite delivery store: it shares the event store's writer thread and reader pool.

Every write is a job on the single writer (``Writer.submit``), so a claim and the lease
check of each later write are atomic without any extra locking, and concurrent lanes'
writes share group commits. Leases are still written to the database, so a second
process (``rqs worker`` next to ``rqs serve``) could not take a lane either.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import apsw

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
    LeaseLost,
    NewDelivery,
    Recorded,
    encode_filters,
)
from rqs.storage.sqlite import delivery_sql as q
from rqs.storage.sqlite.coalesce import Coalescer
from rqs.storage.sqlite.writer import Writer

T = TypeVar("T")
Reader = Callable[..., Awaitable[Any]]


class SqliteDeliveryStore:
    def __init__(self, writer: Writer, read: Reader) -> None:
        self._writer = writer
        self._read = read
        self._records = Coalescer(writer, _record)

    async def _r(self, fn: Callable[..., T], *args: Any) -> T:
        result: T = await self._read(fn, *args)
        return result

    # --- callbacks -----------------------------------------------------------------

    async def create_callback(self, callback: Callback) -> None:
        await self._writer.submit(_create_callback, rows.callback_row(callback))

    async def get_callback(self, domain: str, name: str) -> Callback | None:
        found = await self._r(lambda c: c.execute(q.GET_CALLBACK, (domain, name)).fetchone())
        return rows.callback_of(found) if found else None

    async def list_callbacks(self, domain: str) -> list[Callback]:
        return await self._r(
            lambda c: [rows.callback_of(r) for r in c.execute(q.LIST_CALLBACKS, (domain,))])

    async def update_callback(self, callback: Callback) -> None:
        await self._writer.submit(_update_callback, callback)

    async def delete_callback(self, domain: str, name: str) -> bool:
        return await self._writer.submit(_delete_callback, domain, name)

    # --- subscriptions ---------------------------------------------------------------

    async def create_subscription(self, sub: Subscription) -> Subscription:
        new_id = await self._writer.submit(_create_subscription,
                                           rows.subscription_values(sub))
        return Subscription(sub.domain, sub.name, sub.callback, sub.event_types, sub.filters,
                            sub.status, sub.status_reason, sub.position, new_id,
                            sub.created_at, sub.updated_at)

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
        params = (sub.callback, json.dumps(list(sub.event_types)), encode_filters(sub.filters),
                  sub.status.value, sub.status_reason, sub.updated_at, sub.domain, sub.name)
        await self._writer.submit(_update_subscription, params)

    async def delete_subscription(self, domain: str, name: str) -> bool:
        return await self._writer.submit(_delete_subscription, domain, name)

    # --- the worker's side -----------------------------------------------------------

    async def active_domains(self) -> list[str]:
        return await self._r(lambda c: [r[0] for r in c.execute(q.ACTIVE_DOMAINS)])

    async def claim(
        self, owner: str, now: int, lease_until: int, newest: Mapping[str, int], limit: int
    ) -> list[Lane]:
        return await self._writer.submit(_claim, owner, now, lease_until, dict(newest), limit)

    async def open_delivery(self, lane: LaneKey, owner: str, new: NewDelivery) -> Delivery:
        return await self._writer.submit(_open_delivery, lane, owner, new)

    async def record(self, lane: LaneKey, owner: str, rec: AttemptRecord) -> Recorded:
        d, a, n = rec.delivery, rec.attempt, rec.next
        flat = (lane.subscription_id, lane.replay_id, owner,
                (d.id, d.state.value, d.attempts, d.next_attempt_at, d.last_status,
                 d.last_error, d.updated_at, d.count),
                (a.delivery_id, a.at, a.url, a.status_code, a.latency_ms, a.error, a.outcome),
                rec.body, rec.position, rec.retry_at, rec.failing, rec.disable_reason,
                rec.lease_until, _flat_new(n) if n is not None else None)
        opened, active = await self._records.submit(flat)
        return Recorded(_opened(*opened, n) if opened is not None and n else None, active)

    async def advance(
        self, lane: LaneKey, owner: str, position: int, lease_until: int | None, now: int
    ) -> bool:
        return await self._writer.submit(_advance, lane, owner, position, lease_until, now)

    async def release(self, lane: LaneKey, owner: str) -> None:
        table = "replays" if lane.replay_id else "subscriptions"
        lane_id = lane.replay_id or lane.subscription_id
        await self._writer.submit(_execute, q.RELEASE.format(table=table), (lane_id, owner))

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
        where = ["domain = ?"]
        params: list[Any] = [domain]
        for column, value in (("subscription_id", subscription_id), ("state", state)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(str(value) if column == "state" else value)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        sql = (f"SELECT {rows.DELIVERY_COLUMNS} FROM deliveries WHERE {' AND '.join(where)} "
               "ORDER BY id DESC LIMIT ?")
        return await self._r(
            lambda c: [rows.delivery_of(r) for r in c.execute(sql, (*params, limit))])

    async def list_attempts(self, domain: str, delivery_id: int) -> list[Attempt]:
        return await self._r(lambda c: [
            rows.attempt_of(r) for r in c.execute(q.LIST_ATTEMPTS, (domain, delivery_id))])

    # --- replays -----------------------------------------------------------------------

    async def create_replay(self, replay: Replay) -> Replay:
        r = replay
        params = (r.domain, r.subscription_id, r.after_index, r.through_index, r.since, r.until,
                  r.position, r.state.value, r.delivered, r.created_at, r.updated_at)
        new_id = await self._writer.submit(_returned_id, q.INSERT_REPLAY, params)
        return Replay(new_id, r.domain, r.subscription_id, r.after_index, r.through_index,
                      r.since, r.until, r.position, r.state, r.delivered, r.created_at,
                      r.updated_at)

    async def get_replay(self, domain: str, replay_id: int) -> Replay | None:
        found = await self._r(lambda c: c.execute(q.GET_REPLAY, (domain, replay_id)).fetchone())
        return rows.replay_of(found) if found else None

    async def list_replays(self, domain: str, subscription_id: int) -> list[Replay]:
        return await self._r(lambda c: [
            rows.replay_of(r) for r in c.execute(q.LIST_REPLAYS, (domain, subscription_id))])

    async def cancel_replay(self, domain: str, replay_id: int, now: int) -> bool:
        return await self._writer.submit(_cancel_replay, domain, replay_id, now)

    # --- retention ---------------------------------------------------------------------

    async def purge_delivery_log(self, cutoff: int, max_rows: int) -> int:
        return await self._writer.submit(_purge_log, cutoff, max_rows)


# --- writer jobs: module-level, so they can be sent to the writer process -----------------


def _execute(c: apsw.Connection, sql: str, params: tuple[Any, ...]) -> None:
    c.execute(sql, params)


def _create_callback(c: apsw.Connection, row: tuple[Any, ...]) -> None:
    try:
        c.execute(q.INSERT_CALLBACK, row)
    except apsw.ConstraintError:
        raise Conflict(f"callback {row[1]!r} exists") from None


def _delete_callback(c: apsw.Connection, domain: str, name: str) -> bool:
    if c.execute(q.CALLBACK_IN_USE, (domain, name)).fetchone():
        raise Conflict(f"callback {name!r} has subscriptions; delete them first")
    c.execute(q.DELETE_CALLBACK, (domain, name))
    return c.changes() > 0


def _create_subscription(c: apsw.Connection, values: tuple[Any, ...]) -> int:
    try:
        return _returned_id(c, q.INSERT_SUBSCRIPTION, values)
    except apsw.ConstraintError:
        raise Conflict(f"subscription {values[1]!r} exists") from None


def _update_subscription(c: apsw.Connection, params: tuple[Any, ...]) -> None:
    c.execute(q.UPDATE_SUBSCRIPTION, params)
    if c.changes() == 0:
        raise NotFound(f"no subscription {params[-1]!r}")


def _delete_subscription(c: apsw.Connection, domain: str, name: str) -> bool:
    found = c.execute(q.SUBSCRIPTION_ID, (domain, name)).fetchone()
    if found is None:
        return False
    for sql in q.DELETE_SUBSCRIPTION_ALL:
        c.execute(sql, (found[0],))
    return True


def _open_delivery(c: apsw.Connection, lane: LaneKey, owner: str, new: NewDelivery) -> Delivery:
    if not _owns(c, lane, owner):
        raise LeaseLost(f"lane {lane} is no longer held by {owner}")
    try:
        return _insert_delivery(c, new)
    except apsw.ConstraintError:
        raise Conflict(f"lane {lane} has a pending batch already") from None


def _advance(c: apsw.Connection, lane: LaneKey, owner: str, position: int,
             lease_until: int | None, now: int) -> bool:
    if not _owns(c, lane, owner):
        return False
    _move_lane(c, lane, position, None, lease_until, 0, now)
    return True


def _cancel_replay(c: apsw.Connection, domain: str, replay_id: int, now: int) -> bool:
    c.execute(q.CANCEL_REPLAY, (now, domain, replay_id))
    if c.changes() == 0:
        return False
    c.execute(q.DROP_REPLAY_PENDING, (now, replay_id))
    return True


def _purge_log(c: apsw.Connection, cutoff: int, max_rows: int) -> int:
    removed = 0
    for sql in q.PURGE_LOG:
        c.execute(sql, (cutoff, max_rows))
        removed += c.changes()
    return removed


def _returned_id(c: apsw.Connection, sql: str, params: tuple[Any, ...]) -> int:
    row: tuple[Any, ...] | None = c.execute(sql, params).fetchone()
    assert row is not None  # RETURNING always yields the new row
    return int(row[0])


def _update_callback(c: apsw.Connection, cb: Callback) -> None:
    before = c.execute(q.CALLBACK_STATUS, (cb.domain, cb.name)).fetchone()
    if before is None:
        raise NotFound(f"no callback {cb.name!r}")
    c.execute(q.UPDATE_CALLBACK, (*rows.callback_row(cb)[2:], cb.domain, cb.name))
    if before[0] != CallbackStatus.ACTIVE and cb.status is CallbackStatus.ACTIVE:
        # Re-enabled: pending batches start their schedule over, lanes may run at once.
        for sql in q.REENABLE:
            c.execute(sql, (cb.domain, cb.name))


def _owns(c: apsw.Connection, lane: LaneKey, owner: str) -> bool:
    if lane.replay_id:
        found = c.execute(q.REPLAY_OWNER, (lane.replay_id,)).fetchone()
    else:
        found = c.execute(q.SUBSCRIPTION_OWNER, (lane.subscription_id,)).fetchone()
    return found is not None and found[0] == owner


def _insert_delivery(c: apsw.Connection, n: NewDelivery) -> Delivery:
    return _opened(*_insert_flat(c, _flat_new(n)), n)


def _opened(new_id: int, state: str, n: NewDelivery) -> Delivery:
    return Delivery(new_id, n.msg_id, n.domain, n.subscription_id, n.after_index, n.first_index,
                    n.last_index, n.advance_to, n.count, n.replay_id or None,
                    DeliveryState(state), created_at=n.created_at, updated_at=n.created_at)


def _move_lane(c: apsw.Connection, lane: LaneKey, position: int | None, retry_at: int | None,
               lease_until: int | None, delivered: int, now: int) -> None:
    owner_clear = lease_until is None
    if lane.replay_id:
        c.execute(q.MOVE_REPLAY, (position, retry_at, lease_until, owner_clear, delivered,
                                  lane.replay_id, now))
    else:
        c.execute(q.MOVE_SUBSCRIPTION, (position, retry_at, lease_until, owner_clear,
                                        lane.subscription_id))


def _flat_new(n: NewDelivery) -> tuple[Any, ...]:
    return (n.msg_id, n.domain, n.subscription_id, n.replay_id, n.after_index, n.first_index,
            n.last_index, n.advance_to, n.count, n.created_at, n.created_at)


def _insert_flat(c: apsw.Connection, flat: tuple[Any, ...]) -> tuple[int, str]:
    """Open a batch: the lane's head (pending) if it has none, else queued behind it."""
    has_head = c.execute(q.HAS_PENDING, (flat[2], flat[3])).fetchone() is not None
    state = DeliveryState.QUEUED.value if has_head else DeliveryState.PENDING.value
    return _returned_id(c, q.INSERT_DELIVERY, (*flat, state)), state


def _record(c: apsw.Connection, flat: tuple[Any, ...]) -> tuple[tuple[int, str] | None, bool]:
    """Writer job for ``record``. Plain tuples in and out: pickling dataclasses to and from
    the writer process cost more than the SQL, at thousands of records a second."""
    (sub_id, replay_id, owner, dl, at, body, position, retry_at, failing, disable, lease_until,
     nxt) = flat
    c.execute(q.INSERT_ATTEMPT, at)
    lane = c.execute(q.LANE_STATE, (sub_id,)).fetchone()
    if lane is not None and replay_id:
        replay = c.execute(q.REPLAY_STATE, (replay_id,)).fetchone()
        lane = None if replay is None else (lane[0], lane[1], replay[0], lane[3] and replay[1])
    if lane is None or lane[2] != owner:
        # Deleted meanwhile, or another worker took the lane over: the attempt is logged,
        # and nothing else changes (the new holder decides about the batch).
        return None, False
    domain, callback, _, active = lane
    delivery_id, state, attempts, next_at, status, error, updated, count = dl
    c.execute(q.UPDATE_DELIVERY, (state, attempts, next_at, status, error, updated, state, body,
                                  delivery_id))
    if failing == "start":
        c.execute(q.CALLBACK_FAILING, (updated, domain, callback))
    elif failing == "clear":
        c.execute(q.CALLBACK_RECOVERED, (domain, callback))
    if disable is not None:
        c.execute(q.DISABLE_CALLBACK, (disable, updated, domain, callback))
        active = False
    done = state != DeliveryState.PENDING.value
    if done:  # the next opened batch becomes the head
        c.execute(q.PROMOTE_QUEUED, (sub_id, replay_id))
    _move_lane(c, LaneKey(sub_id, replay_id), position, retry_at, lease_until,
               count if done else 0, updated)
    if not active:
        return None, False
    return (_insert_flat(c, nxt) if nxt is not None else None), True


def _claim(c: apsw.Connection, owner: str, now: int, lease_until: int,
           newest: dict[str, int], limit: int) -> list[Lane]:
    lanes: list[Lane] = []
    n_sub = len(rows.SUBSCRIPTION_COLUMNS.split(","))
    for r in c.execute(q.CLAIMABLE_LIVE, (now, now)).fetchall():
        if len(lanes) >= limit:
            break
        sub, cb = rows.subscription_of(r[:n_sub]), rows.callback_of(r[n_sub:])
        opened = _open_batches(c, sub.id, LIVE)
        if not opened and sub.position >= newest.get(sub.domain, 0):
            continue
        c.execute(q.LEASE_SUBSCRIPTION, (owner, lease_until, sub.id))
        lanes.append(_lane(sub, cb, None, opened, lease_until))
    n_rep = len(rows.REPLAY_COLUMNS.split(","))
    for r in c.execute(q.CLAIMABLE_REPLAYS, (now, now)).fetchall():
        if len(lanes) >= limit:
            break
        rep = rows.replay_of(r[:n_rep])
        sub = rows.subscription_of(r[n_rep:n_rep + n_sub])
        cb = rows.callback_of(r[n_rep + n_sub:])
        opened = _open_batches(c, sub.id, rep.id)
        if not opened and rep.position >= rep.through_index:
            c.execute(q.FINISH_REPLAY, (now, rep.id))
            continue
        c.execute(q.LEASE_REPLAY, (owner, lease_until, rep.id))
        lanes.append(_lane(sub, cb, rep, opened, lease_until))
    return lanes


def _open_batches(c: apsw.Connection, subscription_id: int, replay_id: int) -> list[Delivery]:
    return [rows.delivery_of(r) for r in c.execute(q.OPEN_DELIVERIES,
                                                   (subscription_id, replay_id))]


def _lane(sub: Subscription, cb: Callback, replay: Replay | None, opened: list[Delivery],
          lease_until: int) -> Lane:
    head = opened[0] if opened and opened[0].state is DeliveryState.PENDING else None
    queued = tuple(opened[1:] if head else opened)
    return Lane(sub, cb, replay, head, lease_until, queued)
