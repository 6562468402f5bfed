"""Streaming encoders for event lists. Payloads are spliced in as stored, never re-encoded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import msgspec

from rqs.domain.events import StoredEvent, derived_id, format_time
from rqs.speedups import NATIVE, Native


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
    if not events:
        return []
    # One page is one domain: the derived id's prefix is built once (see derived_id).
    prefix = derived_id(events[0].domain, 0)[:-1]
    raw = msgspec.Raw
    return [
        EventOut(
            e.index,
            e.ext_id if e.ext_id is not None else f"{prefix}{e.index}",
            e.type,
            e.channel,
            times(e.received_at),
            format_time(e.occurred_at) if e.occurred_at is not None else None,
            raw(e.payload),
        )
        for e in events
    ]


def event_json(event: StoredEvent) -> bytes:
    return _encoder.encode(to_out([event], TimeCache())[0])


@dataclass(slots=True)
class Progress:
    """What a stream delivered, for its trailer."""

    delivered: int = 0
    last_index: int | None = None


class Encoded(msgspec.Struct, gc=False):
    """A page of events encoded where it was read, with what a trailer needs to know."""

    body: bytes
    count: int
    last_index: int


def _time_literal(micros: int) -> bytes:
    return _encoder.encode(format_time(micros))


def _native_page(rows: list[StoredEvent], ndjson: bool, native: Native,
                 continued: bool = False) -> Encoded:
    prefix = derived_id(rows[0].domain, 0)[:-1].encode()  # one page is one domain
    body = native.render_native(rows, ndjson, prefix, _encoder.encode, _time_literal,
                                continued)
    return Encoded(body, len(rows), rows[-1].index)


def json_page(times: TimeCache, native: Native | None = NATIVE
              ) -> Callable[[list[StoredEvent]], Encoded]:
    """Encode pages, called in order, as the inside of a JSON array (no brackets): every
    page after the first starts with its comma, so the stream sends each as it is (adding
    it there copied every page). In C where it was built (its work runs without the GIL,
    beside the next page's read)."""
    continued = False

    def encode(rows: list[StoredEvent]) -> Encoded:
        nonlocal continued
        if native is not None:
            page = _native_page(rows, False, native, continued)
        else:
            body = _encoder.encode(to_out(rows, times))
            page = Encoded(b"," + body[1:-1] if continued else body[1:-1], len(rows),
                           rows[-1].index)
        continued = True
        return page

    return encode


def ndjson_page(times: TimeCache, native: Native | None = NATIVE
                ) -> Callable[[list[StoredEvent]], Encoded]:
    def encode(rows: list[StoredEvent]) -> Encoded:
        if native is not None:
            return _native_page(rows, True, native)
        return Encoded(_encoder.encode_lines(to_out(rows, times)), len(rows), rows[-1].index)

    return encode


class Capped:
    """The encoder of a scan asked for one event more than the response holds: that event
    is not sent, it only tells that there are more (``more``). Cheaper than a second scan
    after the page to find out, which cost every page a planning round trip and a query
    before the response could end.

    Pages are encoded one at a time and in order (rqs.storage.pages), so the count needs
    no lock."""

    __slots__ = ("_encode", "_room", "more")

    def __init__(self, encode: Callable[[list[StoredEvent]], Encoded], limit: int) -> None:
        self._encode = encode
        self._room = limit
        self.more = False

    def __call__(self, rows: list[StoredEvent]) -> Encoded:
        if len(rows) > self._room:
            self.more = True
            rows = rows[: self._room]
        self._room -= len(rows)
        return self._encode(rows) if rows else Encoded(b"", 0, 0)


async def counted(pages: AsyncIterator[Encoded], progress: Progress) -> AsyncIterator[bytes]:
    async for page in pages:
        if not page.count:  # a page that held only what Capped kept back
            continue
        progress.delivered += page.count
        progress.last_index = page.last_index
        yield page.body


async def json_stream(
    pages: AsyncIterator[Encoded],
    progress: Progress,
    trailer: Callable[[], Awaitable[dict[str, object]]],
) -> AsyncIterator[bytes]:
    """``{"events": [...], <trailer>}`` from pre-encoded pages."""
    yield b'{"events":['
    async for body in counted(pages, progress):
        yield body  # (json_page puts the commas between pages)
    yield b"]," + _encoder.encode(await trailer())[1:]


async def ndjson_stream(
    pages: AsyncIterator[Encoded],
    progress: Progress,
    trailer: Callable[[], Awaitable[dict[str, object]]],
) -> AsyncIterator[bytes]:
    """One event per line; the last line is the trailer object (it has no ``index``)."""
    async for body in counted(pages, progress):
        yield body
    yield _encoder.encode(await trailer()) + b"\n"
