"""The native REST API under ``/v1``."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from rqs.domain import catalog, selectors
from rqs.domain.delivery import Delivery
from rqs.domain.events import format_time
from rqs.errors import InvalidRequest, NotFound, PayloadTooLarge, PermissionDenied, RqsError
from rqs.service import consumers, keys, metrics
from rqs.service.keys import Principal
from rqs.service.push_admin import PushAdmin
from rqs.service.queue import ResponseQueue
from rqs.storage.base import Topic
from rqs.web import render
from rqs.web.auth import principal
from rqs.web.errors import native_response
from rqs.web.params import int_param, list_param, str_param, time_param

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]
NDJSON = "application/x-ndjson"


def json_response(body: object, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def endpoint_for(render: Callable[[RqsError], Response]) -> Callable[[Handler], Handler]:
    """A decorator turning the RqsErrors a handler raises into ``render``'s responses."""

    def endpoint(fn: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)
            except RqsError as exc:
                return render(exc)

        wrapped.__name__ = fn.__name__
        wrapped.__doc__ = fn.__doc__
        return wrapped

    return endpoint


endpoint = endpoint_for(native_response)


def queue_of(request: Request) -> ResponseQueue:
    q: ResponseQueue = request.app.state.queue
    return q


def push_of(request: Request) -> PushAdmin:
    push: PushAdmin = request.app.state.push
    return push


async def who(request: Request) -> Principal:
    return await principal(request, queue_of(request).storage)


async def read_body(request: Request, cap: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {cap}")
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > cap:
            raise PayloadTooLarge(f"the body exceeds the limit of {cap} bytes")
        parts.append(part)
    return b"".join(parts)


@endpoint
async def post_events(request: Request) -> Response:
    q = queue_of(request)
    caller = await who(request)
    caller.require("ingest")  # before reading what may be a large body
    body = await read_body(request, q.settings.max_body_bytes)
    result = await q.ingest(caller, body, request.headers.get("content-type"))
    indexes = result.indexes  # never empty: an empty batch is refused
    return json_response({
        "accepted": len(indexes),
        "stored": result.stored,
        "duplicates": result.duplicates,
        "first_index": min(indexes),
        "last_index": max(indexes),
        "indexes": indexes,
    })


def wants_ndjson(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return NDJSON in accept or "application/ndjson" in accept


@endpoint
async def get_events(request: Request) -> Response:
    q = queue_of(request)
    caller = await who(request)
    p = request.query_params
    selector = selectors.for_filters(list_param(p, "type"), list_param(p, "channel"))
    query, bounds = await q.query_after(
        caller,
        int_param(p, "after"),
        selector=selector,
        campaign=str_param(p, "campaign"),
        since=time_param(p, "since"),
        until=time_param(p, "until"),
        limit=int_param(p, "limit"),
    )
    progress = render.Progress()
    times = render.TimeCache()
    ndjson = wants_ndjson(request)
    encode = render.Capped(render.ndjson_page(times) if ndjson else render.json_page(times),
                           query.limit)
    # One event more than is sent: whether it exists is the trailer's has_more.
    pages = q.storage.scan_map(caller.domain, dataclasses.replace(query, limit=query.limit + 1),
                               encode)

    async def trailer() -> dict[str, object]:
        last = progress.last_index
        has_more = encode.more
        if has_more or query.until is not None:
            next_index = (last or query.after) + 1
        else:  # everything up to the newest index was scanned
            next_index = max(last or 0, query.through or 0, query.after) + 1
        return {"next_index": next_index, "has_more": has_more,
                "oldest_index": bounds.oldest}

    headers = {"X-Oldest-Index": str(bounds.oldest or ""), "X-Newest-Index": str(bounds.newest)}
    if ndjson:
        return StreamingResponse(render.ndjson_stream(pages, progress, trailer),
                                 media_type=NDJSON, headers=headers)
    return StreamingResponse(render.json_stream(pages, progress, trailer),
                             media_type="application/json", headers=headers)


@endpoint
async def get_event(request: Request) -> Response:
    q = queue_of(request)
    caller = await who(request)
    try:
        index = int(request.path_params["index"])
    except ValueError:
        raise InvalidRequest("the index must be an integer", parameter="index") from None
    event = await q.get_event_checked(caller, index)
    return Response(render.event_json(event), media_type="application/json")


@endpoint
async def get_stats(request: Request) -> Response:
    q = queue_of(request)
    return json_response(await q.stats(await who(request)))


@endpoint
async def get_consumers(request: Request) -> Response:
    seen = await consumers.consumers(queue_of(request), push_of(request), await who(request))
    return json_response(consumers_json(seen))


def consumers_json(seen: consumers.Consumers) -> dict[str, object]:
    def when(micros: int | None) -> str | None:
        return None if micros is None else format_time(micros)

    def pending(d: Delivery | None) -> dict[str, object] | None:
        if d is None:
            return None
        return {"delivery_id": d.id, "first_index": d.first_index, "last_index": d.last_index,
                "attempts": d.attempts, "created_at": when(d.created_at),
                "next_attempt_at": when(d.next_attempt_at), "last_status": d.last_status,
                "last_error": d.last_error}

    return {
        "domain": seen.domain,
        "newest_index": seen.bounds.newest,
        "cursors": [{"key_id": c.key_id, "cursor": c.name, "position": c.state.position,
                     "lag": lag, "polled": c.state.polled, "skipped": c.state.skipped,
                     "last_poll": when(c.updated_at)} for c, lag in seen.cursors],
        "subscriptions": [{"name": s.name, "callback": s.callback,
                           "status": s.status.value,
                           "callback_status": s.callback_status.value,
                           "callback_failing_since": when(s.callback_failing_since),
                           "position": s.position, "lag": s.lag,
                           "pending": pending(s.pending)} for s in seen.subscriptions],
    }


@endpoint
async def get_metrics(request: Request) -> Response:
    families = await metrics.collect(queue_of(request), push_of(request), await who(request))
    return Response(metrics.exposition(families), media_type=metrics.CONTENT_TYPE)


async def get_event_types(request: Request) -> Response:
    return json_response({"event_types": catalog.as_json(),
                          "poll_groups": [g.value for g in catalog.PollGroup]
                          + [catalog.ALL_MESSAGES]})


@endpoint
async def list_topics(request: Request) -> Response:
    q = queue_of(request)
    caller = await who(request)
    caller.require("read")
    topics = await q.storage.list_topics(caller.domain)
    return json_response({"topics": [_topic_json(t) for t in topics]})


class TopicIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    types: list[str] = []
    channels: list[str] = []


@endpoint
async def create_topic(request: Request) -> Response:
    q = queue_of(request)
    caller = await who(request)
    caller.require("admin")
    body = decode_body(await read_body(request, 1 << 20), TopicIn)
    topic = await q.create_topic(caller, body.name, body.types, body.channels)
    return json_response(_topic_json(topic), status=201)


@endpoint
async def get_topic(request: Request) -> Response:
    q = queue_of(request)
    caller = await who(request)
    caller.require("read")
    topic = await q.storage.get_topic(caller.domain, request.path_params["name"])
    if topic is None:
        raise NotFound(f"no topic {request.path_params['name']!r}")
    return json_response(_topic_json(topic))


@endpoint
async def delete_topic(request: Request) -> Response:
    q = queue_of(request)
    caller = await who(request)
    caller.require("admin")
    if not await q.storage.delete_topic(caller.domain, request.path_params["name"]):
        raise NotFound(f"no topic {request.path_params['name']!r}")
    return Response(status_code=204)


def _topic_json(t: Topic) -> dict[str, object]:
    return {"name": t.name, "domain": t.domain, "types": list(t.types),
            "channels": list(t.channels)}


class KeyIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    scope: str
    domain: str | None = None


@endpoint
async def create_key(request: Request) -> Response:
    q = queue_of(request)
    caller = await who(request)
    caller.require("admin")
    body = decode_body(await read_body(request, 1 << 16), KeyIn)
    if body.domain not in (None, caller.domain):
        # An admin key administers its own domain; other domains' keys come from the CLI.
        raise PermissionDenied(f"this key belongs to domain {caller.domain!r}; it cannot "
                               f"create keys for {body.domain!r}")
    new = await keys.create_key(q.storage, body.name, body.scope, caller.domain)
    return json_response(new.as_json(), status=201)


@endpoint
async def list_keys(request: Request) -> Response:
    q = queue_of(request)
    caller = await who(request)
    caller.require("admin")
    return json_response({"keys": [
        {"id": k.id, "name": k.name, "scope": k.scope, "domain": k.domain,
         "revoked": k.revoked_at is not None}
        for k in await q.storage.list_keys() if k.domain == caller.domain
    ]})


@endpoint
async def revoke_key(request: Request) -> Response:
    q = queue_of(request)
    caller = await who(request)
    caller.require("admin")
    key_id = request.path_params["key_id"]
    key = await q.storage.get_key(key_id)
    if key is None or key.domain != caller.domain or not await q.storage.revoke_key(
            key_id, int(q.clock() * 1e6)):
        raise NotFound(f"no active key {key_id!r} in domain {caller.domain!r}")
    return Response(status_code=204)


def decode_body(body: bytes, cls: type[T]) -> T:
    try:
        return msgspec.json.decode(body, type=cls)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None


@endpoint
async def purge_now(request: Request) -> Response:
    """Run retention now instead of waiting for the background pass."""
    q = queue_of(request)
    caller = await who(request)
    caller.require("admin")
    return json_response({"removed": await q.purge()})


async def healthz(request: Request) -> Response:
    q = queue_of(request)
    try:
        await q.storage.domains()
    except RqsError as exc:
        return native_response(exc)
    return json_response({"status": "ok", "backend": q.storage.backend})


routes = [
    Route("/v1/events", post_events, methods=["POST"]),
    Route("/v1/events", get_events, methods=["GET"]),
    Route("/v1/events/{index}", get_event, methods=["GET"]),
    Route("/v1/stats", get_stats, methods=["GET"]),
    Route("/v1/consumers", get_consumers, methods=["GET"]),
    Route("/metrics", get_metrics, methods=["GET"]),
    Route("/v1/event-types", get_event_types, methods=["GET"]),
    Route("/v1/topics", list_topics, methods=["GET"]),
    Route("/v1/topics", create_topic, methods=["POST"]),
    Route("/v1/topics/{name}", get_topic, methods=["GET"]),
    Route("/v1/topics/{name}", delete_topic, methods=["DELETE"]),
    Route("/v1/keys", list_keys, methods=["GET"]),
    Route("/v1/keys", create_key, methods=["POST"]),
    Route("/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/v1/purge", purge_now, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
]
