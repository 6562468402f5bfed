"""Mapp Engage wire formats: async results, bare counts and errors, in JSON and XML.

An async result is ``{"queueId": id, "output": [{"name", "value"}, ...]}`` in JSON and
``<asyncResult><queueId/><output><name/><value/></output>...</asyncResult>`` in XML. The
outputs are ``index``, ``type``, ``channel``, ``received_at`` (ISO 8601 UTC), then
``occurred_at`` when the sender gave one, then the payload flattened by
``rqs.domain.flatten``.

Speed matters here: a poll may return 100,000 events of a dozen fields each. Building a
Python object per field and encoding it costs several times the storage scan, so the
payload pairs are rendered by ``rqs._speedups`` (C, walking the stored bytes with the GIL
released) where it was built. Without it, payloads of the common shape
(``flatten.simple``, decoded a chunk at a time) are spliced into a template per list of
names. Payloads either of those declines take the general path; all three give identical
bytes (tests check this). The fixed outputs are formatted once per type and commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum

import msgspec

from rqs import errors
from rqs.domain import flatten
from rqs.domain.events import StoredEvent, format_time
from rqs.speedups import NATIVE, Native
from rqs.web.errors import status_of


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
    """Encodes one response's events chunk by chunk; holds per-response caches.

    A subclass gives the literal pieces of its format; the loop in ``events`` is shared.
    """

    # Around each name/value pair: before the first name, between a value and the next
    # name, between a name and its value, after the last value; then the event's end.
    FIRST = NEXT = NAME_VALUE = LAST = TAIL = ""
    # An event's opening with its queue id and index output: {0} domain, {1} index, {2} id.
    HEAD = HEAD_ID = ""
    OPEN = CLOSE = b""
    xml = False

    def __init__(self, native: Native | None = NATIVE) -> None:
        self._native = native
        self._fixed: dict[str, tuple[str, str]] = {}  # type -> (channel, rendered outputs)
        self._received_at = -1
        self._started = False
        self._templates: dict[tuple[str, ...], Template] = {}
        self._heads: dict[str, tuple[bytes, bytes, bytes]] = {}

    def quote(self, text: str) -> str:
        """A name or value as it appears between the literal pieces."""
        raise NotImplementedError

    def pairs(self, pairs: list[tuple[str, str]]) -> str:
        """Outputs of the general path; equal to the fast path's for a simple payload."""
        if not pairs:
            return ""
        quote = self.quote
        return self.FIRST + self.NEXT.join(
            [quote(n) + self.NAME_VALUE + quote(v) for n, v in pairs]) + self.LAST

    def template(self, keys: tuple[str, ...]) -> Template:
        """Literal pieces for a flat payload with these names, a None slot for each value,
        ending with the event's end.

        Filling the slots with one slice assignment is several times cheaper than "%" or
        per-value formatting. Bounded, so ever-new key sets cannot grow memory."""
        if len(self._templates) >= _TEMPLATE_CACHE_SIZE:
            self._templates.clear()
        found: Template = []
        for i, key in enumerate(keys):
            found += [(self.NEXT if i else self.FIRST) + self.quote(key) + self.NAME_VALUE,
                      None]
        found.append(self.LAST + self.TAIL)
        self._templates[keys] = found
        return found

    def fixed(self, event: StoredEvent) -> str:
        """The type, channel and received_at outputs, formatted once per type and commit."""
        text = self.pairs([("type", event.type), ("channel", event.channel),
                           ("received_at", format_time(event.received_at))])
        self._fixed[event.type] = (event.channel, text)
        return text

    def events(self, events: list[StoredEvent]) -> bytes:
        """The async results of these events, a chunk of one response."""
        if self._native is None or not events:
            body = self._events_python(events)
        else:
            domain = events[0].domain  # a response reads one domain
            a, b, c = self._heads.get(domain) or self._head_pieces(domain)
            body = self._native.render_events(
                events, self.xml, a, b, c, self.TAIL.encode(), self._head_bytes,
                self._fixed_bytes, self._pairs_bytes)
        if not self._started and body:
            self._started = True
            body = self.first(body)
        return body

    # The native renderer's pieces and callbacks: everything but the common case's payload
    # pairs is formatted here, by the same code as the Python path.

    def _head_pieces(self, domain: str) -> tuple[bytes, bytes, bytes]:
        a, b, c = self.HEAD.format(domain, "\x00").encode().split(b"\x00")
        self._heads[domain] = (a, b, c)
        return a, b, c

    def head(self, e: StoredEvent, fixed: str) -> str:
        """Everything before an event's payload pairs: its opening with the queue id and
        index output, the fixed outputs, and occurred_at when the sender gave one."""
        if e.occurred_at is not None:
            fixed += self.pairs([("occurred_at", format_time(e.occurred_at))])
        if e.ext_id is None:
            return self.HEAD.format(e.domain, e.index) + fixed
        return self.HEAD_ID.format(e.domain, e.index, self.quote(e.ext_id)) + fixed

    def _head_bytes(self, e: StoredEvent) -> bytes:
        """``head`` for an event with a sender id or time (C writes the others itself)."""
        return self.head(e, self.fixed(e)).encode()

    def _fixed_bytes(self, e: StoredEvent) -> bytes:
        return self.fixed(e).encode()

    def _pairs_bytes(self, payload: bytes) -> bytes:
        return self.pairs(flatten.flatten_json(payload)).encode()

    def _events_python(self, events: list[StoredEvent]) -> bytes:
        payloads = [e.payload for e in events]
        found = flatten.simple_each(payloads)
        # XML needs & < > escaped; most chunks hold none, and then no event needs a look.
        joined = b"".join(payloads) if self.xml else b""
        special = b"&" in joined or b"<" in joined or b">" in joined
        parts: list[str | None] = []
        add = parts.append
        head, tail = self.HEAD.format, self.TAIL
        templates, template = self._templates, self.template
        fixed_cache, received_at = self._fixed, self._received_at
        # This loop runs once per event of a 100,000-event poll: caches are inlined and the
        # common case is a few C calls.
        for e, flat in zip(events, found, strict=True):
            if e.received_at != received_at:  # received_at never decreases along the index
                fixed_cache.clear()
                received_at = e.received_at
            hit = fixed_cache.get(e.type)
            fixed = hit[1] if hit is not None and hit[0] == e.channel else self.fixed(e)
            if e.ext_id is None and e.occurred_at is None:  # the common case, inlined
                add(head(e.domain, e.index) + fixed)
            else:
                add(self.head(e, fixed))
            if flat:
                keys = tuple(flat)
                n = len(parts)
                parts += templates.get(keys) or template(keys)
                p = e.payload
                if special and (b"&" in p or b"<" in p or b">" in p):
                    parts[n + 1::2] = _escape_all(flat.values())
                else:
                    parts[n + 1::2] = flat.values()
            else:
                if flat is None:
                    add(self.pairs(flatten.flatten_json(e.payload)))
                add(tail)
        self._received_at = received_at
        return "".join(parts).encode()  # type: ignore[arg-type]  # every None slot was filled

    def first(self, body: bytes) -> bytes:
        """The response's first rendered chunk, adjusted (JSON drops the separating comma)."""
        return body


class JsonRenderer(Renderer):
    FIRST = ',{"name":'
    NEXT = '},{"name":'
    NAME_VALUE = ',"value":'
    LAST = "}"
    TAIL = "]}"
    HEAD = ',{{"queueId":"rqs-{0}-{1}","output":[{{"name":"index","value":"{1}"}}'
    HEAD_ID = ',{{"queueId":{2},"output":[{{"name":"index","value":"{1}"}}'
    OPEN, CLOSE = b"[", b"]"

    def first(self, body: bytes) -> bytes:
        return body[1:]  # every event starts with its separating comma

    def quote(self, text: str) -> str:
        return json_text(text)

    def template(self, keys: tuple[str, ...]) -> Template:
        # Simple values need no escaping (see flatten.simple): the quotes go in the pieces.
        found = super().template(keys)
        for i in range(0, len(found) - 1, 2):
            found[i] = f'{found[i]}"'
            found[i + 2] = f'"{found[i + 2]}'
        return found


class XmlRenderer(Renderer):
    FIRST = "<output><name>"
    NEXT = "</value></output><output><name>"
    NAME_VALUE = "</name><value>"
    LAST = "</value></output>"
    TAIL = "</asyncResult>"
    HEAD = ("<asyncResult><queueId>rqs-{0}-{1}</queueId>"
            "<output><name>index</name><value>{1}</value></output>")
    HEAD_ID = ("<asyncResult><queueId>{2}</queueId>"
               "<output><name>index</name><value>{1}</value></output>")
    OPEN, CLOSE = (XML_DECLARATION + "<asyncResults>").encode(), b"</asyncResults>"
    xml = True

    def quote(self, text: str) -> str:
        return xml_text(text)


def renderer(fmt: Format, native: Native | None = NATIVE) -> Renderer:
    """A renderer for one response; ``native=None`` forces the Python paths (tests)."""
    return XmlRenderer(native) if fmt is Format.XML else JsonRenderer(native)


# --- content negotiation ---------------------------------------------------------------

_OFFERS = {"application/json": Format.JSON, "application/xml": Format.XML,
           "text/xml": Format.XML}


def negotiate(accept: str | None) -> Format | None:
    """The format the Accept header prefers: the best q wins, JSON on ties; None: nothing fits."""
    if not accept or not accept.strip():
        return Format.JSON
    best: dict[Format, tuple[float, int]] = {}  # format -> (q, specificity) of its best range
    for item in accept.split(","):
        media, *params = (p.strip() for p in item.split(";"))
        media = media.lower()
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        for offer, fmt in _OFFERS.items():
            kind = offer.split("/")[0]
            specificity = 2 if media == offer else 1 if media == f"{kind}/*" else (
                0 if media == "*/*" else -1)
            if specificity < 0:
                continue
            if fmt not in best or specificity > best[fmt][1]:
                best[fmt] = (q, specificity)
    ranked = sorted(((q, fmt is Format.JSON, fmt) for fmt, (q, _) in best.items()), reverse=True)
    if not ranked or ranked[0][0] <= 0:
        return None
    return ranked[0][2]


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


# --- errors ----------------------------------------------------------------------------


class MissingParameter(errors.InvalidRequest):
    """A required parameter is absent."""


class NoSuchTopic(errors.NotFound):
    """The topic is neither a stored topic nor a poll group or type name."""


def error_fields(exc: errors.RqsError) -> dict[str, str]:
    """Mapp's error fields for an rqs error. Mapp documents MISSING_PARAMETER,
    INVALID_PARAMETER, INVALID_REQUEST, NO_SUCH_OBJECT and PERMISSION_DENIED; the other
    codes are ours, in the same style."""
    status = status_of(exc)
    if isinstance(exc, MissingParameter):
        code = "MISSING_PARAMETER"
    elif isinstance(exc, errors.InvalidRequest):
        code = "INVALID_PARAMETER" if exc.parameter else "INVALID_REQUEST"
    elif isinstance(exc, errors.Gone):
        code = "INDEX_EXPIRED"
    else:
        code = {401: "AUTHENTICATION_REQUIRED", 403: "PERMISSION_DENIED", 404: "NO_SUCH_OBJECT",
                413: "INVALID_REQUEST", 503: "SERVICE_UNAVAILABLE"}.get(status, "INTERNAL_ERROR")
    fields = {"errorActor": "SERVER" if status >= 500 else "CLIENT", "errorCode": code,
              "message": exc.message}
    if isinstance(exc, errors.InvalidRequest) and exc.parameter:
        fields["parameterName"] = exc.parameter
    elif isinstance(exc, errors.Gone):
        fields["parameterName"] = "index"
    elif isinstance(exc, NoSuchTopic):
        fields["objectType"] = "Topic"
    return fields
