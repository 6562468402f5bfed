"""Flattening an event payload into the name/value ``output`` list of a Mapp async result.

Mapp Engage returns every event as a flat list of ``<output><name>N</name><value>V</value>``
pairs, so a JSON payload has to become text pairs. The rules, applied in payload order:

* A string is its own value. An integer is written in decimal, a float as Python's
  shortest round-trip form (``1.5``, ``100.0``), a boolean as ``true``/``false``.
* ``null`` is **omitted**: a client mapping outputs to columns sees an absent field either
  way, and "null" and "" would both be lies about the value.
* A nested object contributes its members under dotted names: ``{"a": {"b": "x"}}`` gives
  ``a.b = x``. An empty object contributes nothing.
* An array contributes its items under their position: ``{"a": ["x", "y"]}`` gives
  ``a.0 = x`` and ``a.1 = y`` (positions, not a joined string, so no separator can clash
  with a value). Arrays of objects combine both rules: ``a.0.b``. Empty arrays: nothing.
* Responsys' custom columns, top-level ``optionalData.props.prop``, are name/value pairs
  already, sent either as one object or as an array of them. Each item with a string
  ``name`` is emitted under that name (its ``value`` by the rules above, its other members
  as ``<name>.<member>``). Items without a string ``name``, and any other member of
  ``optionalData`` or ``props``, fall back to the dotted rule.
* A payload that is not an object (never stored by ingest, but tolerated) is emitted under
  the name ``payload``.

Names may repeat (a custom column can share a name with a top-level field); every pair is
kept, in order, as Mapp's list format allows.

``simple`` recognises the shape of almost every Responsys payload (string or null members,
``optionalData`` last) without walking it in Python, a whole chunk per decode call; the
renderers use it as their fast path, and it produces exactly the pairs ``flatten`` does.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec.structs import astuple


def flatten(payload: object) -> list[tuple[str, str]]:
    """The name/value pairs of a decoded payload, by the rules in the module docstring."""
    out: list[tuple[str, str]] = []
    if type(payload) is dict:
        for key, value in payload.items():
            if key == "optionalData" and type(value) is dict:
                _optional_data(value, out)
            else:
                _value(key, value, out)
    else:
        _value("payload", payload, out)
    return out


_any_decoder = msgspec.json.Decoder()


def flatten_json(raw: bytes) -> list[tuple[str, str]]:
    """``flatten`` of a stored payload's bytes."""
    try:
        payload = _any_decoder.decode(raw)
    except msgspec.DecodeError:
        # Ingest only stores valid JSON; if a row is damaged anyway, show it rather than fail
        # the whole response.
        return [("payload", raw.decode("utf-8", "replace"))]
    return flatten(payload)


def _optional_data(data: dict[str, Any], out: list[tuple[str, str]]) -> None:
    for key, value in data.items():
        if key == "props" and type(value) is dict:
            for pkey, pvalue in value.items():
                if pkey == "prop":
                    _props(pvalue, out)
                else:
                    _value(f"optionalData.props.{pkey}", pvalue, out)
        else:
            _value(f"optionalData.{key}", value, out)


def _props(value: Any, out: list[tuple[str, str]]) -> None:
    items = value if type(value) is list else [value]
    for position, item in enumerate(items):
        name = item.get("name") if type(item) is dict else None
        if type(name) is not str:
            where = "optionalData.props.prop"
            _value(f"{where}.{position}" if type(value) is list else where, item, out)
            continue
        assert type(item) is dict
        _value(name, item.get("value"), out)
        for key, extra in item.items():
            if key != "name" and key != "value":
                _value(f"{name}.{key}", extra, out)


def _value(name: str, value: Any, out: list[tuple[str, str]]) -> None:
    kind = type(value)
    if kind is str:
        out.append((name, value))
    elif value is None:
        return
    elif kind is bool:
        out.append((name, "true" if value else "false"))
    elif kind is int:
        out.append((name, str(value)))
    elif kind is float:
        out.append((name, repr(value)))
    elif kind is dict:
        for key, item in value.items():
            _value(f"{name}.{key}", item, out)
    elif kind is list:
        for position, item in enumerate(value):
            _value(f"{name}.{position}", item, out)
    else:  # msgspec decodes JSON to the types above only
        out.append((name, str(value)))


# --- the fast path --------------------------------------------------------------------


class _Prop(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One Responsys custom column. Unknown members are refused, not dropped, so that
    anything richer takes the general path and loses nothing. Field order matters:
    ``astuple`` gives (name, value)."""

    name: str
    value: str


class _Props(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    prop: list[_Prop] | _Prop


class _OptionalData(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    props: _Props


_many_decoder = msgspec.json.Decoder(list[dict[str, str | _OptionalData | None]])
_PROPS_TOKEN = b'"props"'
_OPTIONAL_TOKEN = b'"optionalData"'
_NULL_TOKEN = b"null"
_SMALLEST_SPLIT = 32

Flat = dict[str, str]


def simple(raw: bytes) -> Flat | None:
    """The payload's pairs as a dict if it has the common shape and unique names, else None.

    When it returns a dict, ``list(dict.items()) == flatten_json(raw)``, and no name or value
    holds a quote, a backslash, a control character or U+FFC0..U+FFFF, so renderers may
    splice them into JSON strings and XML text unescaped (XML still needs ``& < >``).
    The common shape: string or null members, with ``optionalData.props.prop`` (holding
    only ``{"name": str, "value": str}`` items) if any as the last member.
    """
    return simple_each([raw])[0]


def simple_each(payloads: list[bytes]) -> list[Flat | None]:
    """``simple`` of each payload, decoding runs of simple payloads in one call.

    A poll of 100,000 events spends its time in per-event interpreter overhead; one decode
    call per chunk removes most of it. A chunk holding other shapes is split in halves
    until the runs decode (failed attempts stop at the first odd payload, so this stays
    cheap).
    """
    if not payloads:
        return []
    found = _simple_run(b",".join(payloads), len(payloads))
    if found is not None:
        return found
    if len(payloads) <= _SMALLEST_SPLIT:
        return [(_simple_run(p, 1) or [None])[0] for p in payloads]
    half = len(payloads) // 2
    return simple_each(payloads[:half]) + simple_each(payloads[half:])


def _simple_run(joined: bytes, count: int) -> list[Flat | None] | None:
    """Results for ``count`` payloads joined by commas, or None if some is not simple."""
    # Without a backslash no string can hold a quote, backslash or control character
    # (JSON must escape those). U+FFFE and U+FFFF are legal raw in JSON but not in XML.
    if b"\\" in joined or b"\xef\xbf" in joined:
        return None
    try:
        decoded: list[dict[str, Any]] = _many_decoder.decode(b"[" + joined + b"]")
    except msgspec.DecodeError:  # a number, a nested object, ...: the general path
        return None
    if len(decoded) != count:  # pragma: no cover - stored payloads are single JSON values
        return None
    if _OPTIONAL_TOKEN not in joined and _NULL_TOKEN not in joined:
        # No optionalData anywhere; a "props" token would mean an _OptionalData elsewhere.
        return None if _PROPS_TOKEN in joined else decoded  # type: ignore[return-value]
    columns = nulls = 0
    clashes: list[int] = []
    for members in decoded:
        if not members:
            continue
        key, last = members.popitem()
        if last is None:  # "optionalData": null ends many Responsys payloads; omitted
            nulls += 1
            continue
        if key != "optionalData" or type(last) is not _OptionalData:
            members[key] = last  # popitem took the last member: this restores the order
            continue
        columns += 1
        prop = last.props.prop
        items = prop if isinstance(prop, list) else [prop]
        size = len(members) + len(items)
        members.update(map(astuple, items))  # (name, value) pairs, without a Python frame
        if len(members) != size:  # a column shares a name with a member: keep both, slowly
            clashes.append(id(members))
    # Each optionalData taken above holds one "props" token. Any other token means some
    # other member may be an _OptionalData (or optionalData was not last): no shortcut.
    if joined.count(_PROPS_TOKEN) != columns:
        return None
    strip = joined.count(_NULL_TOKEN) != nulls  # some null is not last (or "null" is text)
    if clashes or strip:
        return [None if id(m) in clashes else _without_nulls(m) if strip else m
                for m in decoded]
    return decoded  # type: ignore[return-value]  # every _OptionalData and None taken out


def _without_nulls(members: dict[str, Any]) -> Flat:
    if None not in members.values():
        return members
    return {k: v for k, v in members.items() if v is not None}
