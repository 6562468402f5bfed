"""Mapp Engage wire formats: async results, bare counts and errors, in JSON and XML.

An async result is ``{"queueId": id, "output": [{"name", "value"}, ...]}`` in JSON and
``<asyncResult><queueId/><output><name/><value/></output>...</asyncResult>`` in XML. The
outputs are ``index``, ``type``, ``channel``, ``received_at`` (ISO 8601 UTC), then
``occurred_at`` when the sender gave one, then the payload flattened by
``rqs.domain.flatten``.

Speed matters here: a poll may return 100,000 events of a dozen fields each. Building a
Python object per field and encoding it costs several times the storage scan, so payloads
of the common shape (``flatten.simple``) are spliced into a per-key-list template with one
``%`` per event, and everything else takes the general path; both give identical bytes
(tests check this). The fixed outputs are formatted once per type and commit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from enum import Enum

import msgspec

from rqs.domain import flatten
from rqs.domain.events import StoredEvent, format_time


class Format(Enum):
    JSON = "application/json"
    XML = "application/xml"


XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_json = msgspec.json.Encoder()

# Characters XML 1.0 forbids outright; they are dropped rather than failing the response.
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_SPECIAL = re.compile("[&<>\r]")
_XML_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"}  # CR survives parsing


def xml_text(value: str) -> str:
    """Any text made safe as XML element content."""
    value = _XML_ILLEGAL.sub("", value)
    return _XML_SPECIAL.sub(lambda m: _XML_ESCAPES[m.group()], value)


def json_text(value: str) -> str:
    return _json.encode(value).decode()


def _escape_all(values: Iterable[str]) -> list[str]:
    """``& < >`` escaped in many values with a few C-level passes instead of one per value.

    Only for values ``flatten.simple`` vouched for: they hold no NUL, the separator.
    """
    joined = "\x00".join(values)
    joined = joined.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return joined.split("\x00")


# Templates keyed by the payload's member names: literal pieces with a None slot for each
# value, filled by one slice assignment (several times cheaper than "%" on this path).
# Bounded, so that payloads with ever-new keys cannot grow memory without limit.
_TEMPLATE_CACHE_SIZE = 4096
Template = list[str | None]


def _template(cache: dict[tuple[str, ...], Template], keys: tuple[str, ...],
              quote: Callable[[str], str], before: str, between: str, after: str) -> Template:
    found = cache.get(keys)
    if found is None:
        if len(cache) >= _TEMPLATE_CACHE_SIZE:
            cache.clear()
        found = []
        for i, key in enumerate(keys):
            found += [(between if i else before).format(quote(key)), None]
        if found:
            found.append(after)
        cache[keys] = found
    return found


class Renderer:
    """Encodes one response's events chunk by chunk; holds per-response caches."""

    def __init__(self) -> None:
        self._fixed: dict[str, tuple[str, str]] = {}  # type -> (channel, rendered outputs)
        self._received_at = -1
        self._started = False

    def open(self) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        raise NotImplementedError

    def pairs(self, pairs: list[tuple[str, str]]) -> str:
        raise NotImplementedError

    def render(self, events: list[StoredEvent], found: list[flatten.Simple | None],
               joined: bytes, parts: list[str | None]) -> None:
        raise NotImplementedError

    def fixed(self, event: StoredEvent) -> str:
        """The type, channel and received_at outputs, formatted once per type and commit."""
        if event.received_at != self._received_at:
            # received_at never decreases along the index: an old commit's entries are done.
            self._fixed.clear()
            self._received_at = event.received_at
        hit = self._fixed.get(event.type)
        if hit is not None and hit[0] == event.channel:
            text = hit[1]
        else:
            text = self.pairs([("type", event.type), ("channel", event.channel),
                               ("received_at", format_time(event.received_at))])
            self._fixed[event.type] = (event.channel, text)
        if event.occurred_at is not None:
            text += self.pairs([("occurred_at", format_time(event.occurred_at))])
        return text

    def events(self, events: list[StoredEvent]) -> bytes:
        joined = b",".join([e.payload for e in events])
        found: list[flatten.Simple | None] | None = flatten.simple_many(joined)  # type: ignore[assignment]
        if found is None:
            found = [flatten.simple(e.payload) for e in events]
        parts: list[str | None] = []
        self.render(events, found, joined, parts)
        text = "".join(parts)  # type: ignore[arg-type]  # every None slot was filled
        if not self._started and text:
            self._started = True
            text = self.first(text)
        return text.encode()

    def first(self, text: str) -> str:
        return text


class JsonRenderer(Renderer):
    def open(self) -> bytes:
        return b"["

    def close(self) -> bytes:
        return b"]"

    def first(self, text: str) -> str:
        return text[1:]  # every event starts with its separating comma

    def pairs(self, pairs: list[tuple[str, str]]) -> str:
        if not pairs:
            return ""
        return "," + _json.encode([{"name": n, "value": v} for n, v in pairs]).decode()[1:-1]

    def render(self, events: list[StoredEvent], found: list[flatten.Simple | None],
               joined: bytes, parts: list[str | None]) -> None:
        add = parts.append
        fixed = self.fixed
        templates = _json_templates
        for e, simple in zip(events, found, strict=True):
            qid = f'"rqs-{e.domain}-{e.index}"' if e.ext_id is None else json_text(e.ext_id)
            add(f',{{"queueId":{qid},"output":[{{"name":"index","value":"{e.index}"}}'
                f"{fixed(e)}")
            if simple is None:
                add(self.pairs(flatten.flatten_json(e.payload)))
            else:
                members, props = simple
                n = len(parts)
                # Values of simple payloads need no JSON escaping (see flatten.simple).
                parts += _template(templates, tuple(members), json_text, _JSON_FIRST, _JSON_NEXT,
                                   '"}')
                parts[n + 1::2] = members.values()
                if props:
                    # A Prop encodes as {"name":..,"value":..}: the output item already.
                    add("," + _json.encode(props).decode()[1:-1])
            add("]}")


_JSON_FIRST = ',{{"name":{},"value":"'
_JSON_NEXT = '"}},{{"name":{},"value":"'
_json_templates: dict[tuple[str, ...], Template] = {}


class XmlRenderer(Renderer):
    def open(self) -> bytes:
        return (XML_DECLARATION + "<asyncResults>").encode()

    def close(self) -> bytes:
        return b"</asyncResults>"

    def pairs(self, pairs: list[tuple[str, str]]) -> str:
        return "".join([f"<output><name>{xml_text(n)}</name><value>{xml_text(v)}</value></output>"
                        for n, v in pairs])

    def render(self, events: list[StoredEvent], found: list[flatten.Simple | None],
               joined: bytes, parts: list[str | None]) -> None:
        add = parts.append
        fixed = self.fixed
        templates = _xml_templates
        # Most chunks hold no & < >: then no event needs a look.
        special = b"&" in joined or b"<" in joined or b">" in joined
        for e, simple in zip(events, found, strict=True):
            qid = f"rqs-{e.domain}-{e.index}" if e.ext_id is None else xml_text(e.ext_id)
            add(f"<asyncResult><queueId>{qid}</queueId>"
                f"<output><name>index</name><value>{e.index}</value></output>{fixed(e)}")
            if simple is None:
                add(self.pairs(flatten.flatten_json(e.payload)))
            else:
                members, props = simple
                p = e.payload
                escape = special and (b"&" in p or b"<" in p or b">" in p)
                n = len(parts)
                parts += _template(templates, tuple(members), xml_text, _XML_FIRST, _XML_NEXT,
                                   _XML_END)
                parts[n + 1::2] = _escape_all(members.values()) if escape else members.values()
                if props:
                    cols = [s for prop in props for s in (prop.name, prop.value)]
                    if escape:
                        cols = _escape_all(cols)
                    add("".join([f"<output><name>{cols[i]}</name><value>{cols[i + 1]}"
                                 "</value></output>" for i in range(0, len(cols), 2)]))
            add("</asyncResult>")


_XML_FIRST = "<output><name>{}</name><value>"
_XML_NEXT = "</value></output><output><name>{}</name><value>"
_XML_END = "</value></output>"
_xml_templates: dict[tuple[str, ...], Template] = {}


def renderer(fmt: Format) -> Renderer:
    return XmlRenderer() if fmt is Format.XML else JsonRenderer()


def count_body(value: int, fmt: Format) -> bytes:
    """A bare integer: ``123`` in JSON, ``<long>123</long>`` in XML (JAXB's name for it)."""
    if fmt is Format.XML:
        return f"{XML_DECLARATION}<long>{value}</long>".encode()
    return str(value).encode()


def error_body(fields: dict[str, str], fmt: Format) -> bytes:
    """Mapp's error object: errorActor, errorCode, message and optional details."""
    if fmt is Format.XML:
        inner = "".join(f"<{k}>{xml_text(v)}</{k}>" for k, v in fields.items())
        return f"{XML_DECLARATION}<error>{inner}</error>".encode()
    return _json.encode(fields)
