"""Flattening payloads into Mapp name/value outputs, and the renderers' fast path."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from rqs.domain import flatten
from rqs.domain.events import StoredEvent
from rqs.web import mapp_render
from tests.support import samples


def test_scalars_nulls_and_order() -> None:
    payload = {"s": "text", "i": 42, "f": 1.5, "big": 1e16, "t": True, "no": False, "z": None,
               "empty": ""}
    assert flatten.flatten(payload) == [("s", "text"), ("i", "42"), ("f", "1.5"),
                                        ("big", "1e+16"), ("t", "true"), ("no", "false"),
                                        ("empty", "")]


def test_nested_objects_and_arrays() -> None:
    payload = {"a": {"b": {"c": "x"}, "n": None}, "list": ["p", 2, None, {"k": "v"}, [True]],
               "none": {}, "nothing": []}
    assert flatten.flatten(payload) == [("a.b.c", "x"), ("list.0", "p"), ("list.1", "2"),
                                        ("list.3.k", "v"), ("list.4.0", "true")]


def test_prop_object_and_prop_array() -> None:
    one = {"riid": "1", "optionalData": {"props": {"prop": {"name": "EMAIL", "value": "a@b"}}}}
    many = {"optionalData": {"props": {"prop": [{"name": "C1", "value": "John"},
                                                {"name": "C2", "value": 7}]}}, "riid": "2"}
    assert flatten.flatten(one) == [("riid", "1"), ("EMAIL", "a@b")]
    assert flatten.flatten(many) == [("C1", "John"), ("C2", "7"), ("riid", "2")]


def test_unusual_props_fall_back_to_dotted_names() -> None:
    payload = {"optionalData": {
        "props": {"prop": [{"name": "A", "value": {"x": "1"}, "type": "json"},
                           {"value": "nameless"}, {"name": "N", "value": None}, "bare"],
                  "extra": "e"},
        "other": ["o"]}}
    assert flatten.flatten(payload) == [
        ("A.x", "1"), ("A.type", "json"), ("optionalData.props.prop.1.value", "nameless"),
        ("optionalData.props.prop.3", "bare"), ("optionalData.props.extra", "e"),
        ("optionalData.other.0", "o")]
    single = {"optionalData": {"props": {"prop": {"value": "v"}}}}
    assert flatten.flatten(single) == [("optionalData.props.prop.value", "v")]
    assert flatten.flatten({"optionalData": "plain"}) == [("optionalData", "plain")]


def test_duplicate_names_are_all_kept() -> None:
    payload = {"riid": "1", "optionalData": {"props": {"prop": [{"name": "riid", "value": "2"}]}}}
    assert flatten.flatten(payload) == [("riid", "1"), ("riid", "2")]
    assert flatten.simple(json.dumps(payload).encode()) is None  # a dict cannot hold both


def test_payloads_that_are_not_objects() -> None:
    assert flatten.flatten("x") == [("payload", "x")]
    assert flatten.flatten([1, None]) == [("payload.0", "1")]
    assert flatten.flatten_json(b"{broken") == [("payload", "{broken")]


# --- the fast path -----------------------------------------------------------------------

TRICKY: list[Any] = [
    {"a": "1", "b": "2"},
    {},
    {"a": "x", "optionalData": None},
    {"a": None, "b": "2", "optionalData": None},
    {"text": "null and props", "b": "props"},
    {"a": "quote \" and backslash \\"},
    {"a": "\u0001control"},
    {"a": "\uffff nonchar", "b": "\u00e9\u4e2d\U0001f600"},
    {"n": 1},
    {"nested": {"props": {"prop": {"name": "x", "value": "y"}}}},
    {"optionalData": {"props": {"prop": {"name": "x", "value": "y"}}}, "after": "z"},
    {"optionalData": {"props": {"prop": [{"name": "x", "value": "y"}, {"name": "x",
                                                                       "value": "w"}]}}},
    {"a": "1", "optionalData": {"props": {"prop": []}}},
    {"a": "1", "optionalData": {"props": {"prop": [{"name": "p", "value": "1", "t": "s"}]}}},
    {"a": "1", "optionalData": {"props": {"prop": [{"name": "p", "value": 1}]}}},
    {"a": "&<>", "optionalData": {"props": {"prop": {"name": "<k>", "value": "&v"}}}},
    {"%s": "percent %s %d", "{}": "{0}"},
]


def _raw(payload: Any, pretty: bool) -> bytes:
    return json.dumps(payload, indent=1 if pretty else None, ensure_ascii=False).encode()


@pytest.mark.parametrize("pretty", [False, True])
def test_simple_agrees_with_flatten(pretty: bool) -> None:
    payloads = [_raw(p, pretty) for p in [*samples(), *TRICKY]]
    for raw in payloads:
        found = flatten.simple(raw)
        if found is not None:
            assert list(found.items()) == flatten.flatten_json(raw), raw
    # Runs of simple and other payloads decode to the same answers as one by one.
    mixed = payloads * 3
    assert flatten.simple_each(mixed) == [flatten.simple(p) for p in mixed]


def test_simple_covers_the_responsys_samples_and_refuses_the_unsafe() -> None:
    assert all(flatten.simple(_raw(p, False)) is not None for p in samples())
    accepted = [flatten.simple(_raw(p, False)) is not None for p in TRICKY]
    assert accepted == [True, True, True, True, False, False, False, False, False, False, False,
                        False, True, False, False, True, True]


def _events(payloads: list[Any]) -> list[StoredEvent]:
    out = []
    for i, p in enumerate(payloads, start=1):
        ext = None if i % 3 else f'ext "{i}" & <id>'
        occurred = 1_700_000_000_000_000 if i % 4 == 0 else None
        out.append(StoredEvent("default", i, "EMAIL_CLICKED" if i % 2 else "UNKNOWN <&>",
                               "Email", 1_700_000_000_000_000 + i // 5, _raw(p, i % 2 == 0),
                               ext, occurred))
    return out


@pytest.mark.parametrize("fmt", list(mapp_render.Format))
def test_fast_and_general_rendering_are_identical(fmt: mapp_render.Format,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    events = _events([*samples(), *TRICKY] * 2)

    def render() -> bytes:
        out = mapp_render.renderer(fmt)
        half = len(events) // 2
        return out.OPEN + out.events(events[:half]) + out.events(events[half:]) + out.CLOSE

    fast = render()
    monkeypatch.setattr(flatten, "simple_each", lambda payloads: [None] * len(payloads))
    assert render() == fast
    if fmt is mapp_render.Format.JSON:
        body = json.loads(fast)
        assert [r["queueId"] for r in body][:3] == ["rqs-default-1", "rqs-default-2",
                                                    'ext "3" & <id>']
    else:
        root = ET.fromstring(fast)
        assert len(root) == len(events)
        assert root[2].findtext("queueId") == 'ext "3" & <id>'
        last = root[len(samples()) + TRICKY.index({"a": "\u0001control"})]
        assert ("a", "control") in [(o.findtext("name"), o.findtext("value"))
                                    for o in last.findall("output")]


def test_empty_responses_are_well_formed() -> None:
    for fmt in mapp_render.Format:
        out = mapp_render.renderer(fmt)
        body = out.OPEN + out.events([]) + out.CLOSE
        if fmt is mapp_render.Format.JSON:
            assert json.loads(body) == []
        else:
            assert ET.fromstring(body).tag == "asyncResults"
