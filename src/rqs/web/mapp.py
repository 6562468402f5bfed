"""Mapp Engage Response Queue compatibility: ``GET /api/rest/v{N}/async/<method>``.

Existing Mapp clients work by changing only the host: the same paths, query parameters,
HTTP Basic auth (key id as user, secret as password; Bearer works too), and JSON or XML
as the ``Accept`` header asks. A missing ``Accept``, ``*/*`` or ``application/*`` gets
JSON; ``text/xml`` counts as XML; anything else is a 406.

Methods, with the API version each appeared in (a method is 404 below its version):

* ``getPollCount``, ``getSubmitCount``, ``poll`` (v1); ``getNextIndex``, ``pollByIndex``
  (v9); ``pollByRange``, ``pollByType`` (v13).
* ``pollByType?type=&limit=`` and ``poll?topic=&limit=`` read through a server-managed
  cursor per (key, domain, type or topic). The cursor moves only after the last byte of the
  response went to the connection; a client that disconnects earlier gets the same events
  again. Concurrent calls on one cursor run one after the other.
* ``pollByIndex?topic=&index=&limit=`` reads from ``index`` (inclusive), without a cursor;
  an index retention removed is a 410 naming the oldest available index. Indexes count
  every event of the domain, so a client continues from the last ``index`` output + 1
  (advancing by the number of results, as Mapp's docs suggest, re-reads but never skips).
* ``pollByRange?type=&from=&to=&limit=`` reads events received (stored) from ``from``
  inclusive to ``to`` exclusive, Unix seconds, without a cursor. The 24-hour window Mapp
  documents is not enforced.
* ``getNextIndex``/``getPollCount`` report the ``poll`` cursor of a topic, and
  ``getSubmitCount`` the events ever ingested for it (for the whole domain without
  ``topic``, since Mapp documents no parameter). They answer a bare integer: ``123`` in
  JSON, ``<long>123</long>`` in XML.
* ``limit`` defaults to ``default_poll_limit`` and may not exceed ``max_poll_limit``.

Each result's ``queueId`` is the event id: the sender's, or ``rqs-<domain>-<index>``; its
outputs are described in ``rqs.web.mapp_render`` and ``rqs.domain.flatten``.

A topic is one created with ``POST /v1/topics`` or any poll group or type name. Errors use
Mapp's shape: ``{"errorActor", "errorCode", "message"}`` plus ``parameterName`` or
``objectType``; in XML the same fields under ``<error>``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from rqs import errors
from rqs.domain import catalog, selectors
from rqs.domain.events import StoredEvent
from rqs.domain.selectors import Selector
from rqs.service.keys import Principal
from rqs.service.queue import ResponseQueue
from rqs.storage.base import EventQuery
from rqs.web.auth import principal
from rqs.web.errors import headers_of, status_of
from rqs.web.mapp_render import (
    Format,
    MissingParameter,
    NoSuchTopic,
    Renderer,
    count_body,
    error_body,
    error_fields,
    negotiate,
    renderer,
)
from rqs.web.params import int_param, str_param
from rqs.web.render import Encoded

MAX_VERSION = 19
SINCE: dict[str, int] = {
    "getPollCount": 1, "getSubmitCount": 1, "poll": 1,
    "getNextIndex": 9, "pollByIndex": 9,
    "pollByRange": 13, "pollByType": 13,
}


# --- errors ----------------------------------------------------------------------------


def error_response(exc: errors.RqsError, fmt: Format) -> Response:
    return Response(error_body(error_fields(exc), fmt), status_code=status_of(exc),
                    headers=headers_of(exc), media_type=fmt.value)


def _plain_error(status: int, code: str, message: str, fmt: Format,
                 headers: dict[str, str] | None = None) -> Response:
    fields = {"errorActor": "CLIENT", "errorCode": code, "message": message}
    return Response(error_body(fields, fmt), status_code=status, headers=headers,
                    media_type=fmt.value)


# --- parameters ------------------------------------------------------------------------

def _str(params: QueryParams, name: str) -> str:
    value = str_param(params, name, required=True, missing=MissingParameter)
    assert value is not None  # required
    return value


def _int(params: QueryParams, name: str, required: bool) -> int | None:
    return int_param(params, name, required=required, missing=MissingParameter)


def _limit(q: ResponseQueue, params: QueryParams) -> int:
    return q.check_limit(_int(params, "limit", required=False))


def _poll_type(params: QueryParams) -> tuple[str, Selector]:
    name = _str(params, "type")
    selector = selectors.for_poll_type(name)
    if selector is None:
        groups = [g.value for g in catalog.PollGroup] + [catalog.ALL_MESSAGES]
        raise errors.InvalidRequest(f"type {name!r} does not exist; use one of {groups} or an "
                                    "event type name", parameter="type")
    return catalog.canonical_type(name), selector


async def _topic(q: ResponseQueue, who: Principal, params: QueryParams) -> tuple[str, Selector]:
    name = _str(params, "topic")
    try:
        return name, await q.resolve_topic(who, name)
    except errors.NotFound as exc:
        raise NoSuchTopic(exc.message) from None


# Cursor names: pollByType and poll keep separate cursors even for the same name.
def _type_cursor(name: str) -> str:
    return f"type:{name}"


def _topic_cursor(name: str) -> str:
    return f"topic:{name}"


# --- streaming -------------------------------------------------------------------------


@dataclass(slots=True)
class _Connection:
    """What the response knows about its client, shared with the body generator."""

    disconnected: bool = False
    skipped: int = 0


class _EventStream(StreamingResponse):
    """A streamed body whose generator is always closed when the response ends.

    Closing it at once (not when garbage collection gets to it) matters: a cursor poll holds
    its cursor until its generator ends, and the next poll on that cursor waits for it.
    """

    def __init__(self, first: bytes, rest: AsyncGenerator[bytes, None], conn: _Connection,
                 fmt: Format, headers: dict[str, str]) -> None:
        self._rest = rest
        self._conn = conn
        super().__init__(self._chain(first, rest), media_type=fmt.value, headers=headers)

    @staticmethod
    async def _chain(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes]:
        yield first
        async for part in rest:
            yield part

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watched() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._conn.disconnected = True
            return message

        try:
            await super().__call__(scope, watched, send)
        finally:
            await self._rest.aclose()


async def _stream(first_step: AsyncGenerator[bytes, None], conn: _Connection, fmt: Format,
                  headers: dict[str, str]) -> Response:
    # Run the body up to its first chunk before answering: the cursor lease, the bounds and
    # the first storage read happen there, and their errors must be real status codes, not
    # a 200 that breaks off.
    try:
        first = await first_step.__anext__()
    except StopAsyncIteration:  # pragma: no cover - every body yields at least its frame
        first = b""
    if conn.skipped:
        headers["X-Rqs-Skipped"] = str(conn.skipped)
    return _EventStream(first, first_step, conn, fmt, headers)


def _pages(q: ResponseQueue, who: Principal, query: EventQuery, out: Renderer
           ) -> AsyncIterator[Encoded]:
    """The query's events, encoded where storage reads them (a reader thread for SQLite),
    the next page while this one is sent: encoding is most of a big poll's work."""
    def encode(events: list[StoredEvent]) -> Encoded:
        return Encoded(out.events(events), len(events), events[-1].index)

    return q.storage.scan_map(who.domain, query, encode, heavy=True)


@asynccontextmanager
async def _closing(pages: AsyncIterator[Encoded]) -> AsyncIterator[AsyncIterator[Encoded]]:
    """Close the scan as soon as the response stops, so a read ahead for a client that went
    away is cancelled now rather than whenever garbage collection finds it."""
    try:
        yield pages
    finally:
        close = getattr(pages, "aclose", None)
        if close is not None:
            await close()


async def _cursor_body(q: ResponseQueue, who: Principal, cursor: str, selector: Selector,
                       limit: int, out: Renderer, conn: _Connection
                       ) -> AsyncGenerator[bytes, None]:
    async with q.cursor_poll(who, cursor, selector, limit) as cp:
        conn.skipped = cp.skipped
        delivered = 0
        last_index: int | None = None
        frame = out.OPEN
        async with _closing(_pages(q, who, cp.query, out)) as pages:
            async for page in pages:
                delivered += page.count
                last_index = page.last_index
                yield frame + page.body
                frame = b""
        yield frame + out.CLOSE
        # Starlette resumes us only once it handed the last chunk to the server. A client
        # that vanished meanwhile made the server drop it silently; one loop turn lets the
        # disconnect be noticed (or cancel us) before the cursor moves.
        await asyncio.sleep(0)
        if not conn.disconnected:
            await cp.finish(delivered, last_index)


async def _query_body(q: ResponseQueue, who: Principal, query: EventQuery, out: Renderer
                      ) -> AsyncGenerator[bytes, None]:
    frame = out.OPEN
    async with _closing(_pages(q, who, query, out)) as pages:
        async for page in pages:
            yield frame + page.body
            frame = b""
    yield frame + out.CLOSE


# --- methods ---------------------------------------------------------------------------

Handler = Callable[[Request, ResponseQueue, Principal, Format], Awaitable[Response]]


async def poll_by_type(request: Request, q: ResponseQueue, who: Principal, fmt: Format
                       ) -> Response:
    p = request.query_params
    name, selector = _poll_type(p)
    return await _cursor_poll(q, who, p, _type_cursor(name), selector, fmt)


async def poll(request: Request, q: ResponseQueue, who: Principal, fmt: Format) -> Response:
    p = request.query_params
    name, selector = await _topic(q, who, p)
    return await _cursor_poll(q, who, p, _topic_cursor(name), selector, fmt)


async def _cursor_poll(q: ResponseQueue, who: Principal, p: QueryParams, cursor: str,
                       selector: Selector, fmt: Format) -> Response:
    limit = _limit(q, p)
    conn = _Connection()
    body = _cursor_body(q, who, cursor, selector, limit, renderer(fmt), conn)
    return await _stream(body, conn, fmt, {})


async def poll_by_index(request: Request, q: ResponseQueue, who: Principal, fmt: Format
                        ) -> Response:
    p = request.query_params
    _, selector = await _topic(q, who, p)
    index = _int(p, "index", required=True)
    assert index is not None
    if index < 1:
        raise errors.InvalidRequest("index must be 1 or more", parameter="index")
    query, bounds = await q.query_after(who, index - 1, selector=selector, limit=_limit(q, p))
    headers = {"X-Oldest-Index": str(bounds.oldest or ""), "X-Newest-Index": str(bounds.newest)}
    return await _stream(_query_body(q, who, query, renderer(fmt)), _Connection(), fmt, headers)


async def poll_by_range(request: Request, q: ResponseQueue, who: Principal, fmt: Format
                        ) -> Response:
    p = request.query_params
    _, selector = _poll_type(p)
    start = _int(p, "from", required=True)
    end = _int(p, "to", required=True)
    assert start is not None and end is not None
    if end <= start:
        raise errors.InvalidRequest("'to' must be later than 'from'", parameter="to")
    limit = _limit(q, p)
    query, _ = await q.query_after(who, None, selector=selector, since=_micros(start),
                                   until=_micros(end), limit=limit)
    return await _stream(_query_body(q, who, query, renderer(fmt)), _Connection(), fmt, {})


def _micros(seconds: int) -> int:
    # Clamped so that absurd values stay within SQLite's 64-bit integers.
    return min(max(seconds, 0), 2**62 // 1_000_000) * 1_000_000


async def get_next_index(request: Request, q: ResponseQueue, who: Principal, fmt: Format
                         ) -> Response:
    name, _ = await _topic(q, who, request.query_params)
    return _count(await q.next_index(who, _topic_cursor(name)), fmt)


async def get_poll_count(request: Request, q: ResponseQueue, who: Principal, fmt: Format
                         ) -> Response:
    name, _ = await _topic(q, who, request.query_params)
    return _count(await q.poll_count(who, _topic_cursor(name)), fmt)


async def get_submit_count(request: Request, q: ResponseQueue, who: Principal, fmt: Format
                           ) -> Response:
    selector = selectors.EVERYTHING
    if request.query_params.get("topic", "").strip():
        _, selector = await _topic(q, who, request.query_params)
    return _count(await q.submit_count(who, selector), fmt)


def _count(value: int, fmt: Format) -> Response:
    return Response(count_body(value, fmt), media_type=fmt.value)


HANDLERS: dict[str, Handler] = {
    "getPollCount": get_poll_count, "getSubmitCount": get_submit_count, "poll": poll,
    "getNextIndex": get_next_index, "pollByIndex": poll_by_index,
    "pollByRange": poll_by_range, "pollByType": poll_by_type,
}


async def dispatch(request: Request) -> Response:
    version: int = request.path_params["version"]
    method: str = request.path_params["method"]
    fmt = negotiate(request.headers.get("accept"))
    handler = HANDLERS.get(method)
    if handler is None or not 1 <= version <= MAX_VERSION or version < SINCE[method]:
        where = f"in API version {version}" if handler is not None else "in rqs"
        return _plain_error(404, "NO_SUCH_OBJECT", f"there is no async/{method} {where}",
                            fmt or Format.JSON)
    if fmt is None:
        return _plain_error(406, "NOT_ACCEPTABLE", "Accept application/json or application/xml",
                            Format.JSON)
    if request.method != "GET":  # HEAD would run a cursor poll and throw the events away
        return _plain_error(405, "INVALID_REQUEST", "use GET", fmt, {"Allow": "GET"})
    q: ResponseQueue = request.app.state.queue
    try:
        who = await principal(request, q.storage)
        who.require("read")
        return await handler(request, q, who, fmt)
    except errors.RqsError as exc:
        return error_response(exc, fmt)


routes: list[BaseRoute] = [
    Route("/api/rest/v{version:int}/async/{method}", dispatch, methods=["GET"]),
]
