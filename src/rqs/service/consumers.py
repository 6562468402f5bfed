"""Who reads a domain and how far behind they are: server-managed cursors and push
subscriptions, read from storage (``GET /v1/consumers``, ``/metrics``, the dashboard).

Lags are index distances (the newest index minus a position): an upper bound on what a
cursor or a subscription has still to see, exact when it reads every type. Consumers
that track their own index (the native API's ``after=``) are not known to the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from rqs.domain.delivery import (
    Callback,
    CallbackStatus,
    Delivery,
    DeliveryState,
    SubscriptionStatus,
)
from rqs.service.keys import Principal
from rqs.service.push_admin import PushAdmin
from rqs.service.queue import ResponseQueue
from rqs.storage.base import Bounds, CursorInfo


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    name: str
    callback: str
    status: SubscriptionStatus
    callback_status: CallbackStatus  # DISABLED also when the callback is missing
    callback_failing_since: int | None  # Unix µs, while enabled: the run of failures began
    position: int
    lag: int
    # The batch being delivered on the subscription's own lane (not a replay's); None
    # when there is none, or while the subscription is paused or its callback disabled.
    pending: Delivery | None


@dataclass(frozen=True, slots=True)
class Consumers:
    domain: str
    bounds: Bounds  # the lags are from its newest index
    cursors: list[tuple[CursorInfo, int]]  # each with its lag
    subscriptions: list[SubscriptionView]
    callbacks: list[Callback]


async def consumers(queue: ResponseQueue, push: PushAdmin, who: Principal) -> Consumers:
    who.require("read")
    domain = who.domain
    bounds = await queue.storage.bounds(domain)
    newest = bounds.newest
    cursors = [(c, max(newest - c.state.position, 0))
               for c in await queue.storage.list_cursors(domain)]
    store = push.store
    callbacks = {cb.name: cb for cb in await store.list_callbacks(domain)}
    subscriptions = []
    for sub in await store.list_subscriptions(domain):
        cb = callbacks.get(sub.callback)
        cb_active = cb is not None and cb.status is CallbackStatus.ACTIVE
        pending = None
        if sub.status is SubscriptionStatus.ACTIVE and cb_active:
            found = await store.list_deliveries(domain, subscription_id=sub.id,
                                                state=DeliveryState.PENDING)
            pending = next((d for d in found if d.replay_id is None), None)
        subscriptions.append(SubscriptionView(
            name=sub.name, callback=sub.callback, status=sub.status,
            callback_status=CallbackStatus.ACTIVE if cb_active else CallbackStatus.DISABLED,
            callback_failing_since=cb.failing_since if cb is not None and cb_active else None,
            position=sub.position, lag=max(newest - sub.position, 0), pending=pending))
    return Consumers(domain, bounds, cursors, subscriptions, list(callbacks.values()))
