"""Prometheus metrics for one domain, read from storage when scraped.

Every figure comes from the database, none from counters kept in the process: with
several server processes (or hosts, on PostgreSQL) whichever one a scrape reaches gives
the same answer, and a restart resets nothing. A scrape costs a handful of small queries.

Cursors and subscriptions come from ``rqs.service.consumers``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rqs import __version__
from rqs.domain import catalog
from rqs.domain.delivery import CallbackStatus, SubscriptionStatus
from rqs.service.consumers import Consumers, consumers
from rqs.service.keys import Principal
from rqs.service.push_admin import PushAdmin
from rqs.service.queue import ResponseQueue
from rqs.storage.base import Bounds

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Types the catalog does not know are stored under whatever name a sender gives them: as
# label values they would let any ingest key add series without end.
UNCATALOGUED = "uncatalogued"

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


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def exposition(families: Iterable[Family]) -> bytes:
    """The Prometheus text format (version 0.0.4) of ``families``."""
    lines: list[str] = []
    for f in families:
        lines.append(f"# HELP {f.name} {_escape_help(f.help)}")
        lines.append(f"# TYPE {f.name} {f.kind}")
        for labels, value in f.samples:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{f.name}{{{inner}}} {_number(value)}")
    return ("\n".join(lines) + "\n").encode()


async def collect(queue: ResponseQueue, push: PushAdmin, who: Principal) -> list[Family]:
    """The caller's domain, as metric families (every sample labelled with the domain)."""
    seen = await consumers(queue, push, who)  # checks the scope
    domain, bounds, storage = seen.domain, seen.bounds, queue.storage

    info = Family("rqs_info", "gauge", "The serving rqs: version and storage backend.")
    info.add(1, domain=domain, version=__version__, backend=storage.backend)
    ingested = Family("rqs_events_ingested_total", "counter",
                      "Events stored since the domain began, by type and channel "
                      f"(types the catalog does not know as {UNCATALOGUED!r}).")
    retained = Family("rqs_events_retained", "gauge",
                      "Events stored and not yet removed by retention, by type and channel.")
    totals: dict[tuple[str, str], list[int]] = {}
    for c in await storage.counts(domain):
        name = c.type if catalog.lookup(c.type) is not None else UNCATALOGUED
        found = totals.setdefault((name, c.channel), [0, 0])
        found[0] += c.ingested
        found[1] += c.retained
    for (name, channel), (n_ingested, n_retained) in totals.items():
        ingested.add(n_ingested, domain=domain, type=name, channel=channel)
        retained.add(n_retained, domain=domain, type=name, channel=channel)

    last = None
    if bounds.oldest is not None:
        last = await storage.get_event(domain, bounds.newest)
    index = _index_families(domain, bounds, None if last is None else last.received_at)
    return [info, ingested, retained, *index, *_cursor_families(seen),
            *_push_families(seen, queue.clock())]


def _index_families(domain: str, bounds: Bounds, last_received: int | None) -> list[Family]:
    newest = Family("rqs_index_newest", "gauge", "The last index assigned (0: none yet).")
    newest.add(bounds.newest, domain=domain)
    oldest = Family("rqs_index_oldest", "gauge",
                    "The oldest index still stored (absent when nothing is).")
    if bounds.oldest is not None:
        oldest.add(bounds.oldest, domain=domain)
    purged = Family("rqs_index_purged_through", "gauge",
                    "Every index up to this one has been removed by retention.")
    purged.add(bounds.purged_through, domain=domain)
    last = Family("rqs_last_received_timestamp_seconds", "gauge",
                  "When the newest stored event was received (Unix seconds).")
    if last_received is not None:
        last.add(last_received / 1e6, domain=domain)
    return [newest, oldest, purged, last]


def _cursor_families(seen: Consumers) -> list[Family]:
    position = Family("rqs_cursor_position", "gauge",
                      "The last index a server-managed cursor (pollByType, poll) has passed.")
    lag = Family("rqs_cursor_index_lag", "gauge",
                 "The newest index minus the cursor's position.")
    polled = Family("rqs_cursor_polled_total", "counter", "Events polled through the cursor.")
    skipped = Family("rqs_cursor_skipped_total", "counter",
                     "Events retention removed before the cursor reached them (lost to it).")
    moved = Family("rqs_cursor_last_poll_timestamp_seconds", "gauge",
                   "When the cursor was last polled (Unix seconds).")
    for c, behind in seen.cursors:
        labels = {"domain": seen.domain, "key": c.key_id, "cursor": c.name}
        position.add(c.state.position, **labels)
        lag.add(behind, **labels)
        polled.add(c.state.polled, **labels)
        skipped.add(c.state.skipped, **labels)
        moved.add(c.updated_at / 1e6, **labels)
    return [position, lag, polled, skipped, moved]


def _push_families(seen: Consumers, now: float) -> list[Family]:
    domain = seen.domain
    callback_active = Family("rqs_callback_active", "gauge",
                             "1 while the callback is enabled, 0 once it was disabled.")
    failing = Family("rqs_callback_failing_seconds", "gauge",
                     "How long the enabled callback's current run of failures has lasted "
                     "(0: none, or disabled).")
    for cb in seen.callbacks:
        on = cb.status is CallbackStatus.ACTIVE
        callback_active.add(1 if on else 0, domain=domain, callback=cb.name)
        since = cb.failing_since
        failing.add(0 if since is None or not on else max(now - since / 1e6, 0),
                    domain=domain, callback=cb.name)

    active = Family("rqs_subscription_active", "gauge", "1 while delivering, 0 while paused.")
    position = Family("rqs_subscription_position", "gauge",
                      "The last index the subscription is done with (delivered or dead).")
    lag = Family("rqs_subscription_index_lag", "gauge",
                 "The newest index minus the subscription's position.")
    attempts = Family("rqs_subscription_pending_attempts", "gauge",
                      "Failed attempts of the batch being delivered (0: none, or the "
                      "subscription is paused or its callback disabled).")
    age = Family("rqs_subscription_pending_age_seconds", "gauge",
                 "How long ago the batch being delivered was created (0: none, or the "
                 "subscription is paused or its callback disabled).")
    for sub in seen.subscriptions:
        labels = {"domain": domain, "subscription": sub.name, "callback": sub.callback}
        active.add(1 if sub.status is SubscriptionStatus.ACTIVE else 0, **labels)
        position.add(sub.position, **labels)
        lag.add(sub.lag, **labels)
        head = sub.pending
        attempts.add(0 if head is None else head.attempts, **labels)
        age.add(0 if head is None else max(now - head.created_at / 1e6, 0), **labels)
    return [callback_active, failing, active, position, lag, attempts, age]
