"""The OpenAPI 3.1 document of every route the app mounts (``/openapi.json``, ``/docs``).

Operations are built by ``op``; schemas, parameters and error responses come from
``rqs.web.openapi_schemas``. ``tests/test_openapi.py`` checks that the paths here and the
app's routes are the same set, and that the document is valid OpenAPI 3.1.
"""

from __future__ import annotations

from typing import Any

from rqs import __version__
from rqs.web import mapp
from rqs.web.openapi_schemas import (
    MAPP_COUNT,
    MAPP_RESULTS,
    POLL_TYPES,
    Json,
    body,
    components,
    enum,
    errors,
    header,
    json_response,
    path,
    query,
)

AUTH: list[Json] = [{"basic": []}, {"bearer": []}]
RESPONSYS_AUTH: list[Json] = [*AUTH, {"responsysToken": []}]
NDJSON = "application/x-ndjson"


def op(tag: str, summary: str, description: str = "", *, params: tuple[Json, ...] = (),
       request: Json | None = None, ok: Json | None = None, status: int = 200,
       errs: Json | None = None, security: list[Json] | None = None) -> Json:
    """One operation. ``ok`` is the success response; ``errs`` the error responses."""
    out: Json = {"tags": [tag], "summary": summary}
    if description:
        out["description"] = description
    if params:
        out["parameters"] = list(params)
    if request is not None:
        out["requestBody"] = request
    out["responses"] = {str(status): ok or {"description": "Done (no body)"}, **(errs or {})}
    if security is not None:
        out["security"] = security
    return out


def scoped(scope: str, text: str = "") -> str:
    return f"{text} Scope: {scope}.".strip()


# --- the native API ----------------------------------------------------------------------

INDEX_HEADERS = {"X-Oldest-Index": header("The oldest retained index (empty: none)"),
                 "X-Newest-Index": header("The newest index when the read began", "int")}
LIMIT = query("limit", "Events to return: 1 to RQS_MAX_POLL_LIMIT (100,000); default "
              "RQS_DEFAULT_POLL_LIMIT (10,000)", {"type": "integer", "minimum": 1})


def native_paths() -> dict[str, Json]:
    page = json_response("A page of events, streamed", "Page", INDEX_HEADERS)
    page["content"][NDJSON] = {"schema": {
        "type": "string", "description": "One Event per line, then a last line holding "
        "next_index, has_more and oldest_index (it has no index)"}}
    ingest = body("IngestBody", "One JSON object, a JSON array, or NDJSON (Content-Type "
                  "application/x-ndjson, application/ndjson, application/jsonl; several "
                  "objects one per line sent as JSON work too). Each item is a Responsys "
                  "callback payload (it has failureType) or a native envelope.")
    ingest["content"][NDJSON] = {"schema": {"type": "string"}}
    name = path("name", "Topic name")
    return {
        "/v1/events": {
            "post": op("native", "Ingest events", scoped("ingest", (
                "All or nothing: a 2xx means every event is committed to disk; any invalid "
                "item rejects the whole request with a 422 listing every problem, and "
                "nothing is stored. Envelopes with an id already stored are duplicates: "
                "their original index is reported and nothing new is stored.")),
                request=ingest, ok=json_response("Stored", "IngestResult"),
                errs=errors(400, 401, 403, 413, 422, 503)),
            "get": op("native", "Read events after an index", scoped("read", (
                "Events with an index above `after`, oldest first. Continue with "
                "after=next_index-1; next_index moves past events that did not match. "
                "An `after` that retention has passed is a 410 naming the oldest index, "
                "never a silent skip. Send Accept: application/x-ndjson for NDJSON.")),
                params=(
                    query("after", "Return events with a higher index. Default: from the "
                          "oldest retained", {"type": "integer", "minimum": 0}),
                    query("type", "Event types or poll groups; repeat it or separate with "
                          "commas. allMessages is every type except the sentToMta group"),
                    query("channel", "Email, Sms, Mms, Push, WebPush; repeatable"),
                    query("campaign", "Campaign id or name"),
                    query("since", "Received at or after: ISO 8601 or Unix seconds"),
                    query("until", "Received before: ISO 8601 or Unix seconds"), LIMIT),
                ok=page, errs=errors(400, 401, 403, 410, 503)),
        },
        "/v1/events/{index}": {"get": op(
            "native", "One event", scoped("read"),
            params=(path("index", "The event's index", "int"),),
            ok=json_response("The event", "Event"), errs=errors(400, 401, 403, 404, 410, 503))},
        "/v1/stats": {"get": op(
            "native", "Counts, index range and retention", scoped("read", (
                "Retained and ingested counts per type and channel, the oldest and newest "
                "index, purged_through and the retention horizon of the key's domain.")),
            ok=json_response("Statistics", "Stats"), errs=errors(401, 403, 503))},
        "/v1/consumers": {"get": op(
            "native", "Consumers and how far behind they are", scoped("read", (
                "The key's domain's server-managed cursors (Mapp pollByType and poll) and "
                "push subscriptions: position, lag (an index distance: exact for a consumer "
                "of every type, an upper bound otherwise), and for a subscription its "
                "state and the batch being delivered. Consumers that keep their own index "
                "(after=) are not known to the server.")),
            ok=json_response("Consumers", "Consumers"), errs=errors(401, 403, 503))},
        "/v1/event-types": {"get": op(
            "native", "The event type catalog", "Every known type with its channel and Mapp "
            "poll group, and the poll group names. No credentials needed.",
            ok=json_response("The catalog", "EventTypes"), security=[])},
        "/v1/topics": {
            "get": op("native", "List topics", scoped("read"),
                      ok=json_response("Topics", "Topics"), errs=errors(401, 403)),
            "post": op("native", "Create a topic", scoped("admin", (
                "A named selection of types and channels, for the Mapp poll, pollByIndex "
                "and getNextIndex methods.")), request=body("TopicIn"),
                ok=json_response("Created", "Topic"), status=201,
                errs=errors(400, 401, 403, 409))},
        "/v1/topics/{name}": {
            "get": op("native", "One topic", scoped("read"), params=(name,),
                      ok=json_response("The topic", "Topic"), errs=errors(401, 403, 404)),
            "delete": op("native", "Delete a topic", scoped("admin"), params=(name,),
                         status=204, errs=errors(401, 403, 404))},
        "/v1/keys": {
            "get": op("admin", "List keys", scoped("admin", "Every key of every domain, "
                      "without secrets."), ok=json_response("Keys", "Keys"),
                      errs=errors(401, 403)),
            "post": op("admin", "Create a key", scoped("admin", (
                "The secret is in this response only. `domain` may name any domain.")),
                request=body("KeyIn"), ok=json_response("Created", "NewKey"), status=201,
                errs=errors(400, 401, 403))},
        "/v1/keys/{key_id}": {"delete": op(
            "admin", "Revoke a key", scoped("admin", "Requests with it fail from now on."),
            params=(path("key_id", "The key id (rk_...)"),), status=204,
            errs=errors(401, 403, 404))},
        "/v1/purge": {"post": op(
            "admin", "Run retention now", scoped("admin", (
                "Removes events received more than RQS_RETENTION_DAYS ago, in every domain, "
                "in small steps; the background pass does the same every "
                "RQS_PURGE_INTERVAL_SECONDS.")),
            ok=json_response("Events removed", "Purged"), errs=errors(401, 403, 503))},
        "/metrics": {"get": op(
            "admin", "Prometheus metrics", scoped("read", (
                "The key's domain in the Prometheus text format (version 0.0.4), read from "
                "the database at each scrape, so every server process answers alike: "
                "events ingested and retained per type and channel, the index range, the "
                "time of the newest event, each server-managed cursor's position, index "
                "lag, polled and skipped counts, and each callback's and subscription's "
                "state, position, index lag and the attempts and age of the batch in "
                "delivery. Lags are index distances.")),
            ok={"description": "The metrics", "content": {
                "text/plain": {"schema": {"type": "string"}}}},
            errs=errors(401, 403, 503))},
        "/healthz": {"get": op(
            "admin", "Health check", "200 when the database answers; no credentials needed.",
            ok=json_response("Healthy", "Health"), errs=errors(503), security=[])},
    }


# --- Mapp Engage compatibility -------------------------------------------------------------

TOPIC = query("topic", "A topic (POST /v1/topics), or any poll group or type name",
              required=True)
POLL_TYPE = query("type", "A poll group, allMessages (every type but sentToMta) or an "
                  "event type name", {"type": "string", "examples": POLL_TYPES}, required=True)
SKIPPED = {"X-Rqs-Skipped": header("Events retention removed before this cursor reached "
                                   "them (only when there were any)", "int")}
MAPP_OPS: dict[str, tuple[str, str, tuple[Json, ...], Json | None]] = {
    "pollByType": ("Poll a type through a server cursor", (
        "Returns the events of `type` the cursor has not delivered yet, and moves the "
        "cursor past them only once the whole response went to the connection: each event "
        "is delivered once per cursor, and a response that broke off is delivered again. "
        "One cursor per key, domain and type; concurrent polls of one cursor run one after "
        "the other."), (POLL_TYPE, LIMIT), SKIPPED),
    "poll": ("Poll a topic through a server cursor", (
        "As pollByType, through the topic's own cursor (separate from pollByType's even "
        "for the same name). Events are not deleted: other keys and the other methods "
        "still read them."), (TOPIC, LIMIT), SKIPPED),
    "pollByIndex": ("Read a topic from an index", (
        "Events of the topic from `index` on (inclusive), without a cursor. An index "
        "retention removed is a 410 (INDEX_EXPIRED)."),
        (TOPIC, query("index", "The first index to return", {"type": "integer",
                                                            "minimum": 1}, required=True),
         LIMIT), INDEX_HEADERS),
    "pollByRange": ("Read a time range", (
        "Events received (stored) from `from` inclusive to `to` exclusive, without a "
        "cursor. Mapp's 24-hour maximum window is not enforced."),
        (POLL_TYPE, query("from", "Unix seconds", "int", required=True),
         query("to", "Unix seconds, later than from", "int", required=True), LIMIT), None),
    "getNextIndex": ("The next index of a topic's poll cursor", (
        "Where `poll` on this topic would start: pass it as pollByIndex's index to switch "
        "to a self-managed index."), (TOPIC,), None),
    "getPollCount": ("Events delivered through a topic's poll cursor", "",
                     (TOPIC,), None),
    "getSubmitCount": ("Events ever ingested", (
        "For the topic's types, or for the whole domain without `topic`."),
        (query("topic", "Optional: a topic, poll group or type name"),), None),
}


def mapp_paths() -> dict[str, Json]:
    out: dict[str, Json] = {}
    for method, (summary, text, params, headers) in MAPP_OPS.items():
        since = mapp.SINCE[method]
        version = path("version", f"API version {since} to {mapp.MAX_VERSION} (a 404 below "
                       f"{since}), as in /api/rest/v19", {"type": "integer", "minimum": since,
                                                          "maximum": mapp.MAX_VERSION})
        counts = method.startswith("get")
        ok: Json = {"description": "A bare integer" if counts else "The events, streamed",
                    "content": MAPP_COUNT if counts else MAPP_RESULTS}
        if headers:
            ok["headers"] = headers
        description = scoped("read", f"{text} JSON or XML, as Accept asks (no Accept, */* "
                             "or application/*: JSON). Errors are Mapp's error object.")
        out[f"/api/rest/v{{version}}/async/{method}"] = {"get": op(
            "mapp", f"async/{method} (since v{since}): {summary}", description,
            params=(version, *params), ok=ok,
            errs=errors(400, 401, 403, 404, 406, *([410] if method == "pollByIndex" else []),
                        503, shape="MappError"))}
    return out


# --- push delivery -----------------------------------------------------------------------

R = "/rest/api/v1.3/notifications"


def responsys_paths() -> dict[str, Json]:
    def r_op(summary: str, scope: str, text: str = "", **kw: Any) -> Json:
        kw.setdefault("errs", errors(400, 401, 403, 404, shape="RError"))
        return op("responsys", summary, scoped(scope, text), security=RESPONSYS_AUTH, **kw)

    cb, sub = path("name", "Callback name"), path("name", "Subscription name")
    callback = json_response("The callback", "RCallback")
    subscription = json_response("The subscription", "RSubscription")
    deleted = json_response("Deleted", "RDeleted")
    verified = json_response("A signed, authenticated empty batch ([]) got a 2xx",
                             "RVerified")
    token_form = {"required": True, "content": {"application/x-www-form-urlencoded": {
        "schema": {"type": "object", "required": ["user_name", "password"], "properties": {
            "user_name": {"type": "string", "description": "A key id"},
            "password": {"type": "string", "description": "Its secret"},
            "auth_type": {"type": "string", "enum": ["password"]}}}}}}
    return {
        "/rest/api/v1.3/auth/token": {"post": op(
            "responsys", "Log in (Responsys style)", "Checks a key id and secret and returns "
            "<id>.<secret> as authToken, to send as the Authorization header.",
            request=token_form, ok=json_response("Token", "RToken"),
            errs=errors(400, 401, 403, shape="RError"), security=[])},
        f"{R}/eventList": {"get": op(
            "responsys", "Event types a subscription can name", "No credentials needed.",
            ok=json_response("Type names", "EventList"), security=[])},
        f"{R}/callbacks": {"post": r_op(
            "Create a callback", "admin", "The response carries the signing secret.",
            request=body("RCallbackIn"), ok=callback)},
        f"{R}/callbacks/{{name}}": {
            "get": r_op("Get a callback (?action=verify: verify it)", "read; admin to verify",
                        params=(cb, query("action", "verify: call the URL, as "
                                          "actions/verify does", enum("verify"))),
                        ok=callback),
            "put": r_op("Update a callback", "admin", "Fields left out stay as they are.",
                        params=(cb,), request=body("RCallbackIn"), ok=callback),
            "delete": r_op("Delete a callback", "admin", "400 while subscriptions use it.",
                           params=(cb,), ok=deleted)},
        f"{R}/callbacks/{{name}}/actions/verify": {"get": r_op(
            "Verify a callback", "admin", params=(cb,), ok=verified)},
        f"{R}/callbacks/{{name}}/subscriptions": {"get": r_op(
            "Subscriptions of a callback", "read", params=(cb,),
            ok=json_response("The callback and its subscriptions", "RCallbackSubscriptions"))},
        f"{R}/subscriptions": {
            "get": r_op("List subscriptions", "read",
                        ok=json_response("Subscriptions", "RSubscriptions")),
            "post": r_op("Create a subscription", "admin", "Delivery starts with the events "
                         "ingested from now on.", request=body("RSubscriptionIn"),
                         ok=subscription)},
        f"{R}/subscriptions/{{name}}": {
            "get": r_op("Get a subscription", "read", params=(sub,), ok=subscription),
            "put": r_op("Update a subscription", "admin", "status PAUSED stops delivery; "
                        "ACTIVE resumes where it stopped.", params=(sub,),
                        request=body("RSubscriptionIn"), ok=subscription),
            "delete": r_op("Delete a subscription", "admin", params=(sub,), ok=deleted)},
    }


def push_paths() -> dict[str, Json]:
    def p_op(summary: str, scope: str, text: str = "", *, errs: tuple[int, ...] = (404,),
             **kw: Any) -> Json:
        return op("push", summary, scoped(scope, text), errs=errors(401, 403, *errs), **kw)

    cb, sub = path("name", "Callback name"), path("name", "Subscription name")
    ident = path("id", "Its id", "int")
    callback = json_response("The callback", "Callback")
    subscription = json_response("The subscription", "Subscription")
    replay = json_response("The replay", "Replay")
    paging = (query("state", "pending, queued, succeeded or dead"),
              query("before", "Only ids below this (next_before of the last page)", "int"),
              query("limit", "1 to 1000, default 100", "int"))
    updated = ("Fields left out stay as they are. Setting status ACTIVE re-enables a "
               "disabled callback and restarts the retry schedule of its pending batches.")
    return {
        "/v1/callbacks": {
            "get": p_op("List callbacks", "read", errs=(),
                        ok=json_response("Callbacks", "Callbacks")),
            "post": p_op("Create a callback", "admin", (
                "The URL must be public http(s) unless RQS_ALLOW_PRIVATE_CALLBACKS=1. The "
                "response carries the signing secret (whsec_...)."), errs=(400, 409),
                request=body("CallbackIn"), ok=callback, status=201)},
        "/v1/callbacks/{name}": {
            "get": p_op("Get a callback", "read", params=(cb,), ok=callback),
            "put": p_op("Update a callback", "admin", updated, errs=(400, 404),
                        params=(cb,), request=body("CallbackIn"), ok=callback),
            "patch": p_op("Update a callback", "admin", updated, errs=(400, 404),
                          params=(cb,), request=body("CallbackIn"), ok=callback),
            "delete": p_op("Delete a callback", "admin", "409 while subscriptions use it.",
                           errs=(404, 409), params=(cb,), status=204)},
        "/v1/callbacks/{name}/verify": {"post": p_op(
            "Verify a callback", "admin", "Sends a signed, authenticated empty batch ([]); "
            "a 2xx records verified_at, anything else is a 400.", errs=(400, 404),
            params=(cb,), ok=callback)},
        "/v1/callbacks/{name}/secrets": {
            "get": p_op("Signing secrets in use", "admin", "The current secret and any "
                        "rotated-out one still signing (for a day after rotation).",
                        params=(cb,), ok=json_response("Secrets", "Secrets")),
            "post": p_op("Rotate the signing secret", "admin", (
                "The new secret signs at once; the old one keeps signing too for 24 hours, "
                "so receivers can switch without losing a batch."), errs=(400, 404),
                params=(cb,), request={**body("SecretIn"), "required": False}, ok=callback)},
        "/v1/subscriptions": {
            "get": p_op("List subscriptions", "read", errs=(),
                        params=(query("callback", "Only those of this callback"),),
                        ok=json_response("Subscriptions", "Subscriptions")),
            "post": p_op("Create a subscription", "admin", (
                "Delivers the events of event_types (types or poll groups) to the callback, "
                "in index order, one batch in flight at a time. `start` picks the first "
                "event: now (default), oldest, or an index (410 if retention removed it)."),
                errs=(400, 404, 409, 410), request=body("SubscriptionIn"), ok=subscription,
                status=201)},
        "/v1/subscriptions/{name}": {
            "get": p_op("Get a subscription", "read", params=(sub,), ok=subscription),
            "put": p_op("Update a subscription", "admin", "status PAUSED stops delivery; "
                        "ACTIVE resumes where it stopped.", errs=(400, 404), params=(sub,),
                        request=body("SubscriptionIn"), ok=subscription),
            "patch": p_op("Update a subscription", "admin", "As PUT.", errs=(400, 404),
                          params=(sub,), request=body("SubscriptionIn"), ok=subscription),
            "delete": p_op("Delete a subscription", "admin", params=(sub,), status=204)},
        "/v1/subscriptions/{name}/status": {"get": p_op(
            "Delivery status", "read", "Position, how far behind the newest index it is, "
            "the batch in flight and the callback's health.", params=(sub,),
            ok=json_response("Status", "SubscriptionState"))},
        "/v1/subscriptions/{name}/deliveries": {"get": p_op(
            "Batches of a subscription", "read", "Newest first.", errs=(400, 404),
            params=(sub, *paging), ok=json_response("Batches", "Deliveries"))},
        "/v1/subscriptions/{name}/replays": {
            "get": p_op("Replays of a subscription", "read", params=(sub,),
                        ok=json_response("Replays", "Replays")),
            "post": p_op("Replay events", "admin", (
                "Sends retained events again, by index range (from_index, through_index) "
                "and/or receive time (since, until), alongside live delivery."),
                errs=(400, 404, 410), params=(sub,), request=body("ReplayIn"), ok=replay,
                status=202)},
        "/v1/replays/{id}": {
            "get": p_op("Get a replay", "read", errs=(400, 404), params=(ident,), ok=replay),
            "delete": p_op("Cancel a replay", "admin", errs=(400, 404), params=(ident,),
                           status=204)},
        "/v1/deliveries/{id}": {"get": p_op(
            "One batch, with its attempts", "read", errs=(400, 404), params=(ident,),
            ok=json_response("The batch", "Delivery"))},
        "/v1/deliveries/{id}/attempts": {"get": p_op(
            "Attempts of a batch", "read", "Time, URL, status code, latency, error and "
            "outcome of every attempt.", errs=(400, 404), params=(ident,),
            ok=json_response("Attempts", "Attempts"))},
        "/v1/dead-letters": {"get": p_op(
            "Dead letters", "read", "Batches given up on (retries used up, or a 4xx "
            "answer), newest first.", errs=(400, 404),
            params=(query("subscription", "Only this subscription's"), *paging[1:]),
            ok=json_response("Dead batches", "Deliveries"))},
        "/v1/dead-letters/{id}/redrive": {"post": p_op(
            "Send a dead letter again", "admin", "Starts a replay of the batch's range.",
            errs=(400, 404, 410), params=(ident,), ok=replay, status=202)},
    }


def docs_paths() -> dict[str, Json]:
    return {
        "/openapi.json": {"get": op("admin", "This document", security=[], ok={
            "description": "OpenAPI 3.1", "content": {"application/json": {}}})},
        "/docs": {"get": op("admin", "This document as a web page", security=[], ok={
            "description": "HTML", "content": {"text/html": {}}})},
        "/dashboard": {"get": op(
            "admin", "The live dashboard", (
                "A page that asks for a key's token and draws its domain live from "
                "/v1/stats, /v1/events and /v1/consumers. Serving it needs no credentials."),
            security=[], ok={"description": "HTML", "content": {"text/html": {}}})},
        "/dashboard.js": {"get": op(
            "admin", "The dashboard's script", security=[], ok={
                "description": "JavaScript", "content": {"text/javascript": {}}})},
    }


INFO = {
    "title": "rqs, the Response Queue Service",
    "version": __version__,
    "description": (
        "Ingest marketing response events (Oracle Responsys callback payloads or a native "
        "envelope), keep them for the retention period behind a gapless per-domain index, "
        "and read them back: the native /v1 API, Mapp Engage's async API (change only the "
        "host), or pushed to callbacks. Authenticate with HTTP Basic (key id, secret) or "
        "Authorization: Bearer <key id>.<secret>. Scopes: ingest, read, admin (admin may "
        "do everything). A key sees its own domain only."),
    "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
}
TAGS = [
    {"name": "native", "description": "Ingest and read events (/v1)"},
    {"name": "mapp", "description": "Mapp Engage Response Queue, GET /api/rest/v{N}/async/*"},
    {"name": "responsys", "description": "Oracle Responsys Event Notification API v1.3"},
    {"name": "push", "description": "Push delivery: callbacks, subscriptions, replays"},
    {"name": "admin", "description": "Keys, retention, health, this document"},
]


def spec() -> dict[str, object]:
    """The whole document, built afresh (about a millisecond; the web layer caches it)."""
    return {"openapi": "3.1.0", "info": INFO, "tags": TAGS, "security": AUTH,
            "paths": {**native_paths(), **mapp_paths(), **responsys_paths(), **push_paths(),
                      **docs_paths()},
            "components": components()}
