"""The native /v1 API over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import Server, samples


def test_ingest_every_sample_and_read_it_back_byte_for_byte(server: Server) -> None:
    c = server.client()
    raw = [json.dumps(p, indent=1).encode() for p in samples()]
    body = b"[" + b",".join(raw) + b"]"
    r = c.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["indexes"] == list(range(1, len(raw) + 1))
    for i, payload in enumerate(raw, start=1):
        got = c.get(f"/v1/events/{i}")
        assert got.status_code == 200
        # The stored payload is the item's bytes as sent, whitespace included.
        assert payload in got.content
        assert got.json()["payload"] == json.loads(payload)


def test_sms_delivery_receipt_alias_and_channel(server: Server) -> None:
    c = server.client()
    r = c.post("/v1/events", json={"failureType": "SMS_DELIVERY_RECEIPT", "channelType": "Sms",
                                   "riid": "1"})
    assert r.status_code == 200
    ev = c.get("/v1/events/1").json()
    assert (ev["type"], ev["channel"]) == ("SMS_RECEIPT", "Sms")


def test_invalid_batch_lists_every_problem_and_stores_nothing(server: Server) -> None:
    c = server.client()
    items = [
        {"failureType": "EMAIL_CLICKED", "riid": "1"},
        {"type": "X"},  # no data
        "not an object",
        {"type": "SMS_INBOUND", "data": {"message": "STOP"}, "occurred_at": "yesterday"},
    ]
    r = c.post("/v1/events", json=items)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_failed"
    where = {(p["item"], p["field"]) for p in body["problems"]}
    assert where == {(1, "data"), (2, None), (3, "occurred_at")}
    assert "(first: item 1, data: missing: the envelope needs a data object)" in body["message"]
    assert c.get("/v1/stats").json()["retained"] == 0


def test_ndjson_ingest_and_native_envelope(server: Server) -> None:
    c = server.client()
    lines = [
        {"type": "SMS_INBOUND", "id": "mo-1", "occurred_at": "2026-11-01T10:00:00Z",
         "data": {"message": "STOP", "recipient": "US - 16502229405"}},
        {"failureType": "SMS_OPT_OUT", "riid": "7", "channelType": "Sms"},
    ]
    body = "\n".join(json.dumps(x) for x in lines) + "\n"
    r = c.post("/v1/events", content=body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    ev = c.get("/v1/events/1").json()
    assert ev["id"] == "mo-1"
    assert ev["occurred_at"] == "2026-11-01T10:00:00.000Z"
    assert ev["payload"] == {"message": "STOP", "recipient": "US - 16502229405"}
    bad = c.post("/v1/events", content=b'{"type":"A","data":{}}\n{oops\n',
                 headers={"content-type": "application/x-ndjson"})
    assert bad.status_code == 422
    assert "line 2" in bad.json()["problems"][0]["message"]


def test_resending_an_id_is_idempotent(server: Server) -> None:
    c = server.client()
    first = c.post("/v1/events", json=[{"type": "CONVERSION", "id": "a", "data": {}},
                                       {"type": "CONVERSION", "id": "b", "data": {}}])
    again = c.post("/v1/events", json=[{"type": "CONVERSION", "id": "b", "data": {}},
                                       {"type": "CONVERSION", "id": "c", "data": {}}])
    assert first.json()["indexes"] == [1, 2]
    assert again.json() | {"indexes": again.json()["indexes"]} == again.json()
    assert again.json()["indexes"] == [2, 3]
    assert again.json()["duplicates"] == 1
    assert c.get("/v1/stats").json()["retained"] == 3


def test_unknown_type_is_kept_and_counted_as_uncatalogued(server: Server) -> None:
    c = server.client()
    r = c.post("/v1/events", json={"failureType": "EMAIL_TELEPORTED", "channelType": "Email"})
    assert r.status_code == 200
    stats = c.get("/v1/stats").json()
    assert stats["uncatalogued"] == {"retained": 1, "ingested": 1}
    assert c.get("/v1/events?type=EMAIL_TELEPORTED").json()["events"][0]["channel"] == "Email"


def test_read_filters_paging_and_ndjson(server: Server) -> None:
    c = server.client()
    payloads = samples() * 5
    assert c.post("/v1/events", json=payloads).status_code == 200
    clicks = c.get("/v1/events?type=EMAIL_CLICKED").json()
    assert [e["type"] for e in clicks["events"]] == ["EMAIL_CLICKED"] * 5
    sms = c.get("/v1/events?channel=Sms&limit=3").json()
    assert len(sms["events"]) == 3 and sms["has_more"] is True
    rest = c.get(f"/v1/events?channel=Sms&after={sms['next_index'] - 1}").json()
    assert rest["has_more"] is False
    every_sms = [p for p in payloads if p["channelType"] == "Sms"]
    assert len(sms["events"]) + len(rest["events"]) == len(every_sms)
    campaign = c.get("/v1/events?campaign=SMS_Fail").json()["events"]
    assert len(campaign) == 5
    lines = c.get("/v1/events?limit=4", headers={"accept": "application/x-ndjson"}).text
    rows = [json.loads(x) for x in lines.splitlines()]
    assert [r["index"] for r in rows[:-1]] == [1, 2, 3, 4]
    assert rows[-1] == {"next_index": 5, "has_more": True, "oldest_index": 1}


@pytest.mark.parametrize("accept", ["application/json", "application/x-ndjson"])
def test_has_more_at_the_edges_of_a_page(any_server: Server, accept: str) -> None:
    """The scan reads one event past the limit to learn has_more and never sends it: also
    when that event is alone in the scan's last page (limits above 1,000 are read in
    pages of 1,000 or more)."""
    c = any_server.client()
    body = [{"type": "EMAIL_CLICKED", "data": {"n": i}} for i in range(2_002)]
    assert c.post("/v1/events", json=body).status_code == 200

    def page(after: int, limit: int) -> tuple[list[int], dict[str, object]]:
        r = c.get(f"/v1/events?after={after}&limit={limit}", headers={"accept": accept})
        assert r.status_code == 200
        if accept == "application/json":
            doc = r.json()
            return [e["index"] for e in doc.pop("events")], doc
        rows = [json.loads(x) for x in r.text.splitlines()]
        return [e["index"] for e in rows[:-1]], rows[-1]

    assert page(0, 1_000) == (list(range(1, 1_001)),
                              {"next_index": 1_001, "has_more": True, "oldest_index": 1})
    assert page(1_000, 1_001) == (list(range(1_001, 2_002)),
                                  {"next_index": 2_002, "has_more": True, "oldest_index": 1})
    assert page(1_000, 1_002) == (list(range(1_001, 2_003)),
                                  {"next_index": 2_003, "has_more": False, "oldest_index": 1})
    assert page(2_001, 1) == ([2_002], {"next_index": 2_003, "has_more": False,
                                        "oldest_index": 1})


def test_auth_errors(server: Server) -> None:
    import httpx

    anon = httpx.Client(base_url=server.url)
    r = anon.get("/v1/stats")
    assert r.status_code == 401 and "www-authenticate" in r.headers
    wrong = httpx.Client(base_url=server.url, auth=(server.admin.key.id, "nope"))
    assert wrong.get("/v1/stats").status_code == 403
    ingest_only = server.client(server.new_key("ingest"))
    assert ingest_only.post("/v1/events", json={"type": "A", "data": {}}).status_code == 200
    assert ingest_only.get("/v1/events").status_code == 403
    token = httpx.Client(base_url=server.url,
                         headers={"authorization": f"Bearer {server.admin.token}"})
    assert token.get("/v1/stats").status_code == 200


def test_domains_are_isolated(server: Server) -> None:
    a = server.client(server.new_key("admin", domain="brand-a"))
    b = server.client(server.new_key("admin", domain="brand-b"))
    assert a.post("/v1/events", json={"type": "A", "data": {"x": 1}}).json()["indexes"] == [1]
    assert b.post("/v1/events", json={"type": "B", "data": {}}).json()["indexes"] == [1]
    assert [e["type"] for e in a.get("/v1/events").json()["events"]] == ["A"]
    assert [e["type"] for e in b.get("/v1/events").json()["events"]] == ["B"]
    wrong = a.post("/v1/events", json={"type": "A", "data": {}, "domain": "brand-b"})
    assert wrong.status_code == 422 and wrong.json()["problems"][0]["field"] == "domain"


def test_retention_purge_and_gone(server: Server) -> None:
    c = server.client()
    c.post("/v1/events", json=samples())
    assert c.post("/v1/purge").json() == {"removed": 0}
    server.clock.advance(31 * 86400)
    assert c.post("/v1/purge").json() == {"removed": len(samples())}
    c.post("/v1/events", json={"type": "A", "data": {}})
    gone = c.get("/v1/events?after=3")
    assert gone.status_code == 410
    assert gone.json()["oldest_index"] == len(samples()) + 1
    assert c.get("/v1/events/2").status_code == 410
    assert c.get("/v1/events/999").status_code == 404
    fresh = c.get("/v1/events").json()
    assert [e["index"] for e in fresh["events"]] == [len(samples()) + 1]


def test_limits_and_body_errors(server: Server) -> None:
    c = server.client()
    assert c.get("/v1/events?limit=100001").status_code == 400
    assert c.get("/v1/events?after=x").json()["parameter"] == "after"
    # Integers as the Mapp API takes them: no digit separators, no 64-bit overflow.
    for bad in ("1_000", "9" * 19):
        r = c.get(f"/v1/events?after={bad}")
        assert r.status_code == 400, bad
        assert r.json()["parameter"] == "after"
        assert f"must be an integer of at most 18 digits, got '{bad}'" in r.json()["message"]
    assert c.get("/v1/events?after=%201%20").status_code == 200  # spaces around are fine
    assert c.post("/v1/events", content=b"[{]").status_code == 400
    assert c.post("/v1/events", content=b"").status_code == 400


def test_event_types_catalog(server: Server) -> None:
    body = server.client().get("/v1/event-types").json()
    names = {t["name"] for t in body["event_types"]}
    responsys = {t["name"] for t in body["event_types"] if t["responsys"]}
    assert len(responsys) == 26
    assert {"SMS_INBOUND", "PUSH_DISMISSED", "EMAIL_OPENED"} <= names
    assert "allMessages" in body["poll_groups"]


def test_admin_keys_manage_only_their_own_domain(server: Server) -> None:
    other_admin = server.client(server.new_key("admin", domain="brand-x"))
    r = other_admin.post("/v1/keys", json={"name": "sneaky", "scope": "read", "domain": "default"})
    assert r.status_code == 403
    listed = other_admin.get("/v1/keys").json()["keys"]
    assert {k["domain"] for k in listed} == {"brand-x"}
    assert other_admin.delete(f"/v1/keys/{server.admin.key.id}").status_code == 404
    assert server.client().get("/v1/stats").status_code == 200


def test_empty_batch_is_a_clear_400(server: Server) -> None:
    r = server.client().post("/v1/events", json=[])
    assert r.status_code == 400
    assert "empty" in r.json()["message"]


def test_startup_loads_what_the_first_streamed_response_would(tmp_path: Path) -> None:
    """anyio's asyncio backend (every StreamingResponse's task group) is imported while
    the app starts, not by the first read (14 ms)."""
    script = textwrap.dedent("""
        import asyncio, sys
        from pathlib import Path
        from rqs.settings import Settings
        from rqs.web.app import create_app

        BACKEND = "anyio._backends._asyncio"
        app = create_app(Settings(data_dir=Path(sys.argv[1])), background=False)

        async def main() -> None:
            before = BACKEND in sys.modules
            async with app.router.lifespan_context(app):
                print(before, BACKEND in sys.modules)

        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True,
                         capture_output=True, text=True).stdout
    assert out.split() == ["False", "True"]
