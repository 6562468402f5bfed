"""The C renderer of Mapp outputs (rqs._speedups) against the Python paths it replaces.

Every payload it accepts must render to exactly the bytes of the general Python path; what
it declines (None) is rendered by Python, so declining is safe and accepting is checked.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest
from bench import workload
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rqs.domain import flatten
from rqs.domain.events import NewEvent, StoredEvent
from rqs.speedups import NATIVE, Native
from rqs.web import mapp_render, render
from tests.json_strategies import json_values
from tests.support import samples

render_pairs = NATIVE.render_pairs if NATIVE else None


def test_the_extension_is_built_in_ci() -> None:
    # Locally an install without a C compiler falls back to Python; CI must test the C path.
    if render_pairs is None:
        if os.environ.get("CI"):
            pytest.fail("rqs._speedups is not built: CI must compile and test it")
        pytest.skip("rqs._speedups is not built (no C compiler at install time)")


needs_native = pytest.mark.skipif(render_pairs is None, reason="rqs._speedups is not built")


def python_pairs(raw: bytes, xml: bool) -> bytes:
    fmt = mapp_render.Format.XML if xml else mapp_render.Format.JSON
    return mapp_render.renderer(fmt, None).pairs(flatten.flatten_json(raw)).encode()


def check(payloads: list[bytes]) -> list[bool]:
    """Asserts C == Python for every payload C accepts; which ones it accepted."""
    assert render_pairs is not None
    accepted = []
    for xml in (False, True):
        for raw, got in zip(payloads, render_pairs(payloads, xml), strict=True):
            if got is not None:
                assert got == python_pairs(raw, xml), (raw, xml)
            if not xml:
                accepted.append(got is not None)
    return accepted


# Text that exercises the escaping rules of both formats and UTF-8 of every length.
TEXT, SCALARS, VALUES = json_values(
    'ab &<>"\\/\n\t\r\x00\x1f\x7f é中😀\u2028\ufffe\uffff.-0', 8, 4, 12)
PROP = st.one_of(st.fixed_dictionaries({"name": TEXT, "value": VALUES}),
                 st.fixed_dictionaries({"value": VALUES, "name": VALUES, "x": VALUES}),
                 VALUES)
OPTIONAL = st.fixed_dictionaries({"props": st.fixed_dictionaries(
    {"prop": st.one_of(PROP, st.lists(PROP, max_size=4))}, optional={"other": VALUES})},
    optional={"more": VALUES})
PAYLOADS = st.dictionaries(TEXT, VALUES, max_size=6).flatmap(
    lambda d: st.one_of(st.just(d), OPTIONAL.map(lambda o: {**d, "optionalData": o}),
                        st.just({**d, "optionalData": None})))


@needs_native
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PAYLOADS, st.sampled_from([None, 0, 1, 2]))
def test_accepted_payloads_render_exactly_as_in_python(payload: dict[str, Any],
                                                       indent: int | None) -> None:
    raw = json.dumps(payload, indent=indent, ensure_ascii=False).encode()
    check([raw, json.dumps(payload).encode()])  # raw UTF-8 and \u escapes


@needs_native
def test_what_it_accepts() -> None:
    clean = [json.dumps(p, ensure_ascii=False).encode() for p in samples()]
    clean += [json.dumps(e).encode() for e in workload.events(200)]
    clean += [json.dumps(p, indent=2).encode() for p in samples()[:5]]
    clean += [b'{"a":1,"b":-7,"c":true,"d":false,"e":null,"f":[],"g":{},"h":[{"i":"j"}]}',
              b'{"":{"":"x"},"k":["a",["b"]]}',
              b'{"optionalData":{"props":{"prop":{"value":"v"},"x":"y"},"o":"p"}}',
              b'{"optionalData":{"props":{"prop":[{"name":"N","t":"u","value":"v"},"w"]}}}',
              b'{"a":"&<>","optionalData":{"props":{"prop":{"name":"<k>","value":"&v"}}}}',
              '{"a":"\u00e9\u4e2d\U0001f600"}'.encode()]
    assert all(check(clean)), [p for p, ok in zip(clean, check(clean), strict=True) if not ok]


@needs_native
def test_what_it_leaves_to_python() -> None:
    declined = [b'{"a":"q\\"uote"}', b'{"a":"\\u00e9"}', b'{"a":1.5}', b'{"a":1e3}',
                b'{"a":-0}', b'{"a":1234567890123456789}', b'{"a":"1","a":"2"}',
                b'{"a":"\x01"}', b'{"a":"\xff"}', b'{"a":"\xed\xa0\x80"}', b'[1]', b'"x"',
                b'{"a":"x"} trailing', b'{"a":"x"', b'{"a" "x"}', b'{"a":nul}',
                b'{"a":' + b'[' * 70 + b']' * 70 + b'}',
                b'{"optionalData":{"props":{"prop":[{"name":"x","name":"y"}]}}}']
    assert check(declined) == [False] * len(declined)
    assert render_pairs is not None
    nonchar = '{"a":"\uffff"}'.encode()
    assert render_pairs([nonchar], True) == [None]  # XML forbids U+FFFF
    assert render_pairs([nonchar], False) == [python_pairs(nonchar, False)]


@needs_native
def test_arguments_are_checked() -> None:
    assert render_pairs is not None
    assert render_pairs([], False) == []
    with pytest.raises(TypeError, match="payload 1 is str"):
        render_pairs([b"{}", "{}"], False)  # type: ignore[list-item]


@needs_native
@pytest.mark.parametrize("fmt", list(mapp_render.Format))
def test_whole_responses_match_the_python_renderer(fmt: mapp_render.Format) -> None:
    from tests.test_flatten import TRICKY, _events

    rng = random.Random(5)
    payloads: list[Any] = [*samples(), *TRICKY, {"a": 1.5}, {"a": "q\"uote"}]
    events = _events(rng.sample(payloads * 3, len(payloads) * 3))

    def rendered(native: Native | None) -> bytes:
        out = mapp_render.renderer(fmt, native)
        third = len(events) // 3
        return (out.OPEN + out.events(events[:third]) + out.events(events[third:2 * third])
                + out.events(events[2 * third:]) + out.CLOSE)

    assert rendered(NATIVE) == rendered(None)


@needs_native
def test_damaged_payloads_are_declined_or_rendered_right() -> None:
    # Truncations and flipped bytes: a walk over raw bytes must never read past the end
    # or accept what is not JSON (Python would render it as one "payload" pair).
    rng = random.Random(11)
    damaged = []
    for p in samples():
        raw = json.dumps(p, ensure_ascii=False).encode()
        damaged += [raw[:cut] for cut in rng.sample(range(len(raw)), 20)]
        for _ in range(20):
            at = rng.randrange(len(raw))
            damaged.append(raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1:])
    check(damaged)


# --- native event pages --------------------------------------------------------------------


def native_pages(events: list[StoredEvent]) -> None:
    """C and Python encode these events into identical JSON and NDJSON pages, as one page
    and as two after another (a JSON page that follows one starts with its comma)."""
    half = (len(events) + 1) // 2
    for page in (render.json_page, render.ndjson_page):
        for cut in ([events], [events[:half], events[half:]]):
            fast_encode, slow_encode = page(render.TimeCache(), NATIVE), page(render.TimeCache(),
                                                                             None)
            fast = [fast_encode(rows) for rows in cut if rows]
            slow = [slow_encode(rows) for rows in cut if rows]
            assert [(p.body, p.count, p.last_index) for p in fast] == [
                (p.body, p.count, p.last_index) for p in slow]
            joined = b"".join(p.body for p in fast)
            if page is render.json_page:
                assert json.loads(b"[" + joined + b"]") == json.loads(
                    b"[" + page(render.TimeCache(), NATIVE)(events).body + b"]")


@needs_native
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), TEXT), TEXT, TEXT,
                          st.one_of(st.none(), st.integers(0, 2**50)), st.integers(0, 3)),
                min_size=1, max_size=6))
def test_native_pages_match_msgspec(rows: list[tuple[str | None, str, str, int | None, int]]
                                    ) -> None:
    events = [StoredEvent("dom", i + 1, type_, channel, 1_700_000_000_000_000 + step * 1_000,
                          b'{"a":"b"}', ext_id, occurred)
              for i, (ext_id, type_, channel, occurred, step) in enumerate(rows)]
    native_pages(events)


@needs_native
def test_native_pages_of_realistic_events() -> None:
    payloads = [json.dumps(e).encode() for e in workload.events(300)]
    events = [StoredEvent("acme", 10**9 + i, "EMAIL_CLICKED", "Email",
                          1_700_000_000_000_000 + i // 7, p,
                          None if i % 5 else f"id-{i}", None if i % 11 else 1_600_000_000)
              for i, p in enumerate(payloads)]
    native_pages(events)
    assert json.loads(b"[" + render.json_page(render.TimeCache())(events).body + b"]")[5][
        "id"] == "id-5"


@needs_native
def test_native_pages_read_any_object_with_the_fields() -> None:
    """StoredEvent's fields are read from their slots; anything else by name, alike."""
    import types

    events = [StoredEvent("acme", 7 + i, "EMAIL_OPENED", "Email", 1_700_000_000_000_000,
                          b'{"n":%d}' % i, None if i else "x", 1_600_000_000_000_000)
              for i in range(3)]
    lookalikes = [types.SimpleNamespace(**{f: getattr(e, f) for f in e.__struct_fields__})
                  for e in events]
    mixed = [events[0], lookalikes[1], events[2]]
    expected = render.json_page(render.TimeCache(), NATIVE)(events).body
    for rows in (lookalikes, mixed):
        assert render.json_page(render.TimeCache(), NATIVE)(rows).body == expected  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        render.json_page(render.TimeCache(), NATIVE)(  # type: ignore[arg-type]
            [types.SimpleNamespace(index=1, domain="acme")])


class Shouting(StoredEvent):
    """Its own attribute lookup: the slots must not be read past it."""

    def __getattribute__(self, name: str) -> object:
        value = super().__getattribute__(name)
        return value.upper() if name == "type" else value


@needs_native
def test_native_pages_go_through_an_overridden_attribute_lookup() -> None:
    events = [Shouting("acme", 1, "email_opened", "Email", 1_700_000_000_000_000, b"{}")]
    fast = render.json_page(render.TimeCache(), NATIVE)(events).body
    assert fast == render.json_page(render.TimeCache(), None)(events).body
    assert b'"type":"EMAIL_OPENED"' in fast


@needs_native
def test_native_pages_refuse_another_class_s_slots() -> None:
    """A class holding StoredEvent's member descriptors has another layout: getattr
    refuses to read them (TypeError), and so must the renderer, not read out of bounds."""
    foreign = type("Foreign", (), {f: StoredEvent.__dict__[f]
                                   for f in StoredEvent.__struct_fields__})
    with pytest.raises(TypeError):
        render.json_page(render.TimeCache(), NATIVE)([foreign()])


# --- PostgreSQL binary COPY rows -----------------------------------------------------------

OPTIONAL_TEXT = st.one_of(st.none(), TEXT, st.just("a\x00b"), st.just("lone \ud800"))


@needs_native
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT, st.one_of(st.none(), st.integers(-2**62, 2**62)),
                          st.lists(OPTIONAL_TEXT, min_size=7, max_size=7), st.binary()),
                min_size=1, max_size=5))
def test_copy_rows_match_python(rows: list[tuple[str, str, int | None, list[str | None],
                                                 bytes]]) -> None:
    from rqs.storage.postgres import binary_copy

    events = [NewEvent(t, ch, payload, texts[0], occurred, *texts[1:])
              for t, ch, occurred, texts, payload in rows]
    fast = binary_copy.event_tails(events, NATIVE)
    assert fast == binary_copy.event_tails(events, None)
    positions = list(range(len(events)))[::-1]
    offsets = [3 * n for n in range(len(events))]
    fast_rows = binary_copy.event_rows(fast, positions, offsets, 7, 10**12,
                                       1_700_000_000_000_000, NATIVE)
    assert fast_rows == binary_copy.event_rows(fast, positions, offsets, 7, 10**12,
                                               1_700_000_000_000_000, None)
    # The n-th row is the n-th position's tail behind the index first_index + offsets[n].
    at = 0
    for pos, offset in zip(positions, offsets, strict=True):
        head = binary_copy.event_head(7, 10**12 + offset, 1_700_000_000_000_000)
        assert fast_rows[at:at + len(head)] == head
        at += len(head)
        assert fast_rows[at:at + len(fast[pos])] == fast[pos]
        at += len(fast[pos])
    assert at == len(fast_rows)


@needs_native
def test_copy_tails_leave_nul_and_surrogates_to_python() -> None:
    assert NATIVE is not None
    clean = NewEvent("T", "Email", b"{}", "id", None, "c")
    odd = [NewEvent("T", "Email", b"{}", "a\x00b"), NewEvent("T", "Email", b"{}", None, None,
                                                             "\ud800")]
    tails = NATIVE.copy_tails([clean, *odd])
    assert tails[0] is not None and tails[1:] == [None, None]
    with pytest.raises(ValueError, match="position 3 names no bytes tail"):
        NATIVE.copy_rows([b"x"], [3], [0], 1, 1, 1)
    with pytest.raises(ValueError, match="differ in length"):
        NATIVE.copy_rows([b"x"], [0], [0, 1], 1, 1, 1)
    with pytest.raises(ValueError, match="offset -1 is out of range"):
        NATIVE.copy_rows([b"x"], [0], [-1], 1, 1, 1)
    with pytest.raises(ValueError, match="offset 1 is out of range"):
        NATIVE.copy_rows([b"x"], [0], [1], 1, 2**63 - 1, 1)
    with pytest.raises(ValueError, match="first_index must not be negative"):
        NATIVE.copy_rows([b"x"], [0], [0], 1, -1, 1)
