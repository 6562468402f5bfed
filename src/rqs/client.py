"""A typed Python client for the native rqs API (``/v1``), sync and async.

    with Client("http://127.0.0.1:8080", token="rk_....secret") as rqs:
        rqs.ingest([{"type": "SMS_INBOUND", "data": {"message": "STOP"}}])
        for event in rqs.iter_events(type="SMS_INBOUND"):
            ...

Every failure is a ``ClientError`` (``status`` is ``None`` when the server was not
reached); a read that retention has overtaken is its subclass ``RetentionGap``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx
import msgspec

__all__ = ["AsyncClient", "Client", "ClientError", "Event", "IngestResult", "Page",
           "RetentionGap", "Stats"]

T = TypeVar("T")
NDJSON = "application/x-ndjson"
DEFAULT_TIMEOUT = 30.0
# Reads of up to 100k events can take a while to stream; connecting should not.
CONNECT_TIMEOUT = 5.0

TimeArg = str | int | float | datetime | None
Filter = str | Sequence[str] | None

# Module-level so tests and embedders can replace how ``follow`` waits.
_sleep: Callable[[float], None] = time.sleep


class ClientError(Exception):
    """A request failed: ``status`` is the HTTP status (``None`` if the server was not
    reached) and ``body`` the server's JSON error body, when it sent one."""

    def __init__(self, message: str, status: int | None = None,
                 body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body or {}

    @property
    def code(self) -> str | None:
        """The server's error code, e.g. ``validation_failed``."""
        code = self.body.get("error")
        return code if isinstance(code, str) else None


class RetentionGap(ClientError):
    """Retention removed events the read asked for; restart at ``oldest_index``."""

    @property
    def oldest_index(self) -> int | None:
        oldest = self.body.get("oldest_index")
        return oldest if isinstance(oldest, int) else None


class IngestResult(msgspec.Struct, frozen=True):
    accepted: int
    stored: int
    duplicates: int
    first_index: int | None
    last_index: int | None
    indexes: list[int]


class Event(msgspec.Struct, frozen=True):
    index: int
    id: str
    type: str
    channel: str
    received_at: str
    occurred_at: str | None
    payload: dict[str, Any]


class Page(msgspec.Struct):
    events: list[Event]
    next_index: int
    has_more: bool
    oldest_index: int | None
    # From the X-Newest-Index header: the newest index when the read began.
    newest_index: int | None = None

    @property
    def next_after(self) -> int:
        """The ``after`` of the following read."""
        return self.next_index - 1


class TypeCount(msgspec.Struct, frozen=True):
    type: str
    channel: str
    retained: int
    ingested: int
    catalogued: bool = True


class ConsumerCursor(msgspec.Struct):
    key_id: str
    cursor: str  # type:<poll type> (pollByType) or topic:<name> (poll)
    position: int
    lag: int  # newest_index - position
    polled: int
    skipped: int  # events retention removed before the cursor reached them
    last_poll: str


class PendingBatch(msgspec.Struct):
    delivery_id: int
    first_index: int
    last_index: int
    attempts: int
    created_at: str
    next_attempt_at: str | None = None
    last_status: int | None = None
    last_error: str | None = None


class ConsumerSubscription(msgspec.Struct):
    name: str
    callback: str
    status: str  # ACTIVE | PAUSED
    callback_status: str  # ACTIVE | DISABLED
    position: int
    lag: int
    callback_failing_since: str | None = None
    pending: PendingBatch | None = None


class Consumers(msgspec.Struct):
    """``GET /v1/consumers``: the domain's server-managed cursors and subscriptions."""

    domain: str
    newest_index: int
    cursors: list[ConsumerCursor]
    subscriptions: list[ConsumerSubscription]


class Stats(msgspec.Struct):
    domain: str
    oldest_index: int | None
    newest_index: int
    purged_through: int
    retained: int
    ingested: int
    by_type: list[TypeCount]
    by_channel: dict[str, dict[str, int]]
    retention_days: float
    retention_horizon: str
    # The whole body as sent, so fields newer than this client are not lost.
    raw: dict[str, Any] = {}


# --- shared request building and response checking ---------------------------------------


def _auth(token: str | None, key_id: str | None, secret: str | None) -> tuple[
        dict[str, str], httpx.BasicAuth | None]:
    if token and (key_id or secret):
        raise ValueError("pass either token or key_id and secret, not both")
    if token:
        return {"authorization": f"Bearer {token}"}, None
    if key_id or secret:
        if not (key_id and secret):
            raise ValueError("key_id and secret go together")
        return {}, httpx.BasicAuth(key_id, secret)
    return {}, None


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT))


def _time(value: TimeArg) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _filter(value: Filter) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _query(after: int | None, type: Filter, channel: Filter, campaign: str | None,
           since: TimeArg, until: TimeArg, limit: int | None) -> dict[str, Any]:
    params: dict[str, Any] = {"after": after, "type": _filter(type), "channel": _filter(channel),
                              "campaign": campaign, "since": _time(since), "until": _time(until),
                              "limit": limit}
    return {k: v for k, v in params.items() if v is not None}


def _ingest_body(events: Sequence[Mapping[str, Any]] | bytes, ndjson: bool) -> tuple[
        bytes, str]:
    if isinstance(events, bytes):
        return events, NDJSON if ndjson else "application/json"
    if ndjson:
        return msgspec.json.Encoder().encode_lines(list(events)), NDJSON
    return msgspec.json.encode(list(events)), "application/json"


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    body: dict[str, Any] | None = None
    try:
        decoded = msgspec.json.decode(response.content)
        body = decoded if isinstance(decoded, dict) else None
    except msgspec.DecodeError:
        pass
    text = (body.get("message") if body else None) or response.text[:200]
    message = f"HTTP {response.status_code}: {text or response.reason_phrase}"
    cls = RetentionGap if response.status_code == 410 else ClientError
    raise cls(message, response.status_code, body)


def _transport_error(url: str, exc: httpx.TransportError) -> ClientError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return ClientError(f"request to {url} {kind}: {exc or type(exc).__name__}")


def _decode(response: httpx.Response, cls: type[T]) -> T:
    try:
        return msgspec.json.decode(response.content, type=cls)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ClientError(f"unexpected response from {response.url}: {exc}",
                          response.status_code) from None


def _page(response: httpx.Response) -> Page:
    page = _decode(response, Page)
    newest = response.headers.get("x-newest-index", "")
    page.newest_index = int(newest) if newest.isdigit() else None
    return page


def _stats(response: httpx.Response) -> Stats:
    stats = _decode(response, Stats)
    stats.raw = msgspec.json.decode(response.content)
    return stats


# --- clients ----------------------------------------------------------------------------


class Client:
    """Blocking client; one connection pool per instance. Use it as a context manager."""

    def __init__(self, url: str = "http://127.0.0.1:8080", token: str | None = None,
                 key_id: str | None = None, secret: str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        headers, auth = _auth(token, key_id, secret)
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, auth=auth,
                                  timeout=_timeout(timeout))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return _check(self._http.request(method, path, **kw))
        except httpx.TransportError as exc:
            raise _transport_error(self.url + path, exc) from exc

    def ingest(self, events: Sequence[Mapping[str, Any]] | bytes,
               ndjson: bool = False) -> IngestResult:
        """Send one batch: objects, or a ready body (a JSON array/object, or NDJSON)."""
        content, media = _ingest_body(events, ndjson)
        r = self._request("POST", "/v1/events", content=content,
                          headers={"content-type": media})
        return _decode(r, IngestResult)

    def events(self, after: int | None = None, type: Filter = None, channel: Filter = None,
               campaign: str | None = None, since: TimeArg = None, until: TimeArg = None,
               limit: int | None = None) -> Page:
        """One page of events with an index above ``after`` (default: the oldest retained)."""
        params = _query(after, type, channel, campaign, since, until, limit)
        return _page(self._request("GET", "/v1/events", params=params))

    def pages(self, after: int | None = None, type: Filter = None, channel: Filter = None,
              campaign: str | None = None, since: TimeArg = None, until: TimeArg = None,
              limit: int | None = None, *, follow: bool = False,
              poll_interval: float = 1.0) -> Iterator[Page]:
        """Page after page, each read starting where the last one ended. Stops at the
        newest event, or with ``follow`` polls on every ``poll_interval`` seconds while
        idle (yielding the empty pages too, so callers can notice the idle time)."""
        while True:
            page = self.events(after, type, channel, campaign, since, until, limit)
            yield page
            if not (page.has_more or follow):
                return
            after = page.next_after
            if not page.has_more:
                _sleep(poll_interval)

    def iter_events(self, after: int | None = None, type: Filter = None, channel: Filter = None,
                    campaign: str | None = None, since: TimeArg = None, until: TimeArg = None,
                    limit: int | None = None) -> Iterator[Event]:
        """Every matching event up to the newest, page by page (``limit`` is the page size)."""
        for page in self.pages(after, type, channel, campaign, since, until, limit):
            yield from page.events

    def newest_index(self) -> int:
        """The newest index in the key's domain (0 when nothing was ever stored)."""
        return self.events(limit=1).newest_index or 0

    def follow(self, after: int | None = None, poll_interval: float = 1.0,
               type: Filter = None, channel: Filter = None, campaign: str | None = None,
               since: TimeArg = None, limit: int | None = None) -> Iterator[Event]:
        """Tail events forever: those after ``after`` (default: those newer than this call),
        then each new one as it arrives, checking every ``poll_interval`` seconds when idle."""
        start = self.newest_index() if after is None else after  # "now" is this call
        pages = self.pages(start, type, channel, campaign, since, None, limit, follow=True,
                           poll_interval=poll_interval)
        return (event for page in pages for event in page.events)

    def event(self, index: int) -> Event:
        return _decode(self._request("GET", f"/v1/events/{index}"), Event)

    def stats(self) -> Stats:
        return _stats(self._request("GET", "/v1/stats"))

    def consumers(self) -> Consumers:
        """Server-managed cursors and push subscriptions, with how far behind each is."""
        return _decode(self._request("GET", "/v1/consumers"), Consumers)

    def purge(self) -> int:
        """Run retention now (admin key); returns how many events were removed."""
        return _decode(self._request("POST", "/v1/purge"), dict[str, int])["removed"]


class AsyncClient:
    """The asyncio twin of ``Client``, method for method."""

    def __init__(self, url: str = "http://127.0.0.1:8080", token: str | None = None,
                 key_id: str | None = None, secret: str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        headers, auth = _auth(token, key_id, secret)
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, auth=auth,
                                       timeout=_timeout(timeout))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return _check(await self._http.request(method, path, **kw))
        except httpx.TransportError as exc:
            raise _transport_error(self.url + path, exc) from exc

    async def ingest(self, events: Sequence[Mapping[str, Any]] | bytes,
                     ndjson: bool = False) -> IngestResult:
        content, media = _ingest_body(events, ndjson)
        r = await self._request("POST", "/v1/events", content=content,
                                headers={"content-type": media})
        return _decode(r, IngestResult)

    async def events(self, after: int | None = None, type: Filter = None,
                     channel: Filter = None, campaign: str | None = None,
                     since: TimeArg = None, until: TimeArg = None,
                     limit: int | None = None) -> Page:
        params = _query(after, type, channel, campaign, since, until, limit)
        return _page(await self._request("GET", "/v1/events", params=params))

    async def pages(self, after: int | None = None, type: Filter = None,
                    channel: Filter = None, campaign: str | None = None,
                    since: TimeArg = None, until: TimeArg = None, limit: int | None = None,
                    *, follow: bool = False,
                    poll_interval: float = 1.0) -> AsyncGenerator[Page, None]:
        while True:
            page = await self.events(after, type, channel, campaign, since, until, limit)
            yield page
            if not (page.has_more or follow):
                return
            after = page.next_after
            if not page.has_more:
                await asyncio.sleep(poll_interval)

    async def iter_events(self, after: int | None = None, type: Filter = None,
                          channel: Filter = None, campaign: str | None = None,
                          since: TimeArg = None, until: TimeArg = None,
                          limit: int | None = None) -> AsyncGenerator[Event, None]:
        async for page in self.pages(after, type, channel, campaign, since, until, limit):
            for event in page.events:
                yield event

    async def newest_index(self) -> int:
        return (await self.events(limit=1)).newest_index or 0

    async def follow(self, after: int | None = None, poll_interval: float = 1.0,
                     type: Filter = None, channel: Filter = None, campaign: str | None = None,
                     since: TimeArg = None,
                     limit: int | None = None) -> AsyncGenerator[Event, None]:
        """As ``Client.follow``, but "now" is when the iteration starts."""
        start = await self.newest_index() if after is None else after
        async for page in self.pages(start, type, channel, campaign, since, None, limit,
                                     follow=True, poll_interval=poll_interval):
            for event in page.events:
                yield event

    async def event(self, index: int) -> Event:
        return _decode(await self._request("GET", f"/v1/events/{index}"), Event)

    async def stats(self) -> Stats:
        return _stats(await self._request("GET", "/v1/stats"))

    async def consumers(self) -> Consumers:
        return _decode(await self._request("GET", "/v1/consumers"), Consumers)

    async def purge(self) -> int:
        r = await self._request("POST", "/v1/purge")
        return _decode(r, dict[str, int])["removed"]
