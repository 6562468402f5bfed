"""Helpers for the storage contract tests: event factories and a reference model.

The model keeps what a test appended and answers queries by brute force, so scan tests
compare a backend against an obviously correct implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rqs.domain import catalog
from rqs.domain.events import NewEvent, StoredEvent
from rqs.storage.base import AppendResult, EventQuery, Storage


def ev(
    type_name: str = "EMAIL_BOUNCED",
    *,
    channel: str | None = None,
    ext_id: str | None = None,
    payload: bytes | None = None,
    campaign_id: str | None = None,
    campaign_name: str | None = None,
    occurred_at: int | None = None,
) -> NewEvent:
    chan = channel or catalog.channel_for(type_name, None).value
    body = payload if payload is not None else f'{{"type":"{type_name}","id":"{ext_id}"}}'.encode()
    return NewEvent(
        type=type_name,
        channel=chan,
        payload=body,
        ext_id=ext_id,
        occurred_at=occurred_at,
        campaign_id=campaign_id,
        campaign_name=campaign_name,
    )


@dataclass
class Stored:
    index: int
    event: NewEvent
    received_at: int


@dataclass
class Model:
    """What one domain should hold, appended through ``Model.append``."""

    domain: str
    rows: list[Stored] = field(default_factory=list)

    async def append(self, storage: Storage, events: Sequence[NewEvent]) -> AppendResult:
        result = await storage.append(self.domain, events)
        known = {r.index for r in self.rows}
        for event, index in zip(events, result.indexes, strict=True):
            if index not in known:
                known.add(index)
                self.rows.append(Stored(index, event, result.received_at))
        return result

    def expected(self, query: EventQuery, purged_through: int = 0) -> list[int]:
        sel = query.selector
        out: list[int] = []
        for r in sorted(self.rows, key=lambda r: r.index):
            e = r.event
            if r.index <= max(query.after, purged_through):
                continue
            if query.through is not None and r.index > query.through:
                continue
            if not sel.matches(e.type, e.channel):
                continue
            if query.campaign is not None and query.campaign not in (
                e.campaign_id,
                e.campaign_name,
            ):
                continue
            if query.since is not None and r.received_at < query.since:
                continue
            if query.until is not None and r.received_at >= query.until:
                continue
            out.append(r.index)
        return out[: query.limit]


async def scan_chunks(
    storage: Storage, domain: str, query: EventQuery, chunk: int = 5_000
) -> list[list[StoredEvent]]:
    return [rows async for rows in storage.scan(domain, query, chunk)]


async def scan_all(
    storage: Storage, domain: str, query: EventQuery, chunk: int = 5_000
) -> list[StoredEvent]:
    return [e for rows in await scan_chunks(storage, domain, query, chunk) for e in rows]


async def scan_indexes(
    storage: Storage, domain: str, query: EventQuery, chunk: int = 5_000
) -> list[int]:
    return [e.index for e in await scan_all(storage, domain, query, chunk)]
