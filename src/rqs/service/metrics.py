"""Prometheus metrics for one domain, read from storage when scraped.

Every figure comes from the database, none from counters kept in the process: with
several server processes (or hosts, on PostgreSQL) whichever one a scrape reaches gives
the same answer, and a restart resets nothing. A scrape costs a handful of small queries.

Lags are index distances (the newest index minus a position): an upper bound on what a
cursor or a subscription has still to see, exact when it reads every type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rqs import __version__
from rqs.domain.delivery import CallbackStatus, DeliveryState, SubscriptionStatus
from rqs.service.keys import Principal
from rqs.service.push_admin import PushAdmin
from rqs.service.queue import ResponseQueue

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Pending batches are one per delivery lane (a subscription, or one of its replays).
MAX_LANES = 10_000

Labels = tuple[tuple[str, str], ...]


@dataclass
class Family:
    name: str
    kind: str  # counter | gauge
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((tuple(labels.items()), value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def exposition(families: Iterable[Family]) -> bytes:
    """The Prometheus text format (version 0.0.4) of ``families``."""
    lines: list[str] = []
    for f in families:
        lines.append(f"# HELP {f.name} {f.help}")
        lines.append(f"# TYPE {f.name} {f.kind}")
        for labels, value in f.samples:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{f.name}{{{inner}}} {_number(value)}")
    return ("\n".join(lines) + "\n").encode()


async def collect(queue: ResponseQueue, push: PushAdmin, who: Principal) -> list[Family]:
    """The caller's domain, as metric families (every sample labelled with the domain)."""
    who.require("read")
    domain = who.domain
    now = queue.clock()
    storage = queue.storage
    bounds = await storage.bounds(domain)
    newest = bounds.newest

    info = Family("rqs_info", "gauge", "The serving rqs: version and storage backend.")
    info.add(1, domain=domain, version=__version__, backend=storage.backend)
    ingested = Family("rqs_events_ingested_total", "counter",
                      "Events stored since the domain began, by type and channel.")
    retained = Family("rqs_events_retained", "gauge",
                      "Events stored and not yet removed by retention, by type and channel.")
    for c in await storage.counts(domain):
        ingested.add(c.ingested, domain=domain, type=c.type, channel=c.channel)
        retained.add(c.retained, domain=domain, type=c.type, channel=c.channel)

    index = _index_families(domain, bounds.newest, bounds.oldest, bounds.purged_through)
    if bounds.oldest is not None:
        last = await storage.get_event(domain, newest)
        if last is not None:
            index[-1].add(last.received_at / 1e6, domain=domain)

    families = [info, ingested, retained, *index]
    families += await _cursor_families(queue, domain, newest)
    families += await _push_families(push, domain, newest, now)
    return families


def _index_families(domain: str, newest: int, oldest: int | None,
                    purged_through: int) -> list[Family]:
    newest_f = Family("rqs_index_newest", "gauge", "The last index assigned (0: none yet).")
    newest_f.add(newest, domain=domain)
    oldest_f = Family("rqs_index_oldest", "gauge",
                      "The oldest index still stored (absent when nothing is).")
    if oldest is not None:
        oldest_f.add(oldest, domain=domain)
    purged = Family("rqs_index_purged_through", "gauge",
                    "Every index up to this one has been removed by retention.")
    purged.add(purged_through, domain=domain)
    last = Family("rqs_last_received_timestamp_seconds", "gauge",
                  "When the newest stored event was received (Unix seconds).")
    return [newest_f, oldest_f, purged, last]


async def _cursor_families(queue: ResponseQueue, domain: str, newest: int) -> list[Family]:
    position = Family("rqs_cursor_position", "gauge",
                      "The last index a server-managed cursor (pollByType, poll) has passed.")
    lag = Family("rqs_cursor_index_lag", "gauge",
                 "The newest index minus the cursor's position.")
    polled = Family("rqs_cursor_polled_total", "counter", "Events polled through the cursor.")
    skipped = Family("rqs_cursor_skipped_total", "counter",
                     "Events retention removed before the cursor reached them (lost to it).")
    moved = Family("rqs_cursor_last_poll_timestamp_seconds", "gauge",
                   "When a poll last moved the cursor (Unix seconds).")
    for c in await queue.storage.list_cursors(domain):
        labels = {"domain": domain, "key": c.key_id, "cursor": c.name}
        position.add(c.state.position, **labels)
        lag.add(max(newest - c.state.position, 0), **labels)
        polled.add(c.state.polled, **labels)
        skipped.add(c.state.skipped, **labels)
        moved.add(c.updated_at / 1e6, **labels)
    return [position, lag, polled, skipped, moved]


async def _push_families(push: PushAdmin, domain: str, newest: int, now: float
                         ) -> list[Family]:
    store = push.store
    callback_active = Family("rqs_callback_active", "gauge",
                             "1 while the callback is enabled, 0 once it was disabled.")
    failing = Family("rqs_callback_failing_seconds", "gauge",
                     "How long the callback's current streak of failures has lasted (0: none).")
    for cb in await store.list_callbacks(domain):
        callback_active.add(1 if cb.status is CallbackStatus.ACTIVE else 0, domain=domain,
                            callback=cb.name)
        since = cb.failing_since
        failing.add(0 if since is None else max(now - since / 1e6, 0), domain=domain,
                    callback=cb.name)

    active = Family("rqs_subscription_active", "gauge", "1 while delivering, 0 while paused.")
    position = Family("rqs_subscription_position", "gauge",
                      "The last index the subscription is done with (delivered or dead).")
    lag = Family("rqs_subscription_index_lag", "gauge",
                 "The newest index minus the subscription's position.")
    attempts = Family("rqs_subscription_pending_attempts", "gauge",
                      "Failed attempts of the batch now being delivered (0: none pending).")
    age = Family("rqs_subscription_pending_age_seconds", "gauge",
                 "How long the batch now being delivered has waited (0: none pending).")
    # Each subscription's own lane, not its replays' (those re-send what was sent).
    heads = {d.subscription_id: d for d in await store.list_deliveries(
        domain, state=DeliveryState.PENDING, limit=MAX_LANES) if d.replay_id is None}
    for sub in await store.list_subscriptions(domain):
        labels = {"domain": domain, "subscription": sub.name, "callback": sub.callback}
        active.add(1 if sub.status is SubscriptionStatus.ACTIVE else 0, **labels)
        position.add(sub.position, **labels)
        lag.add(max(newest - sub.position, 0), **labels)
        head = heads.get(sub.id)
        attempts.add(0 if head is None else head.attempts, **labels)
        age.add(0 if head is None else max(now - head.created_at / 1e6, 0), **labels)
    return [callback_active, failing, active, position, lag, attempts, age]
