"""Push delivery in the native ``/v1`` API: callbacks, subscriptions, and what Responsys
lacks: delivery status, the attempts log, dead letters, replays, secret rotation."""

from __future__ import annotations

from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rqs.domain import delivery as d
from rqs.domain.events import parse_time
from rqs.errors import InvalidRequest
from rqs.service.keys import Principal
from rqs.service.push_admin import PushAdmin
from rqs.web.delivery_json import (
    CallbackIn,
    ReplayIn,
    SecretIn,
    SubscriptionIn,
    attempt_json,
    callback_json,
    callback_spec,
    delivery_json,
    replay_json,
    subscription_json,
    subscription_spec,
    time_json,
)
from rqs.web.native import decode_body, endpoint, json_response, push_of, read_body, who
from rqs.web.params import int_param, str_param

MAX_LIST = 1000
T = TypeVar("T")


async def _body(request: Request, cls: type[T]) -> T:
    return decode_body(await read_body(request, 1 << 20), cls)


def _time(value: str | float | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: {exc}", parameter=name) from None


def _id(request: Request, name: str = "id") -> int:
    raw = request.path_params[name]
    if not raw.isdigit():
        raise InvalidRequest(f"{name} must be a number", parameter=name)
    return int(raw)


# --- callbacks ---------------------------------------------------------------------------


@endpoint
async def list_callbacks(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    caller.require("read")
    found = await push.store.list_callbacks(caller.domain)
    return json_response({"callbacks": [callback_json(c) for c in found]})


@endpoint
async def create_callback(request: Request) -> Response:
    body = await _body(request, CallbackIn)
    cb = await push_of(request).create_callback(await who(request), callback_spec(body))
    return json_response(callback_json(cb, secret=True), status=201)


@endpoint
async def get_callback(request: Request) -> Response:
    cb = await push_of(request).callback(await who(request), request.path_params["name"])
    return json_response(callback_json(cb))


@endpoint
async def update_callback(request: Request) -> Response:
    body = await _body(request, CallbackIn)
    spec = callback_spec(body, request.path_params["name"])
    cb = await push_of(request).update_callback(await who(request), spec)
    return json_response(callback_json(cb, secret=spec.signing_secret is not None))


@endpoint
async def delete_callback(request: Request) -> Response:
    await push_of(request).delete_callback(await who(request), request.path_params["name"])
    return Response(status_code=204)


@endpoint
async def verify_callback(request: Request) -> Response:
    cb = await push_of(request).verify_callback(await who(request), request.path_params["name"])
    return json_response(callback_json(cb))


@endpoint
async def rotate_secret(request: Request) -> Response:
    raw = await read_body(request, 1 << 16)
    body = decode_body(raw, SecretIn) if raw.strip() else SecretIn()
    cb = await push_of(request).rotate_secret(await who(request), request.path_params["name"],
                                              body.signing_secret)
    return json_response(callback_json(cb, secret=True))


@endpoint
async def get_secrets(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    caller.require("admin")
    cb = await push.callback(caller, request.path_params["name"])
    return json_response({"signing_secrets": [
        {"secret": s.value, "expires_at": time_json(s.expires_at)}
        for s in cb.live_secrets(push.now())]})


# --- subscriptions -----------------------------------------------------------------------


@endpoint
async def list_subscriptions(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    caller.require("read")
    found = await push.store.list_subscriptions(caller.domain,
                                                str_param(request.query_params, "callback"))
    return json_response({"subscriptions": [subscription_json(s) for s in found]})


@endpoint
async def create_subscription(request: Request) -> Response:
    body = await _body(request, SubscriptionIn)
    sub = await push_of(request).create_subscription(await who(request), subscription_spec(body))
    return json_response(subscription_json(sub), status=201)


@endpoint
async def get_subscription(request: Request) -> Response:
    sub = await push_of(request).subscription(await who(request), request.path_params["name"])
    return json_response(subscription_json(sub))


@endpoint
async def update_subscription(request: Request) -> Response:
    body = await _body(request, SubscriptionIn)
    spec = subscription_spec(body, request.path_params["name"])
    sub = await push_of(request).update_subscription(await who(request), spec)
    return json_response(subscription_json(sub))


@endpoint
async def delete_subscription(request: Request) -> Response:
    await push_of(request).delete_subscription(await who(request), request.path_params["name"])
    return Response(status_code=204)


@endpoint
async def subscription_status(request: Request) -> Response:
    """Where delivery stands: position, lag, the batch in flight, the callback's health."""
    push, caller = push_of(request), await who(request)
    sub = await push.subscription(caller, request.path_params["name"])
    cb = await push.store.get_callback(caller.domain, sub.callback)
    bounds = await push.storage.bounds(caller.domain)
    pending = await push.store.list_deliveries(
        caller.domain, subscription_id=sub.id, state=d.DeliveryState.PENDING, limit=MAX_LIST)
    live = [p for p in pending if p.replay_id is None]
    return json_response({
        "subscription": subscription_json(sub),
        "callback": callback_json(cb) if cb else None,
        "newest_index": bounds.newest, "behind": max(0, bounds.newest - sub.position),
        "pending": delivery_json(live[0]) if live else None,
        "replays_pending": len(pending) - len(live),
    })


@endpoint
async def list_deliveries(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    sub = await push.subscription(caller, request.path_params["name"])
    return await _deliveries(request, push, caller, sub.id, None)


@endpoint
async def list_dead_letters(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    caller.require("read")
    name = str_param(request.query_params, "subscription")
    sub_id = (await push.subscription(caller, name)).id if name else None
    return await _deliveries(request, push, caller, sub_id, d.DeliveryState.DEAD)


async def _deliveries(request: Request, push: PushAdmin, caller: Principal,
                      sub_id: int | None, state: d.DeliveryState | None) -> Response:
    p = request.query_params
    if state is None and (raw := str_param(p, "state")):
        try:
            state = d.DeliveryState(raw)
        except ValueError:
            raise InvalidRequest("state is pending, succeeded or dead", parameter="state") \
                from None
    limit = min(int_param(p, "limit", minimum=1) or 100, MAX_LIST)
    found = await push.store.list_deliveries(
        caller.domain, subscription_id=sub_id, state=state,
        before_id=int_param(p, "before", minimum=1), limit=limit)
    return json_response({"deliveries": [delivery_json(x) for x in found],
                          "next_before": found[-1].id if len(found) == limit else None})


@endpoint
async def get_delivery(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    found = await push.delivery(caller, _id(request))
    attempts = await push.store.list_attempts(caller.domain, found.id)
    return json_response(delivery_json(found) | {"attempts_log": [attempt_json(a)
                                                                  for a in attempts]})


@endpoint
async def list_attempts(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    found = await push.delivery(caller, _id(request))
    attempts = await push.store.list_attempts(caller.domain, found.id)
    return json_response({"attempts": [attempt_json(a) for a in attempts]})


@endpoint
async def redrive(request: Request) -> Response:
    replay = await push_of(request).redrive(await who(request), _id(request))
    return json_response(replay_json(replay), status=202)


# --- replays -------------------------------------------------------------------------------


@endpoint
async def create_replay(request: Request) -> Response:
    body = decode_body(await read_body(request, 1 << 16), ReplayIn)
    replay = await push_of(request).create_replay(
        await who(request), request.path_params["name"], from_index=body.from_index,
        through_index=body.through_index, since=_time(body.since, "since"),
        until=_time(body.until, "until"))
    return json_response(replay_json(replay), status=202)


@endpoint
async def list_replays(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    sub = await push.subscription(caller, request.path_params["name"])
    found = await push.store.list_replays(caller.domain, sub.id)
    return json_response({"replays": [replay_json(r) for r in found]})


@endpoint
async def get_replay(request: Request) -> Response:
    replay = await push_of(request).replay(await who(request), _id(request))
    return json_response(replay_json(replay))


@endpoint
async def cancel_replay(request: Request) -> Response:
    await push_of(request).cancel_replay(await who(request), _id(request))
    return Response(status_code=204)


routes = [
    Route("/v1/callbacks", list_callbacks, methods=["GET"]),
    Route("/v1/callbacks", create_callback, methods=["POST"]),
    Route("/v1/callbacks/{name}", get_callback, methods=["GET"]),
    Route("/v1/callbacks/{name}", update_callback, methods=["PUT", "PATCH"]),
    Route("/v1/callbacks/{name}", delete_callback, methods=["DELETE"]),
    Route("/v1/callbacks/{name}/verify", verify_callback, methods=["POST"]),
    Route("/v1/callbacks/{name}/secrets", get_secrets, methods=["GET"]),
    Route("/v1/callbacks/{name}/secrets", rotate_secret, methods=["POST"]),
    Route("/v1/subscriptions", list_subscriptions, methods=["GET"]),
    Route("/v1/subscriptions", create_subscription, methods=["POST"]),
    Route("/v1/subscriptions/{name}", get_subscription, methods=["GET"]),
    Route("/v1/subscriptions/{name}", update_subscription, methods=["PUT", "PATCH"]),
    Route("/v1/subscriptions/{name}", delete_subscription, methods=["DELETE"]),
    Route("/v1/subscriptions/{name}/status", subscription_status, methods=["GET"]),
    Route("/v1/subscriptions/{name}/deliveries", list_deliveries, methods=["GET"]),
    Route("/v1/subscriptions/{name}/replays", create_replay, methods=["POST"]),
    Route("/v1/subscriptions/{name}/replays", list_replays, methods=["GET"]),
    Route("/v1/replays/{id}", get_replay, methods=["GET"]),
    Route("/v1/replays/{id}", cancel_replay, methods=["DELETE"]),
    Route("/v1/deliveries/{id}", get_delivery, methods=["GET"]),
    Route("/v1/deliveries/{id}/attempts", list_attempts, methods=["GET"]),
    Route("/v1/dead-letters", list_dead_letters, methods=["GET"]),
    Route("/v1/dead-letters/{id}/redrive", redrive, methods=["POST"]),
]
