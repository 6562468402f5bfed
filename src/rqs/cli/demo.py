"""``rqs demo``: realistic traffic of every event type, so a new user sees rqs work at once.

Responsys types are Oracle's sample payloads with the people and campaigns varied; the
Mapp-only types are native envelopes. The first events cover every catalog type once,
the rest follow a rough real-world mix (sends and opens dominate, complaints are rare).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import click

from rqs.cli.client_commands import Progress, client_errors, open_client, server_options
from rqs.domain import catalog

Json = dict[str, Any]

WEIGHTS: dict[str, int] = {
    "EMAIL_SENT_TO_MTA": 40, "EMAIL_OPENED": 18, "EMAIL_CLICKED": 7, "SMS_SENT_TO_MTA": 10,
    "SMS_RECEIPT": 8, "PUSH_SENDOUT": 8, "PUSH_DELIVERED": 6, "PUSH_CLICKED": 2,
    "EMAIL_BOUNCED": 3, "SMS_INBOUND": 2, "CONVERSION": 2, "TRANSACTIONAL_TRACKED": 3,
    "PUSH_DISMISSED": 2, "WEBPUSH_CLOSED": 2, "SMS_CLICKED": 2,
}  # every other type: 1

CAMPAIGNS = ("Summer Promotions", "Black Friday Preview", "Welcome Series", "Cart Reminder",
             "Loyalty Points", "Back in Stock", "Order Shipped", "Spring Newsletter")
FIRST = ("john", "maria", "li", "amara", "lukas", "sofia", "raj", "emma", "diego", "yuki")
LAST = ("doe", "garcia", "chen", "okafor", "muller", "rossi", "patel", "smith", "lopez")
DOMAINS = ("example.com", "mail.example.org", "example.net")
INBOUND = ("STOP", "STOP", "STOP", "START", "HELP", "YES", "stop please")
PLATFORMS = ("iOS", "Android")


def responsys_samples() -> dict[str, list[Json]]:
    """Oracle's sample payloads by the type each one is stored as."""
    text = resources.files("rqs.data").joinpath("responsys-event-samples.json").read_text()
    by_type: dict[str, list[Json]] = {}
    for sample in json.loads(text):
        payload = sample["payload"]
        by_type.setdefault(catalog.canonical_type(payload["failureType"]), []).append(payload)
    return by_type


class Traffic:
    """Builds one event of a given type for a random contact of a small audience."""

    def __init__(self, rng: random.Random, run: str, audience: int = 250) -> None:
        self.rng = rng
        self.run = run
        self.samples = responsys_samples()
        self.campaigns = [(str(rng.randrange(10**8, 10**9)), name) for name in CAMPAIGNS]
        self.contacts = [self._contact(i) for i in range(audience)]
        self.count = 0
        self.builders: dict[str, Callable[[Json], Json]] = {
            "EMAIL_SENT_TO_MTA": lambda c: {"recipient": c["email"], "mta": "mta-3"},
            "EMAIL_OPENED": lambda c: {"recipient": c["email"], "userAgent": rng.choice(
                ("Apple Mail", "Gmail Web", "Outlook 16"))},
            "EMAIL_FORWARDED": lambda c: {"recipient": c["email"], "forwardCount": 1},
            "EMAIL_FEEDBACK": lambda c: {"recipient": c["email"], "feedbackType": "abuse",
                                         "provider": "mail.example.net"},
            "CONVERSION": lambda c: {"recipient": c["email"], "orderId": f"SO-{self.count}",
                                     "value": round(rng.uniform(9, 240), 2), "currency": "EUR"},
            "TRANSACTIONAL_TRACKED": lambda c: {
                "recipient": c["email"], "externalTransactionId": f"{rng.getrandbits(48):012x}"},
            "EMAIL_UNSUBSCRIBED": lambda c: {"recipient": c["email"], "groupName": "Newsletter"},
            "SMS_SENT_TO_MTA": lambda c: {"recipient": c["mobile"]},
            "SMS_CLICKED": lambda c: {"recipient": c["mobile"],
                                      "url": "https://shop.example.com/deals"},
            "SMS_BOUNCED": lambda c: {"recipient": c["mobile"], "reason": "Unknown subscriber"},
            "SMS_INBOUND": lambda c: {"recipient": c["mobile"], "message": rng.choice(INBOUND),
                                      "shortCode": "72345"},
            "PUSH_ERROR": lambda c: {**self._device(c), "reason": "Token no longer valid"},
        }

    def _contact(self, i: int) -> Json:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        number = f"1650{self.rng.randrange(10**6, 10**7)}"
        return {"riid": str(self.rng.randrange(10**7, 10**10)), "customerId": f"CUST_{1000 + i}",
                "email": f"{first}.{last}{i}@{self.rng.choice(DOMAINS)}",
                "mobile": f"US - {number}", "number": number}

    def _device(self, contact: Json) -> Json:
        return {"deviceId": f"dev-{contact['customerId'].lower()}",
                "platform": PLATFORMS[int(contact["riid"]) % 2], "appId": "shop-app"}

    def event(self, type_name: str) -> Json:
        self.count += 1
        contact = self.rng.choice(self.contacts)
        if type_name in self.samples:
            return self._responsys(type_name, contact)
        return self._envelope(type_name, contact)

    def _responsys(self, type_name: str, contact: Json) -> Json:
        payload = dict(self.rng.choice(self.samples[type_name]))
        payload["riid"] = contact["riid"]
        if payload.get("customerId") is not None:
            payload["customerId"] = contact["customerId"]
        # Opt-ins and opt-outs carry placeholder campaigns ("0", "N/A"); keep them.
        if payload.get("campaignId") not in (None, "0", "-1"):
            payload["campaignId"], payload["campaignName"] = self.rng.choice(self.campaigns)
        if "recipient" in payload:
            payload["recipient"] = (contact["email"] if payload["channelType"] == "Email"
                                    else contact["mobile"])
        props = (payload.get("optionalData") or {}).get("props", {}).get("prop")
        if props:
            props = props if isinstance(props, list) else [props]
            payload["optionalData"] = {"props": {"prop": [self._prop(p, contact) for p in props]}}
        return payload

    @staticmethod
    def _prop(prop: Json, contact: Json) -> Json:
        value = {"EMAIL_ADDRESS_": contact["email"], "MOBILE_NUMBER_": contact["number"]}
        return {"name": prop["name"], "value": value.get(prop["name"], prop["value"])}

    def _envelope(self, type_name: str, contact: Json) -> Json:
        campaign_id, campaign_name = self.rng.choice(self.campaigns)
        entry = catalog.lookup(type_name)
        channel = entry.channel.value if entry else "Email"
        data: Json = {"campaignId": campaign_id, "campaignName": campaign_name,
                      "riid": contact["riid"], "customerId": contact["customerId"]}
        build = self.builders.get(type_name)
        if build is not None:
            data.update(build(contact))
        elif channel in ("Push", "WebPush"):
            data.update(self._device(contact))
        else:
            data["channel"] = channel
        occurred = datetime.now(UTC) - timedelta(seconds=self.rng.uniform(0, 120))
        return {"type": type_name, "id": f"demo-{self.run}-{self.count}",
                "occurred_at": occurred.isoformat(timespec="milliseconds"), "data": data}


def demo_types() -> list[str]:
    return [t.name for t in catalog.CATALOG]


def demo_events(count: int, seed: int | None = None) -> Iterator[Json]:
    """``count`` events: every catalog type once first, then the weighted mix."""
    rng = random.Random(seed)
    traffic = Traffic(rng, uuid.UUID(int=rng.getrandbits(128)).hex[:8])
    types = demo_types()
    weights = [WEIGHTS.get(t, 1) for t in types]
    for i in range(count):
        yield traffic.event(types[i] if i < len(types) else rng.choices(types, weights)[0])


def _next_steps(url: str, token_in_env: bool) -> str:
    auth = "-H \"Authorization: Bearer $RQS_TOKEN\""
    lines = ["", "Try next:"]
    if not token_in_env:
        lines.append("  export RQS_TOKEN=<key id>.<secret>     # the token `rqs serve` printed")
    lines += [
        f"  curl -s {auth} '{url}/v1/events?type=EMAIL_CLICKED&limit=5'",
        f"  curl -s {auth} '{url}/v1/events?channel=Sms&type=SMS_INBOUND&limit=5'",
        f"  curl -s {auth} '{url}/api/rest/v19/async/pollByType?type=linkClick&limit=10'",
        "  rqs stats",
        f"  open {url}/dashboard   # paste the token, then run `rqs demo --rate 20`",
        "  rqs poll --type SMS_INBOUND --format table",
        "  rqs poll --follow --format table      # then run `rqs demo --rate 20` in another "
        "terminal",
    ]
    return "\n".join(lines)


@click.command()
@click.option("--events", "count", type=click.IntRange(min=1), default=5000, show_default=True,
              help="How many events to send")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Events per second (default: as fast as the server takes them)")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option("--seed", type=int, default=None, help="Make the traffic reproducible")
@server_options
@client_errors
def demo(count: int, rate: float | None, batch_size: int, seed: int | None, url: str,
         token: str | None) -> None:
    """Send realistic traffic of every event type to a running server."""
    if rate is not None:
        # About five requests a second, so a slow rate still looks live.
        batch_size = max(1, min(batch_size, int(rate / 5)))
    by_channel: Counter[str] = Counter()
    first = last = None
    sent = stored = 0
    progress = Progress(count)
    events = demo_events(count, seed)
    with open_client(url, token) as client:
        try:
            while sent < count:
                batch = [e for _, e in zip(range(batch_size), events, strict=False)]
                result = client.ingest(batch)
                sent += len(batch)
                stored += result.stored
                first = first if first is not None else result.first_index
                last = result.last_index if result.last_index is not None else last
                for e in batch:
                    name = catalog.canonical_type(e.get("type") or e["failureType"])
                    by_channel[catalog.CHANNEL_BY_TYPE.get(name, "Unknown")] += 1
                progress.update(sent, sent)
                if rate is not None:
                    delay = progress.started + sent / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        except KeyboardInterrupt:
            pass  # a slow --rate run is ended with Ctrl-C: report what was sent
    progress.update(sent, sent, final=True)
    elapsed = time.monotonic() - progress.started
    mix = ", ".join(f"{n:,} {ch}" for ch, n in by_channel.most_common())
    # Native envelopes carry ids derived from --seed: repeating a seed stores no new copies.
    repeats = f", {sent - stored:,} already stored" if stored < sent else ""
    click.echo(f"sent {sent:,} events of {min(sent, len(demo_types()))} types to {url} in "
               f"{elapsed:.1f} s ({mix}{repeats}); indexes {first}..{last}")
    click.echo(_next_steps(url, bool(os.environ.get("RQS_TOKEN"))))
