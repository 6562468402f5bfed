"""Streaming encoders for event lists. Payloads are spliced in as stored, never re-encoded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import msgspec

from rqs.domain.events import StoredEvent, derived_id, format_time


class EventOut(msgspec.Struct):
    index: int
    id: str
    type: str
    channel: str
    received_at: str
    occurred_at: str | None
    payload: msgspec.Raw


_encoder = msgspec.json.Encoder()


class TimeCache:
    """Events of one commit share ``received_at``; format each distinct value once."""

    __slots__ = ("_last", "_text")

    def __init__(self) -> None:
        self._last = -1
        self._text = ""

    def __call__(self, micros: int) -> str:
        if micros != self._last:
            self._last = micros
            self._text = format_time(micros)
        return self._text


def to_out(events: list[StoredEvent], times: TimeCache) -> list[EventOut]:
    return [
        EventOut(
            e.index,
            e.ext_id if e.ext_id is not None else derived_id(e.domain, e.index),
            e.type,
            e.channel,
            times(e.received_at),
            format_time(e.occurred_at) if e.occurred_at is not None else None,
            msgspec.Raw(e.payload),
        )
        for e in events
    ]


def event_json(event: StoredEvent) -> bytes:
    return _encoder.encode(to_out([event], TimeCache())[0])


@dataclass(slots=True)
class Progress:
    """What a stream delivered, for the trailer and for moving cursors."""

    delivered: int = 0
    last_index: int | None = None
    has_more: bool = False


async def limited(
    chunks: AsyncIterator[list[StoredEvent]], limit: int, progress: Progress
) -> AsyncIterator[list[StoredEvent]]:
    """Pass through at most ``limit`` events; a scan of ``limit + 1`` tells if more exist."""
    async for chunk in chunks:
        room = limit - progress.delivered
        if len(chunk) > room:
            chunk = chunk[:room]
            progress.has_more = True
        if chunk:
            progress.delivered += len(chunk)
            progress.last_index = chunk[-1].index
            yield chunk
        if progress.has_more:
            return


async def json_events(
    chunks: AsyncIterator[list[StoredEvent]], trailer: Callable[[], dict[str, object]]
) -> AsyncIterator[bytes]:
    """``{"events": [...], <trailer>}``, streamed chunk by chunk."""
    times = TimeCache()
    yield b'{"events":['
    first = True
    async for chunk in chunks:
        body = _encoder.encode(to_out(chunk, times))[1:-1]
        yield body if first else b"," + body
        first = False
    yield b"]," + _encoder.encode(trailer())[1:]


async def ndjson_events(
    chunks: AsyncIterator[list[StoredEvent]], trailer: Callable[[], dict[str, object]]
) -> AsyncIterator[bytes]:
    """One event per line; the last line is the trailer object (it has no ``index``)."""
    times = TimeCache()
    async for chunk in chunks:
        yield _encoder.encode_lines(to_out(chunk, times))
    yield _encoder.encode(trailer()) + b"\n"
