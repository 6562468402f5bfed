"""Oracle Responsys' Event Notification API under ``/rest/api/v1.3``: callbacks, subscriptions.

Shapes follow Oracle's pages (see docs/reference); known defects of those pages are
tolerated on input: keys with stray spaces (``"backupUrl "``), ``callbackName`` and
``eventNames`` for ``callBackName`` and ``eventTypes``, and both verify paths.
Errors use Responsys' envelope ``{type, title, errorCode, detail, errorDetails}``; the
status code comes from ``rqs.web.errors`` like everywhere else.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rqs import errors as e
from rqs.domain import catalog
from rqs.domain import delivery as d
from rqs.service import keys
from rqs.service.keys import Principal
from rqs.service.push_admin import CallbackSpec, PushAdmin, SubscriptionSpec
from rqs.web.errors import headers_of, status_of
from rqs.web.native import endpoint_for, json_response, push_of, read_body, who

BASE = "/rest/api/v1.3"
N = BASE + "/notifications"

ERROR_CODES: list[tuple[type[e.RqsError], str, str]] = [
    (e.NotFound, "OBJECT_NOT_FOUND", "Object not found"),
    (e.InvalidRequest, "INVALID_PARAMETER", "Invalid parameter"),
    (e.AuthenticationRequired, "AUTHENTICATION_REQUIRED", "Authentication required"),
    (e.PermissionDenied, "UNAUTHORIZED", "Not authorized"),
    (e.Gone, "INVALID_PARAMETER", "Invalid parameter"),
    (e.PayloadTooLarge, "INVALID_REQUEST_BODY", "Request body too large"),
    (e.StorageUnavailable, "SERVICE_UNAVAILABLE", "Service unavailable"),
]


def error_response(exc: e.RqsError) -> Response:
    if isinstance(exc, e.Conflict):
        # Responsys reports "exists already" and "in use" as invalid parameters (400).
        exc = e.InvalidRequest(exc.message)
    code, title = "INTERNAL_ERROR", "Error"
    for cls, c, t in ERROR_CODES:
        if isinstance(exc, cls):
            code, title = c, t
            break
    body = {"type": "", "title": title, "errorCode": code, "detail": exc.message,
            "errorDetails": []}
    return Response(msgspec.json.encode(body), status_code=status_of(exc),
                    headers=headers_of(exc), media_type="application/json")


endpoint = endpoint_for(error_response)


async def body_of(request: Request) -> dict[str, Any]:
    raw = await read_body(request, 1 << 20)
    try:
        found = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise e.InvalidRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(found, dict):
        raise e.InvalidRequest("the body must be a JSON object")
    return {str(k).strip(): v for k, v in found.items()}


def _str(body: dict[str, Any], *names: str) -> str | None:
    for n in names:
        v = body.get(n)
        if v is not None:
            if not isinstance(v, str):
                raise e.InvalidRequest(f"{n} must be a string", parameter=n)
            return v
    return None


def _int(body: dict[str, Any], name: str) -> int | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise e.InvalidRequest(f"{name} must be an integer", parameter=name)
    return v


def _list(body: dict[str, Any], *names: str) -> list[str] | None:
    for n in names:
        v = body.get(n)
        if v is not None:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise e.InvalidRequest(f"{n} must be a list of strings", parameter=n)
            return v
    return None


def callback_spec(body: dict[str, Any], name: str | None = None) -> CallbackSpec:
    auth = body.get("authentication")
    user = password = None
    if auth is not None:
        if not isinstance(auth, dict) or str(auth.get("type", "B")).strip() != "B":
            raise e.InvalidRequest("authentication must be {\"type\": \"B\", \"data\": "
                                   "{\"userName\", \"password\"}}", parameter="authentication")
        data = auth.get("data") or {}
        user, password = _str(data, "userName"), _str(data, "password")
    return CallbackSpec(
        name=name or _str(body, "name") or "", url=_str(body, "url"),
        batch_size=_int(body, "batchSize"), auth_user=user, auth_password=password,
        backup_url=_str(body, "backupUrl"), signing_secret=_str(body, "signingSecret"),
        status=_str(body, "status"), status_reason=_str(body, "statusReason"))


def filters_of(body: dict[str, Any]) -> list[d.CampaignFilter] | None:
    raw = body.get("filters")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise e.InvalidRequest("filters must be a list", parameter="filters")
    found: list[d.CampaignFilter] = []
    for f in raw:
        if not isinstance(f, dict):
            raise e.InvalidRequest("each filter is an object", parameter="filters")
        types = _list(f, "eventTypes") or []
        names: list[str] = []
        for v in f.get("values") or []:
            names.extend(_list(v if isinstance(v, dict) else {}, "campaignNames") or [])
        found.append(d.CampaignFilter(tuple(types), tuple(names)))
    return found


def subscription_spec(body: dict[str, Any], name: str | None = None) -> SubscriptionSpec:
    return SubscriptionSpec(
        name=name or _str(body, "name", "subscriptionName") or "",
        callback=_str(body, "callBackName", "callbackName"),
        event_types=_list(body, "eventTypes", "eventNames"), filters=filters_of(body),
        status=_str(body, "status"), status_reason=_str(body, "statusReason"))


def _links(kind: str, name: str) -> list[dict[str, str]]:
    path = f"{N}/{kind}s/{name}"
    cap = kind.capitalize() if kind == "subscription" else "CallBack"
    return [{"rel": "self", "href": path, "method": "GET"},
            {"rel": f"delete{cap}", "href": path, "method": "DELETE"},
            {"rel": f"create{cap}", "href": f"{N}/{kind}s", "method": "POST"},
            {"rel": f"update{cap}", "href": path, "method": "PUT"}]


def callback_json(cb: d.Callback, *, secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": cb.name, "url": cb.url, "batchSize": cb.batch_size}
    if cb.backup_url:
        out["backupUrl"] = cb.backup_url
    if cb.auth_user is not None:
        out["authentication"] = {"type": "B", "data": {"userName": cb.auth_user}}
    out["status"] = cb.status.value
    if cb.status_reason:
        out["statusReason"] = cb.status_reason
    if secret:
        out["signingSecret"] = cb.secrets[0].value
    out["links"] = _links("callback", cb.name)
    return out


def filters_json(filters: tuple[d.CampaignFilter, ...]) -> list[dict[str, Any]]:
    return [{"eventTypes": list(f.event_types), "values": [{"campaignNames":
                                                            list(f.campaign_names)}]}
            for f in filters]


def subscription_json(sub: d.Subscription, cb: d.Callback | None) -> dict[str, Any]:
    return {"subscriptionName": sub.name, "callBackUrl": cb.url if cb else None,
            "callBackName": sub.callback, "batchSize": cb.batch_size if cb else None,
            "eventTypes": list(sub.event_types), "status": sub.status.value,
            "statusReason": sub.status_reason, "filters": filters_json(sub.filters),
            "links": _links("subscription", sub.name)}


# --- handlers --------------------------------------------------------------------------


@endpoint
async def auth_token(request: Request) -> Response:
    # Parsed by hand: Starlette's form parser needs python-multipart, for this one call.
    raw = (await read_body(request, 1 << 16)).decode("utf-8", "replace")
    form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    user, password = form.get("user_name"), form.get("password")
    if form.get("auth_type", "password") != "password":
        raise e.InvalidRequest("auth_type must be password", parameter="auth_type")
    if not isinstance(user, str) or not isinstance(password, str) or not user or not password:
        raise e.AuthenticationRequired("user_name (a key id) and password (its secret) "
                                       "are required")
    await keys.authenticate(push_of(request).storage, user, password)
    return json_response({"authToken": f"{user}.{password}",
                          "issuedAt": int(time.time() * 1000),
                          "endPoint": str(request.base_url).rstrip("/")})


async def event_list(request: Request) -> Response:
    return json_response(list(catalog.RESPONSYS_EVENT_LIST))


@endpoint
async def create_callback(request: Request) -> Response:
    cb = await push_of(request).create_callback(await who(request), callback_spec(
        await body_of(request)))
    return json_response(callback_json(cb, secret=True))


@endpoint
async def get_callback(request: Request) -> Response:
    if request.query_params.get("action") == "verify":
        return await verify_callback(request)
    cb = await push_of(request).callback(await who(request), request.path_params["name"])
    return json_response(callback_json(cb))


@endpoint
async def update_callback(request: Request) -> Response:
    spec = callback_spec(await body_of(request), request.path_params["name"])
    cb = await push_of(request).update_callback(await who(request), spec)
    return json_response(callback_json(cb, secret=spec.signing_secret is not None))


@endpoint
async def delete_callback(request: Request) -> Response:
    name = request.path_params["name"]
    await push_of(request).delete_callback(await who(request), name)
    return json_response({"message": f"CallBack [{name}] deleted successfully", "status": True})


@endpoint
async def verify_callback(request: Request) -> Response:
    cb = await push_of(request).verify_callback(await who(request), request.path_params["name"])
    return json_response({"status": f"Successfully verified [{cb.name}] "})


@endpoint
async def callback_subscriptions(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    cb = await push.callback(caller, request.path_params["name"])
    subs = await push.store.list_subscriptions(caller.domain, cb.name)
    return json_response({"callBackName": cb.name, "callBackUrl": cb.url,
                          "batchSize": cb.batch_size, "subscriptions": [
                              {"name": s.name, "status": s.status.value,
                               "eventTypes": list(s.event_types),
                               "filters": filters_json(s.filters)} for s in subs]})


async def _with_callback(push: PushAdmin, caller: Principal,
                         sub: d.Subscription) -> dict[str, Any]:
    return subscription_json(sub, await push.store.get_callback(caller.domain, sub.callback))


@endpoint
async def create_subscription(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    sub = await push.create_subscription(caller, subscription_spec(await body_of(request)))
    return json_response(await _with_callback(push, caller, sub))


@endpoint
async def list_subscriptions(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    caller.require("read")
    cbs = {c.name: c for c in await push.store.list_callbacks(caller.domain)}
    subs = await push.store.list_subscriptions(caller.domain)
    return json_response([subscription_json(s, cbs.get(s.callback)) for s in subs])


@endpoint
async def get_subscription(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    sub = await push.subscription(caller, request.path_params["name"])
    return json_response(await _with_callback(push, caller, sub))


@endpoint
async def update_subscription(request: Request) -> Response:
    push, caller = push_of(request), await who(request)
    spec = subscription_spec(await body_of(request), request.path_params["name"])
    sub = await push.update_subscription(caller, spec)
    return json_response(await _with_callback(push, caller, sub))


@endpoint
async def delete_subscription(request: Request) -> Response:
    name = request.path_params["name"]
    await push_of(request).delete_subscription(await who(request), name)
    return json_response({"message": f"Subscription [{name}] deleted successfully",
                          "status": True})


routes = [
    Route(f"{BASE}/auth/token", auth_token, methods=["POST"]),
    Route(f"{N}/eventList", event_list, methods=["GET"]),
    Route(f"{N}/callbacks", create_callback, methods=["POST"]),
    Route(f"{N}/callbacks/{{name}}", get_callback, methods=["GET"]),
    Route(f"{N}/callbacks/{{name}}", update_callback, methods=["PUT"]),
    Route(f"{N}/callbacks/{{name}}", delete_callback, methods=["DELETE"]),
    Route(f"{N}/callbacks/{{name}}/actions/verify", verify_callback, methods=["GET"]),
    Route(f"{N}/callbacks/{{name}}/subscriptions", callback_subscriptions, methods=["GET"]),
    Route(f"{N}/subscriptions", create_subscription, methods=["POST"]),
    Route(f"{N}/subscriptions", list_subscriptions, methods=["GET"]),
    Route(f"{N}/subscriptions/{{name}}", get_subscription, methods=["GET"]),
    Route(f"{N}/subscriptions/{{name}}", update_subscription, methods=["PUT"]),
    Route(f"{N}/subscriptions/{{name}}", delete_subscription, methods=["DELETE"]),
]
