"""The OpenAPI document's building blocks: schemas, parameters, responses, security.

Schemas are written in a small shorthand (``prop``): ``"int"``, ``"str"``, ``"time"``
(ISO 8601 UTC text), ``"bool"``, ``"num"``, ``"object"``, ``"#Name"`` (a component), a
``[...]`` around any of them for an array and a trailing ``?`` for "may be null". A
``(shorthand, description)`` pair adds a description. The paths are in ``rqs.web.openapi``.
"""

from __future__ import annotations

from typing import Any

from rqs.domain import catalog
from rqs.domain.delivery import MAX_BATCH_SIZE
from rqs.service.keys import SCOPES

Json = dict[str, Any]
Prop = str | tuple[str, str] | Json

_BASIC = {"str": "string", "int": "integer", "num": "number", "bool": "boolean",
          "object": "object"}


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def prop(spec: Prop) -> Json:
    """A property schema from the shorthand (see the module docstring)."""
    if isinstance(spec, dict):
        return spec
    if isinstance(spec, tuple):
        return {**prop(spec[0]), "description": spec[1]}
    if spec.endswith("?"):
        inner = prop(spec[:-1])
        return {"anyOf": [inner, {"type": "null"}]} if "$ref" in inner else \
            {**inner, "type": [inner["type"], "null"]}
    if spec.startswith("["):
        return {"type": "array", "items": prop(spec[1:-1])}
    if spec.startswith("#"):
        return ref(spec[1:])
    if spec == "time":
        return {"type": "string", "format": "date-time"}
    return {"type": _BASIC[spec]}


def obj(required: tuple[str, ...] = (), *, closed: bool = False, desc: str = "",
        **props: Prop) -> Json:
    """An object schema; ``closed``: unknown fields are rejected (a 400)."""
    out: Json = {"type": "object", "properties": {k: prop(v) for k, v in props.items()}}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    if desc:
        out["description"] = desc
    return out


def enum(*values: str, desc: str = "") -> Json:
    return {"type": "string", "enum": list(values), **({"description": desc} if desc else {})}


CHANNELS = [c.value for c in catalog.Channel]
POLL_TYPES = [g.value for g in catalog.PollGroup] + [catalog.ALL_MESSAGES]
LINKS = "[#Link]"

# --- events and ingest -------------------------------------------------------------------

EVENTS: dict[str, Json] = {
    "Event": obj(
        ("index", "id", "type", "channel", "received_at", "occurred_at", "payload"),
        index=("int", "Per-domain index: from 1, gapless, in commit order"),
        id=("str", "The sender's id, or rqs-<domain>-<index> when it gave none"),
        type="str", channel={"type": "string", "enum": CHANNELS},
        received_at=("time", "When rqs committed the event (never decreases with the index)"),
        occurred_at=("time?", "When the sender says it happened"),
        payload=("object", "The item (Responsys) or its data (envelope), byte for byte")),
    "Page": obj(
        ("events", "next_index", "has_more", "oldest_index"), events="[#Event]",
        next_index=("int", "Where the next read starts: ask again with after=next_index-1"),
        has_more=("bool", "More matching events exist now: read again at once"),
        oldest_index=("int?", "The oldest retained index (null: nothing retained)")),
    "ResponsysEvent": {**obj(
        ("failureType",), desc="An Oracle Responsys callback item, stored as sent. "
        "failureType is the event type; the channel comes from the catalog, else channelType.",
        failureType="str", channelType="str", campaignId="str", campaignName="str",
        riid="str", customerId="str", recipient="str", failureReason="str",
        inboundMessage="str"),
        "example": {"failureType": "EMAIL_BOUNCED", "channelType": "Email", "riid": "3738409741",
                    "campaignId": "193897761", "campaignName": "Summer Promotions",
                    "customerId": "10", "recipient": "example@oracle.com",
                    "failureReason": "MAILBOX_FULL"}},
    "Envelope": {**obj(
        ("type", "data"), desc="The native envelope, for anything that is not a Responsys item",
        type=("str", "A catalog type (GET /v1/event-types) or any other name"),
        data=("object", "The event; campaign_id/campaignId, campaign_name/campaignName, "
              "riid, customer_id, recipient, message/inboundMessage/text, channel/"
              "channelType are indexed for filtering"),
        id={"type": ["string", "integer"], "description": "1 to 200 characters. A re-sent id "
            "is a duplicate: stored once, its original index reported"},
        occurred_at={"type": ["string", "number"], "description": "ISO 8601 or Unix seconds"},
        domain=("str", "If given, must equal the key's domain")),
        "example": {"type": "SMS_INBOUND", "id": "mo-1", "occurred_at": "2026-11-01T10:00:00Z",
                    "data": {"message": "STOP", "recipient": "16502229405"}}},
    "IngestBody": {"anyOf": [ref("ResponsysEvent"), ref("Envelope"), {
        "type": "array", "items": {"anyOf": [ref("ResponsysEvent"), ref("Envelope")]},
        "description": "Up to RQS_MAX_BATCH_ITEMS (100,000) items"}]},
    "IngestResult": obj(
        ("accepted", "stored", "duplicates", "first_index", "last_index", "indexes"),
        accepted=("int", "Items in the request"), stored=("int", "New events"),
        duplicates=("int", "Items whose id was stored already"),
        first_index="int?", last_index="int?",
        indexes=("[int]", "For each item in order, its index (new or original)")),
    "Problem": obj(("item", "field", "message"),
                   item=("int?", "0-based position in the batch (NDJSON: among the items)"),
                   field="str?", message="str"),
    "Error": obj(
        ("error", "message"),
        error=enum("invalid_request", "validation_failed", "payload_too_large",
                   "authentication_required", "permission_denied", "not_found", "conflict",
                   "gone", "storage_unavailable", "error"),
        message="str", parameter=("str", "The parameter at fault (400)"),
        problem_count=("int", "422: how many problems in all"),
        problems=("[#Problem]", "422: the first 1000 problems"),
        oldest_index=("int?", "410: the oldest index still retained")),
}

# --- reads, catalog, topics, keys, operations --------------------------------------------

NATIVE: dict[str, Json] = {
    "TypeCount": obj(type="str", channel="str", retained="int", ingested="int",
                     catalogued="bool"),
    "Stats": obj(
        domain="str", oldest_index="int?", newest_index="int", purged_through=(
            "int", "Retention removed every index up to here"), retained="int",
        ingested="int", by_type="[#TypeCount]", by_channel={"type": "object"},
        uncatalogued={"type": "object"}, retention_days="num", retention_horizon="time"),
    "ConsumerCursor": obj(
        key_id="str", cursor=("str", "type:<poll type> (pollByType) or topic:<name> (poll)"),
        position="int", lag=("int", "newest_index - position"), polled="int",
        skipped=("int", "Events retention removed before the cursor reached them"),
        last_poll="time"),
    "PendingBatch": obj(delivery_id="int", first_index="int", last_index="int",
                        attempts="int", created_at="time", next_attempt_at="time?",
                        last_status="int?", last_error="str?"),
    "ConsumerSubscription": obj(
        name="str", callback="str", status=enum("ACTIVE", "PAUSED"),
        callback_status=enum("ACTIVE", "DISABLED"), callback_failing_since="time?",
        position=("int", "The last index it is done with"),
        lag=("int", "newest_index - position"),
        pending={"anyOf": [ref("PendingBatch"), {"type": "null"}],
                 "description": "The batch being delivered (none while paused or disabled)"}),
    "Consumers": obj(domain="str", newest_index="int", cursors="[#ConsumerCursor]",
                     subscriptions="[#ConsumerSubscription]"),
    "EventType": obj(name="str", channel="str", group=enum(*[g.value for g in catalog.PollGroup]),
                     description="str", responsys=("bool", "In Responsys' eventList"),
                     aliases="[str]"),
    "EventTypes": obj(event_types="[#EventType]", poll_groups={"type": "array", "items": enum(
        *POLL_TYPES)}),
    "TopicIn": obj(("name",), closed=True, name=("str", "1 to 100 characters; not a poll "
                   "group or type name"), types=("[str]", "Types or poll groups"),
                   channels={"type": "array", "items": enum(*CHANNELS)}),
    "Topic": obj(name="str", domain="str", types="[str]", channels="[str]"),
    "Topics": obj(topics="[#Topic]"),
    "KeyIn": obj(("name", "scope"), closed=True, name="str", scope=enum(*SCOPES),
                 domain=("str", "Default: the caller's domain")),
    "NewKey": obj(id="str", secret=("str", "Shown only now"), token=(
        "str", "<id>.<secret>, for Bearer"), name="str", scope="str", domain="str"),
    "Key": obj(id="str", name="str", scope="str", domain="str", revoked="bool"),
    "Keys": obj(keys="[#Key]"),
    "Purged": obj(removed="int"),
    "Health": obj(status=enum("ok"), backend=enum("sqlite", "postgres")),
}

# --- Mapp Engage -------------------------------------------------------------------------

MAPP: dict[str, Json] = {
    "AsyncResult": {**obj(
        queueId=("str", "The event's id"),
        output={"type": "array", "xml": {"name": "output"}, "items": obj(
            name="str", value="str")}),
        "xml": {"name": "asyncResult"},
        "description": "Outputs: index, type, channel, received_at, occurred_at (if given), "
                       "then the payload flattened to dotted names"},
    "AsyncResults": {"type": "array", "items": ref("AsyncResult"),
                     "xml": {"name": "asyncResults", "wrapped": True}},
    "Count": {"type": "integer", "format": "int64", "xml": {"name": "long"}},
    "MappError": {**obj(
        ("errorActor", "errorCode", "message"), errorActor=enum("CLIENT", "SERVER"),
        errorCode=enum("MISSING_PARAMETER", "INVALID_PARAMETER", "INVALID_REQUEST",
                       "INDEX_EXPIRED", "AUTHENTICATION_REQUIRED", "PERMISSION_DENIED",
                       "NO_SUCH_OBJECT", "NOT_ACCEPTABLE", "SERVICE_UNAVAILABLE",
                       "INTERNAL_ERROR"),
        message="str", parameterName="str", objectType="str"), "xml": {"name": "error"}},
}

# Mapp response bodies: JSON or XML, as the Accept header asks.
MAPP_RESULTS = {"application/json": {"schema": ref("AsyncResults"), "example": [
    {"queueId": "rqs-default-1", "output": [
        {"name": "index", "value": "1"}, {"name": "type", "value": "SMS_INBOUND"},
        {"name": "channel", "value": "Sms"},
        {"name": "received_at", "value": "2026-11-01T10:00:00.000Z"},
        {"name": "message", "value": "STOP"}]}]},
    "application/xml": {"schema": ref("AsyncResults"), "example": (
        '<?xml version="1.0" encoding="UTF-8"?>\n<asyncResults><asyncResult><queueId>'
        "rqs-default-1</queueId><output><name>index</name><value>1</value></output>"
        "<output><name>type</name><value>SMS_INBOUND</value></output>...</asyncResult>"
        "</asyncResults>")}}
MAPP_COUNT = {"application/json": {"schema": ref("Count"), "example": 123},
              "application/xml": {"schema": ref("Count"),
                                  "example": '<?xml version="1.0" encoding="UTF-8"?>\n'
                                             "<long>123</long>"}}

# --- push delivery: Responsys shapes and native shapes -------------------------------------

_BATCH = {"type": "integer", "minimum": 1, "maximum": MAX_BATCH_SIZE,
          "description": f"Events per request; default {MAX_BATCH_SIZE}"}
_FILTERS = "[#Filter]"

PUSH: dict[str, Json] = {
    "Link": obj(rel="str", href="str", method="str"),
    "BasicAuthIn": obj(type=enum("B"), data=obj(userName="str", password="str")),
    "Filter": obj(eventTypes="[str]", values="[#CampaignNames]"),
    "CampaignNames": obj(campaignNames="[str]"),
    "RCallbackIn": obj(
        ("name", "url"), name="str", url=("str", "Public http(s) URL"), batchSize=_BATCH,
        authentication="#BasicAuthIn", backupUrl=("str", "Used from the 4th attempt on"),
        signingSecret=("str", "whsec_<base64 of 24-64 bytes>; generated when absent"),
        status=enum("ACTIVE", "DISABLED"), statusReason="str"),
    "RCallback": obj(name="str", url="str", batchSize="int", backupUrl="str",
                     authentication=obj(type="str", data=obj(userName="str")),
                     status="str", statusReason="str",
                     signingSecret=("str", "Only on create, and on updates that set it"),
                     links=LINKS),
    "RSubscriptionIn": obj(
        subscriptionName=("str", "Or name"), callBackName=("str", "Or callbackName"),
        eventTypes=("[str]", "Types or poll groups (or eventNames)"), filters=_FILTERS,
        status=enum("ACTIVE", "PAUSED"), statusReason="str"),
    "RSubscription": obj(subscriptionName="str", callBackUrl="str?", callBackName="str",
                         batchSize="int?", eventTypes="[str]", status="str",
                         statusReason="str?", filters=_FILTERS, links=LINKS),
    "RSubscriptions": {"type": "array", "items": ref("RSubscription")},
    "RCallbackSubscriptions": obj(callBackName="str", callBackUrl="str", batchSize="int",
                                  subscriptions="[object]"),
    "RDeleted": obj(message="str", status="bool"),
    "RVerified": obj(status="str"),
    "RToken": obj(authToken=("str", "<key id>.<secret>; send it as the Authorization header"),
                  issuedAt="int", endPoint="str"),
    "RError": obj(type="str", title="str", errorCode="str", detail="str",
                  errorDetails="[object]"),
    "EventList": {"type": "array", "items": {"type": "string"}},
    "CallbackIn": obj(
        closed=True, name=("str", "On create"), url="str", batch_size=_BATCH,
        basic_auth=obj(("user_name",), user_name="str", password="str"), backup_url="str",
        signing_secret="str", status=enum("ACTIVE", "DISABLED"), status_reason="str"),
    "Callback": obj(
        name="str", url="str", batch_size="int", backup_url="str?", basic_auth="object?",
        status="str", status_reason="str?", failing_since="time?", verified_at="time?",
        created_at="time", updated_at="time", signing_secret=(
            "str", "On create, rotation, and updates that set it")),
    "Callbacks": obj(callbacks="[#Callback]"),
    "SecretIn": obj(closed=True, signing_secret=("str", "Default: a new random secret")),
    "Secrets": obj(signing_secrets="[object]"),
    "NFilter": obj(("campaign_names",), closed=True, campaign_names="[str]",
                   event_types=("[str]", "Empty: every type of the subscription")),
    "SubscriptionIn": obj(
        closed=True, name=("str", "On create"), callback="str", event_types="[str]",
        filters="[#NFilter]", status=enum("ACTIVE", "PAUSED"), status_reason="str",
        start={"description": "Create only: 'now' (default), 'oldest', or the first index",
               "anyOf": [enum("now", "oldest"), {"type": "integer", "minimum": 1}]}),
    "Subscription": obj(name="str", callback="str", event_types="[str]", filters="[object]",
                        status="str", status_reason="str?",
                        position=("int", "Last index delivered or dead-lettered"),
                        created_at="time", updated_at="time"),
    "Subscriptions": obj(subscriptions="[#Subscription]"),
    "SubscriptionState": obj(subscription="#Subscription", callback="#Callback?",
                             newest_index="int", behind="int", pending="#Delivery?",
                             replays_pending="int"),
    "Delivery": obj(
        id="int", webhook_id=("str", "webhook-id: the same on every retry"),
        subscription_id="int", replay_id="int?", first_index="int", last_index="int",
        count="int", attempts="int",
        state=enum("pending", "queued", "succeeded", "dead",
                   desc="pending: the head of its lane, being sent; queued: opened behind it"),
        next_attempt_at="time?", last_status="int?", last_error="str?", created_at="time",
        updated_at="time", attempts_log=("[#Attempt]", "GET /v1/deliveries/{id} only")),
    "Deliveries": obj(deliveries="[#Delivery]", next_before=("int?", "Pass as before=")),
    "Attempt": obj(at="time", url="str", status_code="int?", latency_ms="num", error="str?",
                   outcome=enum("succeeded", "retry", "dead", "disabled")),
    "Attempts": obj(attempts="[#Attempt]"),
    "ReplayIn": obj(closed=True, from_index="int", through_index="int",
                    since={"type": ["string", "number"]}, until={"type": ["string", "number"]},
                    desc="from_index or since is required; times are ISO 8601 or Unix seconds"),
    "Replay": obj(id="int", subscription_id="int", from_index="int", through_index="int",
                  since="time?", until="time?", position="int", delivered="int",
                  state=enum("running", "done", "cancelled"), created_at="time",
                  updated_at="time"),
    "Replays": obj(replays="[#Replay]"),
}

SECURITY_SCHEMES: Json = {
    "basic": {"type": "http", "scheme": "basic",
              "description": "User: the key id (rk_...); password: its secret"},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "<key id>.<secret>"},
    "responsysToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                       "description": "The authToken of POST /rest/api/v1.3/auth/token, "
                                      "sent bare, as Responsys clients do"},
}


def components() -> Json:
    return {"schemas": {**EVENTS, **NATIVE, **MAPP, **PUSH},
            "securitySchemes": SECURITY_SCHEMES}


# --- parameters and responses -------------------------------------------------------------


def param(name: str, where: str, description: str, schema: Prop = "str", *,
          required: bool = False, **extra: Any) -> Json:
    out: Json = {"name": name, "in": where, "description": description,
                 "schema": prop(schema), **extra}
    if required or where == "path":
        out["required"] = True
    return out


def query(name: str, description: str, schema: Prop = "str", **kw: Any) -> Json:
    return param(name, "query", description, schema, **kw)


def path(name: str, description: str, schema: Prop = "str") -> Json:
    return param(name, "path", description, schema)


def header(description: str, schema: Prop = "str") -> Json:
    return {"description": description, "schema": prop(schema)}


def body(schema: str, description: str = "", media: str = "application/json") -> Json:
    out: Json = {"required": True, "content": {media: {"schema": ref(schema)}}}
    if description:
        out["description"] = description
    return out


def json_response(description: str, schema: str | None = None,
                  headers: Json | None = None) -> Json:
    out: Json = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": ref(schema)}}
    if headers:
        out["headers"] = headers
    return out


STATUS_TEXT = {
    400: "A parameter or the body is malformed",
    401: "No credentials (WWW-Authenticate: Basic)",
    403: "Unknown key, wrong secret, revoked key, or the key lacks the scope",
    404: "No such object",
    406: "The Accept header allows neither JSON nor XML",
    409: "The object exists already, or is in use",
    410: "Retention removed what was asked for; the body names the oldest retained index",
    413: "The body or the batch is over the configured cap",
    422: "Invalid items; nothing was stored. Every problem is listed",
    503: "The database cannot be reached now (Retry-After)",
}


def errors(*codes: int, shape: str = "Error") -> Json:
    """Error responses in one of the error shapes: ``Error``, ``MappError`` or ``RError``."""
    out: Json = {}
    for code in codes:
        content: Json = {"application/json": {"schema": ref(shape)}}
        if shape == "MappError":
            content["application/xml"] = {"schema": ref(shape)}
        response: Json = {"description": STATUS_TEXT[code], "content": content}
        if code == 401:
            response["headers"] = {"WWW-Authenticate": header('Basic realm="rqs"')}
        elif code == 503:
            response["headers"] = {"Retry-After": header("Seconds", "int")}
        out[str(code)] = response
    return out
