"""The event model and the ingest parser.

An ingest body is one JSON object, a JSON array of objects, or NDJSON. Each item is
either a Responsys callback payload as-is (it has ``failureType``) or a native
envelope ``{"type", "data", "id"?, "occurred_at"?, "domain"?}``. Parsing is all or
nothing: every problem is collected, with its item position and field, and the batch
is rejected whole if there is any.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import overload

import msgspec

from rqs.domain import catalog
from rqs.errors import InvalidRequest, PayloadTooLarge, Problem, ValidationFailed
from rqs.speedups import NATIVE

MAX_ID_LENGTH = 200
MAX_PROBLEMS_LISTED = 1000


class NewEvent(msgspec.Struct, array_like=True, gc=False):
    """An event accepted by ingest, not yet stored (no index yet).

    The SQLite store inserts these fields positionally: keep its column list in step.
    ``array_like``: it crosses processes as a msgpack array, which is its row's values.
    """

    type: str
    channel: str
    payload: bytes
    ext_id: str | None = None
    occurred_at: int | None = None  # Unix microseconds
    campaign_id: str | None = None
    campaign_name: str | None = None
    riid: str | None = None
    customer_id: str | None = None
    recipient: str | None = None
    message: str | None = None


class PackedEvents(Sequence[NewEvent]):
    """NewEvents still in the form ingest's C parser wrote them: the msgpack of the list
    (each NewEvent an array, as msgspec encodes it), with each event's type and channel.

    The SQLite store hands the bytes to its writer process as they are; anything else
    sees NewEvents, decoded on first use. Made by the C parser for Responsys batches,
    which carry no sender ids: building a NewEvent per event, encoding them and freeing
    them was a quarter of the HTTP process's ingest time (perf)."""

    __slots__ = ("_events", "channels", "packed", "types")

    def __init__(self, packed: bytes, types: list[str], channels: list[str]) -> None:
        self.packed = packed
        self.types = types
        self.channels = channels
        self._events: list[NewEvent] | None = None

    def events(self) -> list[NewEvent]:
        if self._events is None:
            self._events = _packed_decoder.decode(self.packed)
        return self._events

    def __len__(self) -> int:
        return len(self.types)

    @overload
    def __getitem__(self, i: int) -> NewEvent: ...
    @overload
    def __getitem__(self, i: slice) -> list[NewEvent]: ...
    def __getitem__(self, i: int | slice) -> NewEvent | list[NewEvent]:
        return self.events()[i]

    def __iter__(self) -> Iterator[NewEvent]:
        return iter(self.events())


_packed_decoder = msgspec.msgpack.Decoder(list[NewEvent])


class StoredEvent(msgspec.Struct, gc=False):
    """An event as storage returns it."""

    domain: str
    index: int
    type: str
    channel: str
    received_at: int  # Unix microseconds, commit time
    payload: bytes
    ext_id: str | None = None
    occurred_at: int | None = None

    @property
    def id(self) -> str:
        return self.ext_id if self.ext_id is not None else derived_id(self.domain, self.index)


def derived_id(domain: str, index: int) -> str:
    """The stable id of an event whose sender gave none: unique across domains."""
    return f"rqs-{domain}-{index}"


# --- wire shapes -----------------------------------------------------------------------


class _Item(msgspec.Struct):
    # Responsys callback fields (camelCase, as Oracle sends them)
    failureType: object = None
    channelType: object = None
    campaignId: object = None
    campaignName: object = None
    riid: object = None
    customerId: object = None
    recipient: object = None
    inboundMessage: object = None
    # native envelope fields
    type: object = None
    data: msgspec.Raw = msgspec.Raw()
    id: object = None
    occurred_at: object = None
    domain: object = None


class _Data(msgspec.Struct):
    """Searchable attributes of a native envelope's ``data``, in either spelling."""

    channelType: object = None
    channel: object = None
    campaignId: object = None
    campaign_id: object = None
    campaignName: object = None
    campaign_name: object = None
    riid: object = None
    customerId: object = None
    customer_id: object = None
    recipient: object = None
    inboundMessage: object = None
    message: object = None
    text: object = None


class _ResponsysItem(msgspec.Struct):
    """The common case typed exactly, so a clean Responsys batch decodes in one C pass."""

    failureType: str | None = None
    channelType: str | None = None
    campaignId: str | None = None
    campaignName: str | None = None
    riid: str | None = None
    customerId: str | None = None
    recipient: str | None = None
    inboundMessage: str | None = None


_item_decoder = msgspec.json.Decoder(_Item)
_responsys_array_decoder = msgspec.json.Decoder(list[_ResponsysItem])
_data_decoder = msgspec.json.Decoder(_Data)
_array_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_raw_decoder = msgspec.json.Decoder(msgspec.Raw)

NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                          "application/x-jsonlines", "application/jsonlines"})


def _s(value: object) -> str | None:
    """A searchable attribute as text; structured values are not searchable."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _first(*values: object) -> str | None:
    for v in values:
        s = _s(v)
        if s is not None:
            return s
    return None


def parse_time(value: object) -> int:
    """ISO 8601 text or Unix seconds (int or float) to Unix microseconds."""
    if isinstance(value, bool):
        raise ValueError("expected an ISO 8601 timestamp or Unix seconds, got a boolean")
    if isinstance(value, (int, float)):
        return int(value * 1_000_000)
    if isinstance(value, str):
        text = value.strip()
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1_000_000)
    raise ValueError("expected an ISO 8601 timestamp or Unix seconds")


def format_time(micros: int) -> str:
    dt = datetime.fromtimestamp(micros / 1_000_000, UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- splitting -------------------------------------------------------------------------


def _is_ndjson(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() in NDJSON_TYPES


def split_body(body: bytes, ndjson: bool) -> list[bytes]:
    """Split a request body (NDJSON, or JSON) into the raw bytes of its items."""
    if ndjson:
        return _split_ndjson(body)
    stripped = body.lstrip()
    if not stripped:
        raise InvalidRequest("the request body is empty; send a JSON object, array or NDJSON")
    if stripped[:1] == b"[":
        try:
            return [bytes(r) for r in _array_decoder.decode(body)]
        except msgspec.DecodeError as exc:
            raise InvalidRequest(f"the JSON array cannot be parsed: {exc}") from None
    try:
        return [bytes(_raw_decoder.decode(body))]
    except msgspec.DecodeError as exc:
        if "trailing characters" in str(exc) and stripped[:1] == b"{":
            return _split_ndjson(body)  # several objects, one per line, sent as JSON
        raise InvalidRequest(f"the JSON body cannot be parsed: {exc}") from None


def _split_ndjson(body: bytes) -> list[bytes]:
    items: list[bytes] = []
    problems: list[Problem] = []
    for line_no, line in enumerate(body.split(b"\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            _raw_decoder.decode(line)
        except msgspec.DecodeError as exc:
            problems.append(Problem(len(items), None, f"line {line_no} is not valid JSON: {exc}"))
        items.append(line)
    if problems:
        raise ValidationFailed(problems)
    if not items:
        raise InvalidRequest("the NDJSON body holds no items")
    return items


# --- classification --------------------------------------------------------------------


def parse_item(raw: bytes, position: int, domain: str, problems: list[Problem]) -> NewEvent | None:
    """Turn one item into a NewEvent, or add its problems to ``problems``."""
    try:
        item = _item_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        problems.append(Problem(position, None, f"item must be a JSON object ({exc})"))
        return None
    except msgspec.DecodeError as exc:
        problems.append(Problem(position, None, f"item is not valid JSON: {exc}"))
        return None
    if item.failureType is not None:
        return _responsys(item, raw, position, problems)
    return _envelope(item, position, domain, problems)


def _responsys(item: _Item, raw: bytes, position: int, problems: list[Problem]) -> NewEvent | None:
    if not isinstance(item.failureType, str) or not item.failureType.strip():
        problems.append(Problem(position, "failureType", "must be a non-empty string"))
        return None
    type_name = catalog.canonical_type(item.failureType.strip())
    declared = item.channelType if isinstance(item.channelType, str) else None
    return NewEvent(
        type=type_name,
        channel=catalog.channel_for(type_name, declared).value,
        payload=raw,
        campaign_id=_s(item.campaignId),
        campaign_name=_s(item.campaignName),
        riid=_s(item.riid),
        customer_id=_s(item.customerId),
        recipient=_s(item.recipient),
        message=_s(item.inboundMessage),
    )


def _envelope(item: _Item, position: int, domain: str, problems: list[Problem]) -> NewEvent | None:
    before = len(problems)
    if item.type is None:
        problems.append(Problem(position, "type", "missing: send a Responsys payload (with "
                                "failureType) or a native envelope {\"type\", \"data\"}"))
    elif not isinstance(item.type, str) or not item.type.strip():
        problems.append(Problem(position, "type", "must be a non-empty string"))
    data = bytes(item.data)
    if not data:
        problems.append(Problem(position, "data", "missing: the envelope needs a data object"))
    elif data[:1] != b"{":
        problems.append(Problem(position, "data", "must be a JSON object"))
    ext_id = _check_id(item.id, position, problems)
    occurred = None
    if item.occurred_at is not None:
        try:
            occurred = parse_time(item.occurred_at)
        except ValueError as exc:
            problems.append(Problem(position, "occurred_at", str(exc)))
    if item.domain is not None and item.domain != domain:
        problems.append(Problem(position, "domain", f"{item.domain!r} is not this key's "
                                f"domain {domain!r}"))
    if len(problems) > before:
        return None
    assert isinstance(item.type, str)
    d = _data_decoder.decode(data)
    type_name = catalog.canonical_type(item.type.strip())
    return NewEvent(
        type=type_name,
        channel=catalog.channel_for(type_name, _first(d.channelType, d.channel)).value,
        payload=data,
        ext_id=ext_id,
        occurred_at=occurred,
        campaign_id=_first(d.campaignId, d.campaign_id),
        campaign_name=_first(d.campaignName, d.campaign_name),
        riid=_s(d.riid),
        customer_id=_first(d.customerId, d.customer_id),
        recipient=_s(d.recipient),
        message=_first(d.inboundMessage, d.message, d.text),
    )


def _check_id(value: object, position: int, problems: list[Problem]) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        problems.append(Problem(position, "id", "must be a string"))
        return None
    text = str(value)
    if not text or len(text) > MAX_ID_LENGTH:
        problems.append(Problem(position, "id", f"must be 1 to {MAX_ID_LENGTH} characters"))
        return None
    return text


def _fast_responsys(body: bytes, raws: list[bytes]) -> list[NewEvent] | None:
    """All-Responsys, string-typed batches (what Oracle sends) skip the general path.

    rqs._speedups' split.c does the same in one pass over the bytes, without the split
    before it and an object per field, for arrays and NDJSON: 1.5 and 3.4 -> 0.7 us an
    event (``python -m bench.micro --only parse``), and leaves the events packed
    (``PackedEvents``)."""
    try:
        items = _responsys_array_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    channels = catalog.CHANNEL_BY_TYPE
    aliases = catalog.ALIASES
    out: list[NewEvent] = []
    append = out.append
    for it, raw in zip(items, raws, strict=True):
        ft = it.failureType
        if not ft or ft != ft.strip():
            return None
        ft = aliases.get(ft, ft)
        chan = channels.get(ft) or catalog.channel_for(ft, it.channelType).value
        append(NewEvent(ft, chan, raw, None, None, it.campaignId, it.campaignName, it.riid,
                        it.customerId, it.recipient, it.inboundMessage))
    return out


def _channel_of(type_name: str, declared: str | None) -> str:
    return catalog.channel_for(type_name, declared).value


def parse_batch(
    body: bytes, content_type: str | None, domain: str, max_items: int
) -> Sequence[NewEvent]:
    """Parse a whole ingest body; raise with every problem if any item is invalid."""
    ndjson = _is_ndjson(content_type)
    array = not ndjson and body.lstrip()[:1] == b"["
    if (array or ndjson) and NATIVE is not None:
        packed = NATIVE.pack_responsys(body, ndjson, max_items, catalog.ALIASES,
                                       catalog.CHANNEL_BY_TYPE, _channel_of)
        if packed is not None:
            return PackedEvents(*packed)
    raws = split_body(body, ndjson)
    if not raws:
        raise InvalidRequest("the batch is empty: send at least one event")
    if len(raws) > max_items:
        raise PayloadTooLarge(f"the batch has {len(raws)} items; the limit is {max_items}")
    # (an NDJSON line holding an array is one item, which is not an object: not this path)
    if array and (fast := _fast_responsys(body, raws)) is not None:
        return fast
    problems: list[Problem] = []
    events: list[NewEvent] = []
    for position, raw in enumerate(raws):
        event = parse_item(raw, position, domain, problems)
        if event is not None:
            events.append(event)
    if problems:
        raise ValidationFailed(problems)
    return events
