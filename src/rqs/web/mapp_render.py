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
from collections.abc import Iterable
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


_TEMPLATE_CACHE_SIZE = 4096
Template = list[str | None]


class Renderer:
    """Encodes one response's events chunk by chunk; holds per-response caches."""

    # Literal pieces around each pair: before the first name, between a value and the next
    # name, between a name and its value, after the last value.
    FIRST = NEXT = NAME_VALUE = LAST = ""

    def __init__(self) -> None:
        self._fixed: dict[str, tuple[str, str]] = {}  # type -> (channel, rendered outputs)
        self._received_at = -1
        self._started = False
        self._templates: dict[tuple[str, ...], Template] = {}

    def open(self) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        raise NotImplementedError

    def quote(self, text: str) -> str:
        """A name or value as it appears between the literal pieces."""
        raise NotImplementedError

    def head(self, event: StoredEvent) -> str:
        """The event's opening, its queue id and its index output."""
        raise NotImplementedError

    tail = ""

    def pairs(self, pairs: list[tuple[str, str]]) -> str:
        """Outputs of the general path; equal to the fast path's for a simple payload."""
        if not pairs:
            return ""
        quote = self.quote
        return self.FIRST + self.NEXT.join(
            [quote(n) + self.NAME_VALUE + quote(v) for n, v in pairs]) + self.LAST

    def template(self, keys: tuple[str, ...]) -> Template:
        """Literal pieces for a flat payload with these names, a None slot for each value.

        Filling the slots with one slice assignment is several times cheaper than "%" or
        per-value formatting. Bounded, so ever-new key sets cannot grow memory."""
        if len(self._templates) >= _TEMPLATE_CACHE_SIZE:
            self._templates.clear()
        found: Template = []
        for i, key in enumerate(keys):
            found += [(self.NEXT if i else self.FIRST) + self.quote(key) + self.NAME_VALUE,
                      None]
        if found:
            found.append(self.LAST)
        self._templates[keys] = found
        return found

    def fixed(self, event: StoredEvent) -> str:
        """The type, channel and received_at outputs, formatted once per type and commit."""
        text = self.pairs([("type", event.type), ("channel", event.channel),
                           ("received_at", format_time(event.received_at))])
        self._fixed[event.type] = (event.channel, text)
        return text

    def values(self, flat: flatten.Flat, payload: bytes, special: bool) -> Iterable[str]:
        return flat.values()

    def events(self, events: list[StoredEvent]) -> bytes:
        payloads = [e.payload for e in events]
        found = flatten.simple_each(payloads)
        joined = b"".join(payloads)
        special = b"&" in joined or b"<" in joined or b">" in joined
        parts: list[str | None] = []
        add = parts.append
        head, tail = self.head, self.tail
        templates, template, values = self._templates, self.template, self.values
        fixed_cache, received_at = self._fixed, self._received_at
        for e, flat in zip(events, found, strict=True):
            # Inline caches: this loop runs once per event of a 100,000-event poll.
            if e.received_at != received_at:  # received_at never decreases along the index
                fixed_cache.clear()
                received_at = e.received_at
            hit = fixed_cache.get(e.type)
            fixed = hit[1] if hit is not None and hit[0] == e.channel else self.fixed(e)
            if e.occurred_at is not None:
                fixed += self.pairs([("occurred_at", format_time(e.occurred_at))])
            add(head(e) + fixed)
            if flat is None:
                add(self.pairs(flatten.flatten_json(e.payload)))
            elif flat:
                keys = tuple(flat)
                n = len(parts)
                parts += templates.get(keys) or template(keys)
                parts[n + 1::2] = values(flat, e.payload, special)
            add(tail)
        self._received_at = received_at
        text = "".join(parts)  # type: ignore[arg-type]  # every None slot was filled
        if not self._started and text:
            self._started = True
            text = self.first(text)
        return text.encode()

    def first(self, text: str) -> str:
        return text


class JsonRenderer(Renderer):
    FIRST = ',{"name":'
    NEXT = '},{"name":'
    NAME_VALUE = ',"value":'
    LAST = "}"
    tail = "]}"

    def open(self) -> bytes:
        return b"["

    def close(self) -> bytes:
        return b"]"

    def first(self, text: str) -> str:
        return text[1:]  # every event starts with its separating comma

    def quote(self, text: str) -> str:
        return json_text(text)

    def template(self, keys: tuple[str, ...]) -> Template:
        # Simple values need no escaping (see flatten.simple): the quotes go in the pieces.
        found = super().template(keys)
        for i in range(0, len(found) - 1, 2):
            found[i] = f'{found[i]}"'
        for i in range(2, len(found), 2):
            found[i] = f'"{found[i]}'
        return found

    def head(self, e: StoredEvent) -> str:
        qid = f'"rqs-{e.domain}-{e.index}"' if e.ext_id is None else json_text(e.ext_id)
        return f',{{"queueId":{qid},"output":[{{"name":"index","value":"{e.index}"}}'


class XmlRenderer(Renderer):
    FIRST = "<output><name>"
    NEXT = "</value></output><output><name>"
    NAME_VALUE = "</name><value>"
    LAST = "</value></output>"
    tail = "</asyncResult>"

    def open(self) -> bytes:
        return (XML_DECLARATION + "<asyncResults>").encode()

    def close(self) -> bytes:
        return b"</asyncResults>"

    def quote(self, text: str) -> str:
        return xml_text(text)

    def head(self, e: StoredEvent) -> str:
        qid = f"rqs-{e.domain}-{e.index}" if e.ext_id is None else xml_text(e.ext_id)
        return (f"<asyncResult><queueId>{qid}</queueId>"
                f"<output><name>index</name><value>{e.index}</value></output>")

    def values(self, flat: flatten.Flat, payload: bytes, special: bool) -> Iterable[str]:
        # Simple values hold nothing XML forbids; only & < > may need escaping.
        if special and (b"&" in payload or b"<" in payload or b">" in payload):
            return _escape_all(flat.values())
        return flat.values()


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
