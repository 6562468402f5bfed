"""The event type catalog: every type rqs knows, its channel and its Mapp poll group.

This module owns the table. Everything else (ingest classification, poll groups,
``GET /v1/event-types``, the Responsys ``eventList``) reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "Email"
    SMS = "Sms"
    MMS = "Mms"
    PUSH = "Push"
    WEBPUSH = "WebPush"
    UNKNOWN = "Unknown"


class PollGroup(StrEnum):
    """Mapp Engage ``pollByType``/``pollByRange`` ``type`` values (``allMessages`` aside)."""

    LINK_CLICK = "linkClick"
    MTA_RESPONSE = "mtaResponse"
    SMS_RESPONSE = "smsResponse"
    READ_TRACK = "readTrack"
    FORWARD_TRACK = "forwardTrack"
    CONVERSION = "conversion"
    SKIP_TRACKING = "skipTracking"
    SEND_TRANSACTIONAL = "sendTransactional"
    UNSUBSCRIBE = "unsubscribe"
    SENT_TO_MTA = "sentToMta"


ALL_MESSAGES = "allMessages"


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    channel: Channel
    group: PollGroup
    description: str
    responsys: bool  # part of Responsys' eventList


def _t(name: str, channel: Channel, group: PollGroup, text: str, responsys: bool) -> EventType:
    return EventType(name, channel, group, text, responsys)


E, S, M, P, W = Channel.EMAIL, Channel.SMS, Channel.MMS, Channel.PUSH, Channel.WEBPUSH
G = PollGroup

# Order follows Responsys' eventList, then the Mapp response types the Responsys list lacks.
CATALOG: tuple[EventType, ...] = (
    _t("EMAIL_BOUNCED", E, G.MTA_RESPONSE, "Email bounced", True),
    _t("EMAIL_FAILED", E, G.MTA_RESPONSE, "Email could not be sent", True),
    _t("EMAIL_SKIPPED", E, G.SKIP_TRACKING, "Email skipped before sending", True),
    _t("EMAIL_CLICKED", E, G.LINK_CLICK, "Link in an email clicked", True),
    _t("SMS_FAILED", S, G.SMS_RESPONSE, "SMS could not be sent", True),
    _t("SMS_SKIPPED", S, G.SKIP_TRACKING, "SMS skipped before sending", True),
    _t("SMS_MO_FW_FAILED", S, G.SMS_RESPONSE, "Forwarding a mobile-originated SMS failed", True),
    _t("MMS_SKIPPED", M, G.SKIP_TRACKING, "MMS skipped before sending", True),
    _t("MMS_FAILED", M, G.SMS_RESPONSE, "MMS could not be sent", True),
    _t("PUSH_SKIPPED", P, G.SKIP_TRACKING, "Mobile push skipped before sending", True),
    _t("PUSH_FAILED", P, G.MTA_RESPONSE, "Mobile push could not be sent", True),
    _t("PUSH_BOUNCED", P, G.MTA_RESPONSE, "Mobile push bounced", True),
    _t("WEBPUSH_FAILED", W, G.MTA_RESPONSE, "Web push could not be sent", True),
    _t("WEBPUSH_SKIPPED", W, G.SKIP_TRACKING, "Web push skipped before sending", True),
    _t("WEBPUSH_BOUNCED", W, G.MTA_RESPONSE, "Web push bounced", True),
    _t("WEBPUSH_CLOSED", W, G.READ_TRACK, "Web push notification closed", True),
    _t("EMAIL_OPTOUT", E, G.UNSUBSCRIBE, "Email opt-out", True),
    _t("EMAIL_OPTIN", E, G.UNSUBSCRIBE, "Email opt-in", True),
    _t("EMAIL_COMPLAINT", E, G.MTA_RESPONSE, "Spam complaint (feedback loop)", True),
    _t("PUSH_OPT_IN", P, G.UNSUBSCRIBE, "Mobile push opt-in", True),
    _t("PUSH_OPT_OUT", P, G.UNSUBSCRIBE, "Mobile push opt-out", True),
    _t("SMS_OPT_IN", S, G.UNSUBSCRIBE, "SMS opt-in", True),
    _t("SMS_OPT_OUT", S, G.UNSUBSCRIBE, "SMS opt-out", True),
    _t("WEBPUSH_OPTIN", W, G.UNSUBSCRIBE, "Web push opt-in", True),
    _t("WEBPUSH_OPTOUT", W, G.UNSUBSCRIBE, "Web push opt-out", True),
    _t("SMS_RECEIPT", S, G.SMS_RESPONSE, "SMS delivery receipt", True),
    # Mapp Engage response types that Responsys callbacks do not carry.
    _t("EMAIL_SENT_TO_MTA", E, G.SENT_TO_MTA, "Email handed to the MTA", False),
    _t("SMS_SENT_TO_MTA", S, G.SENT_TO_MTA, "SMS handed to the SMS gateway", False),
    _t("EMAIL_OPENED", E, G.READ_TRACK, "Email opened (rendered)", False),
    _t("EMAIL_FORWARDED", E, G.FORWARD_TRACK, "Email forwarded to a friend", False),
    _t("EMAIL_FEEDBACK", E, G.MTA_RESPONSE, "Feedback reported by a mailbox provider", False),
    _t("CONVERSION", E, G.CONVERSION, "Conversion tracked for a message", False),
    _t("TRANSACTIONAL_TRACKED", E, G.SEND_TRANSACTIONAL, "Transactional tracking data", False),
    _t("EMAIL_UNSUBSCRIBED", E, G.UNSUBSCRIBE, "Unsubscribed from a group", False),
    _t("SMS_CLICKED", S, G.LINK_CLICK, "Link in an SMS clicked", False),
    _t("SMS_BOUNCED", S, G.SMS_RESPONSE, "SMS bounced", False),
    _t("SMS_INBOUND", S, G.SMS_RESPONSE, "Inbound SMS (mobile originated), e.g. STOP", False),
    _t("PUSH_SENDOUT", P, G.SENT_TO_MTA, "Mobile push sent out", False),
    _t("PUSH_ERROR", P, G.MTA_RESPONSE, "Mobile push error", False),
    _t("PUSH_DELIVERED", P, G.MTA_RESPONSE, "Mobile push delivered", False),
    _t("PUSH_DISMISSED", P, G.READ_TRACK, "Mobile push dismissed", False),
    _t("PUSH_CLICKED", P, G.LINK_CLICK, "Mobile push clicked", False),
)

BY_NAME: dict[str, EventType] = {t.name: t for t in CATALOG}

ALIASES: dict[str, str] = {
    # Oracle's samples name the receipt SMS_DELIVERY_RECEIPT; its eventList says SMS_RECEIPT.
    "SMS_DELIVERY_RECEIPT": "SMS_RECEIPT",
}

RESPONSYS_EVENT_LIST: tuple[str, ...] = tuple(t.name for t in CATALOG if t.responsys)

GROUP_TYPES: dict[PollGroup, frozenset[str]] = {
    g: frozenset(t.name for t in CATALOG if t.group is g) for g in PollGroup
}

CHANNEL_BY_TYPE: dict[str, str] = {t.name: t.channel.value for t in CATALOG}

_CHANNELS_BY_LOWER = {c.value.lower(): c for c in Channel}


def canonical_type(name: str) -> str:
    """The stored name of a type: aliases folded, anything else kept as sent."""
    return ALIASES.get(name, name)


def lookup(name: str) -> EventType | None:
    return BY_NAME.get(ALIASES.get(name, name))


def parse_channel(value: str) -> Channel | None:
    return _CHANNELS_BY_LOWER.get(value.lower())


def channel_for(type_name: str, declared: str | None) -> Channel:
    """The catalog decides the channel of a known type; otherwise trust the sender."""
    known = lookup(type_name)
    if known is not None:
        return known.channel
    if declared:
        return parse_channel(declared) or Channel.UNKNOWN
    return Channel.UNKNOWN


def as_json() -> list[dict[str, object]]:
    return [
        {
            "name": t.name,
            "channel": t.channel.value,
            "group": t.group.value,
            "description": t.description,
            "responsys": t.responsys,
            "aliases": sorted(a for a, target in ALIASES.items() if target == t.name),
        }
        for t in CATALOG
    ]
