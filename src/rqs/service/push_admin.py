"""Push delivery's management use cases, shared by the Responsys and the native API.

The web modules turn their own JSON shapes into the specs below; everything about what
is allowed (URL rules, batch size, event types, scopes, replay bounds) is decided here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from rqs.domain import catalog
from rqs.domain import delivery as d
from rqs.errors import Gone, InvalidRequest, NotFound
from rqs.service.delivery import DeliveryWorker
from rqs.service.delivery_options import options_from
from rqs.service.keys import Principal
from rqs.service.lane import webhook_headers
from rqs.service.queue import ResponseQueue
from rqs.storage.base import Storage
from rqs.storage.delivery_base import DeliveryStore

ROTATION_GRACE = 86_400.0  # a rotated-out secret keeps signing for a day (as Svix)
E = TypeVar("E", d.CallbackStatus, d.SubscriptionStatus)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallbackSpec:
    """A create (every field given) or an update (``None``: unchanged)."""

    name: str
    url: str | None = None
    batch_size: int | None = None
    auth_user: str | None = None
    auth_password: str | None = None
    backup_url: str | None = None  # "" removes it
    signing_secret: str | None = None
    status: str | None = None  # ACTIVE re-enables a disabled callback
    status_reason: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    name: str
    callback: str | None = None
    event_types: list[str] | None = None
    filters: list[d.CampaignFilter] | None = None
    status: str | None = None
    status_reason: str | None = None
    start: str | int | None = None  # create only: "now" (default), "oldest" or an index


async def check_callback_url(url: str, allow_private: bool, parameter: str = "url") -> str:
    """http(s) only; loopback, private and link-local hosts refused, also behind DNS."""
    url = d.check_url(url, parameter)
    if allow_private:
        return url
    host = d.host_of(url)
    if d.is_ip_literal(host):
        addresses = [host.strip("[]")]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError:
            raise InvalidRequest(f"the host {host!r} does not resolve",
                                 parameter=parameter) from None
        addresses = [str(info[4][0]) for info in infos]
    if not addresses or not all(d.is_public(a) for a in addresses):
        raise InvalidRequest(
            f"{host!r} is a loopback, private or link-local address; callbacks must be "
            "public (set RQS_ALLOW_PRIVATE_CALLBACKS=1 to allow them)", parameter=parameter)
    return url


def check_event_types(types: list[str]) -> tuple[str, ...]:
    if not types:
        raise InvalidRequest("eventTypes must name at least one event type",
                             parameter="eventTypes")
    groups = {g.value for g in catalog.PollGroup} | {catalog.ALL_MESSAGES}
    unknown = [t for t in types if t not in groups and catalog.lookup(t) is None]
    if unknown:
        raise InvalidRequest(f"unknown event type(s) {unknown}; see GET notifications/eventList",
                             parameter="eventTypes")
    return tuple(t if t in groups else catalog.canonical_type(t) for t in types)


class PushAdmin:
    def __init__(self, storage: Storage, worker: DeliveryWorker,
                 clock: Callable[[], float] = time.time) -> None:
        self.storage = storage
        self.worker = worker
        self.clock = clock

    @property
    def store(self) -> DeliveryStore:
        return self.worker.store  # one store (and one write coalescer) per storage

    def now(self) -> int:
        return int(self.clock() * 1_000_000)

    def start(self, background: bool) -> list[asyncio.Task[None]]:
        """The delivery loop as a task, when ``background`` and RQS_DELIVERY_IN_SERVE allow."""
        if not background or not self.worker.options.in_serve:
            return []
        return [asyncio.create_task(self.worker.run_forever())]

    async def close(self) -> None:
        await self.worker.close()

    # --- callbacks ---------------------------------------------------------------------

    async def callback(self, who: Principal, name: str) -> d.Callback:
        who.require("read")
        return _found(await self.store.get_callback(who.domain, name), f"callback [{name}]")

    async def _checked_urls(self, url: str | None, backup: str | None) -> None:
        allow = self.worker.options.allow_private
        if url is not None:
            await check_callback_url(url, allow)
        if backup:
            await check_callback_url(backup, allow, "backupUrl")
            if backup.strip() == (url or "").strip():
                raise InvalidRequest("backupUrl cannot be the callback url itself",
                                     parameter="backupUrl")

    async def create_callback(self, who: Principal, spec: CallbackSpec) -> d.Callback:
        who.require("admin")
        name = _name(spec.name)
        if spec.url is None:
            raise InvalidRequest("url is required", parameter="url")
        await self._checked_urls(spec.url, spec.backup_url)
        secret = d.check_secret(spec.signing_secret) if spec.signing_secret else \
            d.generate_secret()
        now = self.now()
        size = d.MAX_BATCH_SIZE if spec.batch_size is None else spec.batch_size
        cb = d.Callback(who.domain, name, spec.url.strip(), _batch_size(size),
                        spec.auth_user, spec.auth_password, spec.backup_url or None,
                        (d.Secret(secret),), created_at=now, updated_at=now)
        await self.store.create_callback(cb)
        return cb

    async def update_callback(self, who: Principal, spec: CallbackSpec) -> d.Callback:
        who.require("admin")
        cb = await self.callback(who, spec.name)
        await self._checked_urls(spec.url, spec.backup_url)
        new = cb
        if spec.url is not None:
            new = replace(new, url=spec.url.strip())
        if spec.batch_size is not None:
            new = replace(new, batch_size=_batch_size(spec.batch_size))
        if spec.auth_user is not None:
            new = replace(new, auth_user=spec.auth_user, auth_password=spec.auth_password)
        if spec.backup_url is not None:
            new = replace(new, backup_url=spec.backup_url or None)
        if spec.signing_secret is not None:
            new = self._rotated(new, d.check_secret(spec.signing_secret))
        if spec.status is not None:
            status = _enum(d.CallbackStatus, spec.status, "status")
            reason = spec.status_reason if status is d.CallbackStatus.DISABLED else None
            new = replace(new, status=status, status_reason=reason, failing_since=None)
        new = replace(new, updated_at=self.now())
        await self.store.update_callback(new)
        self.worker.changed(who.domain)  # a re-enabled callback resumes at once
        return new

    def _rotated(self, cb: d.Callback, secret: str) -> d.Callback:
        now = self.now()
        until = now + int(ROTATION_GRACE * 1_000_000)
        kept = tuple(s if s.expires_at is not None else d.Secret(s.value, until)
                     for s in cb.live_secrets(now))
        return replace(cb, secrets=(d.Secret(secret), *kept))

    async def rotate_secret(self, who: Principal, name: str, secret: str | None) -> d.Callback:
        who.require("admin")
        cb = await self.callback(who, name)
        new = replace(self._rotated(cb, d.check_secret(secret) if secret
                                    else d.generate_secret()), updated_at=self.now())
        await self.store.update_callback(new)
        return new

    async def delete_callback(self, who: Principal, name: str) -> None:
        who.require("admin")
        if not await self.store.delete_callback(who.domain, name):
            raise NotFound(f"no callback [{name}]")

    async def verify_callback(self, who: Principal, name: str) -> d.Callback:
        """Send a signed, authenticated empty batch; any 2xx verifies the callback."""
        who.require("admin")
        cb = await self.callback(who, name)
        body = b"[]"
        headers = webhook_headers(cb, d.new_msg_id(), body, self.now(), int(time.time()))
        result = await self.worker.sender.send(cb.url, body, headers)
        if result.status is None or not 200 <= result.status < 300:
            raise InvalidRequest(f"Could not connect to callback url [{cb.url}]: "
                                 f"{result.error}", parameter="url")
        verified = replace(cb, verified_at=self.now())
        await self.store.update_callback(verified)
        return verified

    # --- subscriptions -----------------------------------------------------------------

    async def subscription(self, who: Principal, name: str) -> d.Subscription:
        who.require("read")
        return _found(await self.store.get_subscription(who.domain, name),
                      f"subscription [{name}]")

    async def create_subscription(self, who: Principal, spec: SubscriptionSpec) -> d.Subscription:
        who.require("admin")
        name = _name(spec.name)
        if not spec.callback:
            raise InvalidRequest("callBackName is required", parameter="callBackName")
        await self.callback(who, spec.callback)
        bounds = await self.storage.bounds(who.domain)
        start = spec.start if spec.start is not None else "now"
        if start == "now":
            position = bounds.newest  # Responsys: events that happen from now on
        elif start == "oldest":
            position = bounds.purged_through
        elif isinstance(start, int) and start >= 1:
            if start - 1 < bounds.purged_through:
                raise Gone(bounds.oldest, start)
            position = min(start - 1, bounds.newest)
        else:
            raise InvalidRequest("start is 'now', 'oldest' or an index >= 1", parameter="start")
        now = self.now()
        sub = d.Subscription(
            who.domain, name, spec.callback, check_event_types(spec.event_types or []),
            tuple(spec.filters or ()), _enum(d.SubscriptionStatus, spec.status or "ACTIVE",
                                             "status"),
            spec.status_reason, position, created_at=now, updated_at=now)
        created = await self.store.create_subscription(sub)
        self.worker.changed(who.domain)
        return created

    async def update_subscription(self, who: Principal, spec: SubscriptionSpec) -> d.Subscription:
        who.require("admin")
        sub = await self.subscription(who, spec.name)
        if spec.callback is not None and spec.callback != sub.callback:
            await self.callback(who, spec.callback)
            sub = replace(sub, callback=spec.callback)
        if spec.event_types is not None:
            sub = replace(sub, event_types=check_event_types(spec.event_types))
        if spec.filters is not None:
            sub = replace(sub, filters=tuple(spec.filters))
        if spec.status is not None:
            sub = replace(sub, status=_enum(d.SubscriptionStatus, spec.status, "status"),
                          status_reason=spec.status_reason)
        sub = replace(sub, updated_at=self.now())
        await self.store.update_subscription(sub)
        self.worker.changed(who.domain)  # a resumed subscription catches up at once
        return sub

    async def delete_subscription(self, who: Principal, name: str) -> None:
        who.require("admin")
        if not await self.store.delete_subscription(who.domain, name):
            raise NotFound(f"no subscription [{name}]")

    # --- replays, deliveries -----------------------------------------------------------------

    async def create_replay(self, who: Principal, name: str, *, from_index: int | None = None,
                            through_index: int | None = None, since: int | None = None,
                            until: int | None = None) -> d.Replay:
        who.require("admin")
        sub = await self.subscription(who, name)
        if from_index is None and since is None:
            raise InvalidRequest("give fromIndex or since", parameter="fromIndex")
        if since is not None and until is not None and until <= since:
            raise InvalidRequest("until must be later than since", parameter="until")
        bounds = await self.storage.bounds(who.domain)
        after = bounds.purged_through
        if from_index is not None:
            if from_index < 1:
                raise InvalidRequest("fromIndex must be 1 or more", parameter="fromIndex")
            if from_index - 1 < bounds.purged_through:
                raise Gone(bounds.oldest, from_index)
            after = from_index - 1
        through = bounds.newest if through_index is None else min(through_index, bounds.newest)
        now = self.now()
        replay = await self.store.create_replay(d.Replay(
            0, who.domain, sub.id, after, max(through, after), since, until, after,
            created_at=now, updated_at=now))
        self.worker.changed(who.domain)
        return replay

    async def replay(self, who: Principal, replay_id: int) -> d.Replay:
        who.require("read")
        return _found(await self.store.get_replay(who.domain, replay_id), f"replay {replay_id}")

    async def cancel_replay(self, who: Principal, replay_id: int) -> None:
        who.require("admin")
        await self.replay(who, replay_id)
        await self.store.cancel_replay(who.domain, replay_id, self.now())

    async def delivery(self, who: Principal, delivery_id: int) -> d.Delivery:
        who.require("read")
        return _found(await self.store.get_delivery(who.domain, delivery_id),
                      f"delivery {delivery_id}")

    async def redrive(self, who: Principal, delivery_id: int) -> d.Replay:
        """Send a dead letter's events again, as a one-batch replay."""
        dead = await self.delivery(who, delivery_id)
        if dead.state is not d.DeliveryState.DEAD:
            raise InvalidRequest(f"delivery {delivery_id} is {dead.state.value}, not dead")
        subs = [s for s in await self.store.list_subscriptions(who.domain)
                if s.id == dead.subscription_id]
        if not subs:
            raise NotFound("the subscription of this dead letter was deleted")
        return await self.create_replay(who, subs[0].name, from_index=dead.after_index + 1,
                                        through_index=dead.last_index)


def _found(value: T | None, what: str) -> T:
    if value is None:
        raise NotFound(f"no {what}")
    return value


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidRequest("name must be 1 to 100 characters", parameter="name")
    return name


def _batch_size(size: int) -> int:
    if not 1 <= size <= d.MAX_BATCH_SIZE:
        raise InvalidRequest(f"batchSize must be between 1 and {d.MAX_BATCH_SIZE}",
                             parameter="batchSize")
    return size


def _enum(cls: type[E], value: str, parameter: str) -> E:
    try:
        return cls(value.strip().upper())
    except ValueError:
        raise InvalidRequest(f"{parameter} must be one of {[m.value for m in cls]}",
                             parameter=parameter) from None


def push_for(queue: ResponseQueue) -> PushAdmin:
    """Push delivery for an app: its worker is woken by every ingest through ``queue``."""
    worker = DeliveryWorker(queue.storage, options_from(queue.settings), clock=queue.clock)
    queue.on_append = worker.wake
    return PushAdmin(queue.storage, worker, queue.clock)
