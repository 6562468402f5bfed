"""Rows in PostgreSQL's binary COPY format, encoded ahead of time.

Everything about an event except its index is known before the domain lock is taken,
so each event's columns are encoded then (``event_tail``); under the lock only a small
fixed-size head (domain id, index, received_at) is packed in front of each one. Format:
https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from rqs.domain.events import NewEvent
from rqs.speedups import NATIVE, Native

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # signature, flags, no extension
TRAILER = struct.pack("!h", -1)

_LEN = struct.Struct("!i")
_NULL = _LEN.pack(-1)
_INT8 = struct.Struct("!iq")  # length 8, value
# field count; then domain_id (int4), idx (int8), received_at (int8), each length-prefixed
EVENT_HEAD = struct.Struct("!hiiiqiq")
EVENT_FIELDS = 14
ID_HEAD = struct.Struct("!hii")  # field count, length 4, domain_id
ID_FIELDS = 3

_NUL = b"\x00"
_REPLACEMENT = "\ufffd".encode()


def clean(value: str) -> str:
    """PostgreSQL text cannot hold NUL (what JSON "\\u0000" decodes to)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode("utf-8", "replace")  # "replace": lone surrogates
    if _NUL in data:
        data = data.replace(_NUL, _REPLACEMENT)
    return _LEN.pack(len(data)) + data


def event_tail(e: NewEvent, ext_id: str | None) -> bytes:
    """Every column after (domain_id, idx, received_at), in ``sql.EVENT_COLUMNS_IN`` order.

    Searchable attributes with NUL are stored with U+FFFD; the payload is bytea and kept
    exactly. One function and one loop: this runs for every event ingested, and calls
    per column were most of its cost.
    """
    head = _kinds.get((e.type, e.channel))
    if head is None:
        head = _kind(e.type, e.channel)
    parts = [head, _NULL if e.occurred_at is None else _INT8.pack(8, e.occurred_at)]
    add, pack = parts.append, _LEN.pack
    for value in (ext_id, e.campaign_id, e.campaign_name, e.riid, e.customer_id, e.recipient,
                  e.message):
        if value is None:
            add(_NULL)
            continue
        data = value.encode("utf-8", "replace")  # "replace": lone surrogates
        if _NUL in data:
            data = data.replace(_NUL, _REPLACEMENT)
        add(pack(len(data)))
        add(data)
    add(pack(len(e.payload)))
    add(e.payload)
    return b"".join(parts)


# (type, channel) -> both columns encoded: a few dozen pairs cover a whole store.
_kinds: dict[tuple[str, str], bytes] = {}
_MAX_KINDS = 4096


def _kind(type_name: str, channel: str) -> bytes:
    if len(_kinds) >= _MAX_KINDS:  # uncatalogued types are unbounded: stay bounded
        _kinds.clear()
    found = _kinds[(type_name, channel)] = _text(type_name) + _text(channel)
    return found


def event_head(domain_id: int, idx: int, received_at: int) -> bytes:
    return EVENT_HEAD.pack(EVENT_FIELDS, 4, domain_id, 8, idx, 8, received_at)


def event_tails(events: Sequence[NewEvent], native: Native | None = NATIVE) -> list[bytes]:
    """``event_tail`` of every event (its ext_id cleaned): in C where it was built, which
    leaves texts with NUL or lone surrogates to Python (~4 µs an event in Python, all of it
    in the HTTP process, most of what an append costs there)."""
    if native is None:
        return [_python_tail(e) for e in events]
    return [tail if tail is not None else _python_tail(e)
            for e, tail in zip(events, native.copy_tails(events), strict=True)]


def _python_tail(e: NewEvent) -> bytes:
    return event_tail(e, None if e.ext_id is None else clean(e.ext_id))


def event_rows(tails: Sequence[bytes], positions: Sequence[int], offsets: Sequence[int],
               domain_id: int, first_index: int, received_at: int,
               native: Native | None = NATIVE) -> bytes:
    """Whole rows, in the order of ``positions``: the n-th is ``tails[positions[n]]``
    behind its head, index ``first_index + offsets[n]``. This runs under the domain's
    lock, so in C where it was built."""
    if native is not None:
        return native.copy_rows(tails, positions, offsets, domain_id, first_index,
                                received_at)
    parts: list[bytes] = []
    for pos, offset in zip(positions, offsets, strict=True):
        parts.append(event_head(domain_id, first_index + offset, received_at))
        parts.append(tails[pos])
    return b"".join(parts)


def id_row(domain_id: int, ext_id: str, idx: int) -> bytes:
    """An ``event_ids`` row: (domain_id, ext_id, idx)."""
    return ID_HEAD.pack(ID_FIELDS, 4, domain_id) + _text(ext_id) + _INT8.pack(8, idx)
