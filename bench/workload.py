"""Responsys-shaped events of about 500 bytes, with a realistic mix of types.

Shared by every benchmark, so all of them play the same workload.
"""

from __future__ import annotations

import json
import random

# Relative weights: clicks and bounces are common, complaints rare.
MIX: dict[str, tuple[str, int]] = {
    "EMAIL_CLICKED": ("Email", 300), "EMAIL_BOUNCED": ("Email", 160),
    "EMAIL_SKIPPED": ("Email", 60), "EMAIL_FAILED": ("Email", 40),
    "EMAIL_OPTOUT": ("Email", 25), "EMAIL_OPTIN": ("Email", 20),
    "EMAIL_COMPLAINT": ("Email", 2), "SMS_RECEIPT": ("Sms", 120),
    "SMS_FAILED": ("Sms", 20), "SMS_SKIPPED": ("Sms", 10), "SMS_OPT_IN": ("Sms", 8),
    "SMS_OPT_OUT": ("Sms", 8), "SMS_MO_FW_FAILED": ("Sms", 2), "MMS_FAILED": ("Mms", 4),
    "MMS_SKIPPED": ("Mms", 3), "PUSH_BOUNCED": ("Push", 30), "PUSH_FAILED": ("Push", 15),
    "PUSH_SKIPPED": ("Push", 10), "PUSH_OPT_IN": ("Push", 8), "PUSH_OPT_OUT": ("Push", 6),
    "WEBPUSH_BOUNCED": ("WebPush", 12), "WEBPUSH_CLOSED": ("WebPush", 40),
    "WEBPUSH_FAILED": ("WebPush", 8), "WEBPUSH_SKIPPED": ("WebPush", 5),
    "WEBPUSH_OPTIN": ("WebPush", 4), "WEBPUSH_OPTOUT": ("WebPush", 3),
}
TYPES = list(MIX)
WEIGHTS = [w for _, w in MIX.values()]


def event(rng: random.Random, type_name: str) -> dict[str, object]:
    channel = MIX[type_name][0]
    riid = str(rng.randrange(10**9, 10**10))
    recipient = (f"user{riid}@example.com" if channel == "Email"
                 else f"US - 1650{rng.randrange(10**6, 10**7)}")
    return {
        "campaignId": str(rng.randrange(10**8, 10**9)),
        "riid": riid,
        "failureReason": rng.choice(["MAILBOX_FULL", "USER_NOT_FOUND", "Expression resulted "
                                     "in an empty value", "Subscription is expired"]),
        "customerId": f"CUST_{riid}",
        "recipient": recipient,
        "failureType": type_name,
        "channelType": channel,
        "campaignName": rng.choice(["Summer Promotions", "Winter_Sale_2026", "Welcome Series"]),
        "optionalData": {"props": {"prop": [
            {"name": "CUSTOM_COLUMN1", "value": f"segment-{rng.randrange(100)}"},
            {"name": "EMAIL_ADDRESS_" if channel == "Email" else "MOBILE_NUMBER_",
             "value": recipient},
            {"name": "LOCALE", "value": rng.choice(["en_US", "de_DE", "fr_FR"])},
            {"name": "LOYALTY_TIER", "value": rng.choice(["gold", "silver", "bronze"])},
            {"name": "STORE_ID", "value": f"store-{rng.randrange(10**5):05d}"},
        ]}},
    }


def events(n: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [event(rng, t) for t in rng.choices(TYPES, WEIGHTS, k=n)]


def batches(n: int, size: int, seed: int = 7) -> list[bytes]:
    """Pre-serialized JSON array bodies, so the load generator spends nothing on encoding."""
    evs = events(n, seed)
    return [json.dumps(evs[i:i + size], separators=(",", ":")).encode()
            for i in range(0, n, size)]


if __name__ == "__main__":
    sample = events(1000)
    sizes = [len(json.dumps(e, separators=(",", ":"))) for e in sample]
    print(f"mean event size {sum(sizes) / len(sizes):.0f} bytes")
