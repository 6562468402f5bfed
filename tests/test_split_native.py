"""Ingest's C splitter (rqs._speedups' split.c) against the Python parser it stands in for.

Whatever body it accepts must parse, in Python, to exactly the same events; what it
declines (None) is parsed by Python, with Python's errors, so declining is safe and
accepting is checked.
"""

from __future__ import annotations

import json
import random
from typing import Any
from unittest.mock import patch

import msgspec
import pytest
from bench import workload
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rqs.domain import catalog, events
from rqs.domain.events import NewEvent
from rqs.errors import PayloadTooLarge, RqsError, ValidationFailed
from rqs.speedups import NATIVE
from tests.json_strategies import json_values
from tests.support import samples

needs_native = pytest.mark.skipif(NATIVE is None, reason="rqs._speedups is not built")


def split(body: bytes, ndjson: bool = False, max_items: int = 100_000
          ) -> list[NewEvent] | None:
    """The C path's events; its packed bytes are checked to be msgspec's own encoding of
    them, and its types and channels theirs."""
    assert NATIVE is not None
    got = NATIVE.pack_responsys(body, ndjson, max_items, catalog.ALIASES,
                                catalog.CHANNEL_BY_TYPE, events._channel_of)
    if got is None:
        return None
    packed, types, channels = got
    decoded = msgspec.msgpack.decode(packed, type=list[NewEvent])
    assert msgspec.msgpack.encode(decoded) == packed
    assert types == [e.type for e in decoded] and channels == [e.channel for e in decoded]
    return decoded


def in_python(body: bytes, ndjson: bool = False) -> list[NewEvent] | RqsError:
    media = "application/x-ndjson" if ndjson else "application/json"
    with patch.object(events, "NATIVE", None):
        try:
            return events.parse_batch(body, media, "d", 100_000)
        except RqsError as exc:
            return exc


def accepted(body: bytes, ndjson: bool = False) -> bool:
    """Asserts that Python parses an accepted body to the same events."""
    got = split(body, ndjson)
    if got is not None:
        assert got == in_python(body, ndjson), body
    return got is not None


TEXT, SCALARS, VALUES = json_values('ab "\\/\n\t\x00\x1f\x7f é中😀\u2028\ufeff\ud800.-0', 6, 3, 8)
TYPES = st.one_of(st.sampled_from([t.name for t in catalog.CATALOG] + list(catalog.ALIASES)),
                  st.sampled_from(["NEW_TYPE", " EMAIL_CLICKED", "EMAIL_CLICKED ", "",
                                   "\u00a0X", "X\u3000", "é"]),
                  TEXT, st.none(), st.integers())
READ = ["channelType", "campaignId", "campaignName", "riid", "customerId", "recipient",
        "inboundMessage"]
ITEMS = st.fixed_dictionaries(
    {"failureType": TYPES},
    optional={**{k: st.one_of(TEXT, st.none(), SCALARS, VALUES) for k in READ},
              **{k: VALUES for k in ["type", "id", "occurred_at", "domain", "data"]},
              "optionalData": VALUES, "other": VALUES})


@needs_native
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ITEMS, min_size=1, max_size=5), st.booleans(), st.sampled_from([None, 1]))
def test_what_it_accepts_python_parses_the_same(items: list[dict[str, Any]], ascii: bool,
                                                indent: int | None) -> None:
    accepted(json.dumps(items, ensure_ascii=ascii, indent=indent).encode("utf-8",
                                                                          "surrogatepass"))


# Items the C path must take: catalogued types, and text with nothing it leaves to Python
# (no escapes once written with ensure_ascii=False). Most of ITEMS is declined; these
# make sure the equality above is checked on many accepted batches too.
PLAIN_TEXT, _, PLAIN_VALUES = json_values("ab 0.-/é中😀\u2028", 6, 3, 8)
PLAIN_ITEMS = st.fixed_dictionaries(
    {"failureType": st.sampled_from([t.name for t in catalog.CATALOG] + list(catalog.ALIASES))},
    optional={**{k: st.one_of(PLAIN_TEXT, st.none()) for k in READ},
              "optionalData": PLAIN_VALUES, "type": PLAIN_TEXT, "id": st.none()})


@needs_native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PLAIN_ITEMS, min_size=1, max_size=5), st.booleans(), st.sampled_from([None, 1]))
def test_plain_batches_are_taken_and_parse_the_same(items: list[dict[str, Any]],
                                                     ndjson: bool, indent: int | None) -> None:
    if ndjson:
        body = "\n".join(json.dumps(i, ensure_ascii=False) for i in items).encode()
    else:
        body = json.dumps(items, ensure_ascii=False, indent=indent).encode()
    assert accepted(body, ndjson=ndjson), body


@needs_native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ITEMS, min_size=1, max_size=5), st.booleans(),
       st.lists(st.sampled_from(["\n", "\r\n", "\n\n", " \n\t", "\x0b\n\x0c"]),
                min_size=5, max_size=5))
def test_ndjson_it_accepts_python_parses_the_same(items: list[dict[str, Any]], ascii: bool,
                                                  ends: list[str]) -> None:
    lines = [json.dumps(item, ensure_ascii=ascii) + end for item, end in zip(items, ends,
                                                                            strict=False)]
    accepted("".join(lines).encode("utf-8", "surrogatepass"), ndjson=True)


@needs_native
def test_realistic_batches_are_taken() -> None:
    bodies = [json.dumps(samples()).encode(), json.dumps(samples(), indent=2).encode(),
              json.dumps([e for e in workload.events(300)], ensure_ascii=False).encode(),
              b' \r\n\t[ {"failureType":"EMAIL_CLICKED"} , {"failureType":"X","b":[1,-2.5e+3]} ] ',
              '[{"failureType":"SMS_DELIVERY_RECEIPT","channelType":"Sms","recipient":"é"}]'
              .encode()]
    assert all(accepted(b) for b in bodies)
    ndjson = [b"\n".join(json.dumps(p).encode() for p in samples()),
              b'\r\n {"failureType":"EMAIL_CLICKED"} \r\n\n\x0c{"failureType":"X"}\x0b',
              b'{"failureType":"EMAIL_CLICKED",\r"riid":"1"}']
    assert all(accepted(b, ndjson=True) for b in ndjson)


@needs_native
def test_type_aliases_and_uncatalogued_channels() -> None:
    got = split(b'[{"failureType":"SMS_DELIVERY_RECEIPT"},'
                b'{"failureType":"CUSTOM_THING","channelType":"Sms"},'
                b'{"failureType":"CUSTOM_THING"},{"failureType":"EMAIL_BOUNCED","channelType":"Sms"}]')
    assert got is not None
    assert [(e.type, e.channel) for e in got] == [
        ("SMS_RECEIPT", "Sms"), ("CUSTOM_THING", "Sms"),
        ("CUSTOM_THING", catalog.channel_for("CUSTOM_THING", None).value),
        ("EMAIL_BOUNCED", "Email")]


@needs_native
def test_what_it_leaves_to_python() -> None:
    def clicked(member: bytes) -> bytes:
        return b'[{"failureType":"EMAIL_CLICKED",' + member + b"}]"

    declined = [
        b"[]", b"{}", b'{"failureType":"EMAIL_CLICKED"}', b"[1]", b'["x"]', b"[[]]",
        b'[{"failureType":"EMAIL_CLICKED"}] x', b'[{"failureType":"EMAIL_CLICKED"},]',
        b'[{"failureType":"EMAIL_CLICKED"}', b'\x0b[{"failureType":"EMAIL_CLICKED"}]',
        b'[{"type":"EMAIL_CLICKED","data":{}}]',  # native envelopes
        b'[{"failureType":"EMAIL_CLICKED"},{"type":"x","data":{}}]',
        b'[{"failureType":"EMAIL_\\u0043LICKED"}]', b'[{"failure\\u0054ype":"EMAIL_CLICKED"}]',
        b'[{"failureType":null}]', b'[{"failureType":""}]', b'[{"failureType":" X"}]',
        b'[{"failureType":"\xc2\xa0X"}]', b'[{"failureType":"EMAIL_CLICKED","failureType":"X"}]',
        clicked(b'"riid":"a\\"b"'), clicked(b'"riid":5'), clicked(b'"riid":"1","riid":"2"'),
        clicked(b'"x":"\\ud800"'), clicked(b'"x":"\\ude00\\ud83d"'), clicked(b'"x":"\x01"'),
        clicked(b'"x":"\xff"'), clicked(b'"x":01'), clicked(b'"x":1.'), clicked(b'"x":-'),
        clicked(b'"x":1e'), clicked(b'"x":tru'), clicked(b'"x":"\\x"'), clicked(b'"x":"\\u12"'),
        clicked(b'"x":' + b"[" * 70 + b"]" * 70),
    ]
    assert [b for b in declined if split(b) is not None] == []
    ndjson_declined = [
        b"", b"\n \n", b'[{"failureType":"EMAIL_CLICKED"}]', b'"x"',
        b'{"failureType":"EMAIL_CLICKED"}{"failureType":"EMAIL_CLICKED"}',
        b'{"failureType":"EMAIL_CLICKED"} x', b'{"failureType":"EMAIL_CLICKED",\n"riid":"1"}',
        b'{"failureType":"EMAIL_CLICKED"}\n{"type":"x","data":{}}', b'{"failureType":"E\xff"}',
        # numbers Python cannot hold, where the NDJSON path decodes a native envelope's
        # members into objects (found in review)
        b'{"failureType":"EMAIL_CLICKED","id":1e400}',
        b'{"failureType":"EMAIL_CLICKED","type":[1e309]}',
        b'{"failureType":"EMAIL_CLICKED","occurred_at":{"a":-1e400}}',
        b'{"failureType":"EMAIL_CLICKED","domain":' + b"9" * 4301 + b"}",
    ]
    assert [b for b in ndjson_declined if split(b, ndjson=True) is not None] == []


@needs_native
def test_damaged_batches_are_declined_or_parsed_right() -> None:
    # Truncations and changed bytes: a walk over raw bytes must never read past the end or
    # accept what msgspec would refuse.
    rng = random.Random(7)
    raw = json.dumps(samples()[:6], ensure_ascii=False).encode()
    for cut in rng.sample(range(len(raw)), 150):
        accepted(raw[:cut])
    for _ in range(600):
        at = rng.randrange(len(raw))
        accepted(raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1:])
    lines = b"\n".join(json.dumps(p, ensure_ascii=False).encode() for p in samples()[:6])
    for cut in rng.sample(range(len(lines)), 150):
        accepted(lines[:cut], ndjson=True)
    for _ in range(600):
        at = rng.randrange(len(lines))
        accepted(lines[:at] + bytes([rng.choice(b'\n{}[]",: \\x')]) + lines[at + 1:],
                 ndjson=True)


@needs_native
def test_more_items_than_allowed_are_left_to_python() -> None:
    # Python counts them and says how many; C stops walking at the limit.
    body = b"[" + b",".join([b'{"failureType":"EMAIL_CLICKED"}'] * 3) + b"]"
    assert split(body, max_items=2) is None
    assert split(body.strip(b"[]").replace(b",", b"\n"), ndjson=True, max_items=2) is None
    got = split(body, max_items=3)
    assert got is not None and len(got) == 3


@needs_native
def test_arguments_are_checked() -> None:
    assert NATIVE is not None
    with pytest.raises(TypeError):  # read without the GIL: only immutable bytes
        NATIVE.pack_responsys(bytearray(b'[{"failureType":"X"}]'), False, 10,  # type: ignore[arg-type]
                              {}, {}, events._channel_of)
    with pytest.raises(TypeError, match="channel_of returned int, not str"):
        NATIVE.pack_responsys(b'[{"failureType":"X"}]', False, 10, {}, {},
                              lambda t, d: 5)  # type: ignore[arg-type,return-value]


@needs_native
def test_parse_batch_takes_the_c_path_with_its_limits() -> None:
    body = json.dumps([{"failureType": "EMAIL_CLICKED", "riid": str(i)} for i in range(5)])
    with patch.object(events, "_fast_responsys", side_effect=AssertionError("not C")):
        got = events.parse_batch(body.encode(), "application/json; charset=utf-8", "d", 5)
        assert [e.riid for e in got] == ["0", "1", "2", "3", "4"]
        with pytest.raises(PayloadTooLarge, match="the batch has 5 items; the limit is 4"):
            events.parse_batch(body.encode(), "application/json", "d", 4)


@pytest.mark.parametrize("native", [NATIVE, None], ids=["c", "python"])
@pytest.mark.parametrize("line", [b'[{"failureType":"EMAIL_CLICKED"}]',
                                  b'[{"failureType":"A"},{"failureType":"B"}]'])
def test_ndjson_lines_holding_arrays_are_refused(native: object, line: bytes) -> None:
    # One line is one item, and an array is not an object. (The Python fast path once took
    # the line for a batch: one item was stored as the array, two failed with a 500.)
    with patch.object(events, "NATIVE", native), pytest.raises(
            ValidationFailed, match=r"\(first: item 0, item must be a JSON object"):
        events.parse_batch(line, "application/x-ndjson", "d", 10)


@needs_native
@pytest.mark.parametrize("count", [1, 15, 16, 65_535, 65_536])
def test_packed_lengths_take_every_msgpack_form(count: int) -> None:
    """Strings of 31/32/255/256/65,535/65,536 bytes, a payload past 65,535 and batches on
    each side of the array headers' limits: msgspec's encoding, byte for byte (split)."""
    sized = [{"failureType": "EMAIL_CLICKED", "campaignName": "n" * n, "riid": "é" * (n // 2)}
             for n in (31, 32, 255, 256, 65_535, 65_536)]
    big = {"failureType": "SMS_MO", "inboundMessage": "x", "pad": "p" * 70_000}
    items = (sized + [big] + [{"failureType": "EMAIL_OPENED"}] * count)[:count]
    body = json.dumps(items, ensure_ascii=False).encode()  # escapes would be declined
    got = split(body, max_items=100_000)
    assert got is not None and len(got) == count
    assert got == in_python(body)
