"""The client commands of ``rqs`` (ingest, poll, stats, demo) against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rqs import client as client_module
from rqs.cli import client_commands
from rqs.cli.demo import demo_events
from rqs.cli.main import cli
from rqs.client import Client
from rqs.domain import catalog
from rqs.settings import Settings
from tests.support import Server, running_server, samples
from tests.test_client import free_port_url

client_commands.register(cli)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(Settings(data_dir=tmp_path / "data")) as srv:
        yield srv


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, token=server.admin.token) as c:
        yield c


def run(server: Server, *args: str, input: str | bytes | None = None) -> Result:
    """Run ``rqs`` with the server's address and token in the environment."""
    env = {"RQS_URL": server.url, "RQS_TOKEN": server.admin.token}
    return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)


def ndjson_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def indexes(events: Sequence[dict[str, object]]) -> list[object]:
    return [e["index"] for e in events]


# --- ingest -------------------------------------------------------------------------------


def test_ingest_json_array_file_in_batches(server: Server, client: Client,
                                           tmp_path: Path) -> None:
    path = tmp_path / "samples.json"
    path.write_text(json.dumps(samples(), indent=2))
    r = run(server, "ingest", str(path), "--batch-size", "10")
    assert r.exit_code == 0, r.output
    n = len(samples())
    assert f"accepted {n} events: {n} stored, 0 duplicates; indexes 1..{n}" in r.stdout
    assert "events/s" in r.stdout
    assert [e.payload for e in client.iter_events()] == samples()


def test_ingest_ndjson_file_streams_in_order(server: Server, client: Client,
                                             tmp_path: Path) -> None:
    items = [{"type": "SMS_INBOUND", "id": f"mo-{i}", "data": {"message": "STOP", "n": i}}
             for i in range(23)]
    path = tmp_path / "events.ndjson"
    path.write_text("\n\n".join(json.dumps(x) for x in items) + "\n")
    r = run(server, "ingest", str(path), "--batch-size", "4", "--json")
    assert r.exit_code == 0, r.output
    totals = json.loads(r.stdout)
    assert totals | {"seconds": 0, "events_per_second": 0} == {
        "accepted": 23, "stored": 23, "duplicates": 0, "first_index": 1, "last_index": 23,
        "seconds": 0, "events_per_second": 0}
    assert [e.id for e in client.iter_events()] == [f"mo-{i}" for i in range(23)]
    again = run(server, "ingest", str(path))
    assert "23 events: 0 stored, 23 duplicates" in again.stdout


def test_ingest_from_stdin(server: Server, client: Client) -> None:
    body = "\n".join(json.dumps(p) for p in samples()[:5])
    r = run(server, "ingest", "-", input=body)
    assert r.exit_code == 0, r.output
    assert client.stats().retained == 5


def test_ingest_rejection_names_the_file_line(server: Server, client: Client,
                                              tmp_path: Path) -> None:
    lines = [json.dumps({"type": "CONVERSION", "data": {}})] * 4
    lines.insert(4, json.dumps({"type": "CONVERSION"}))  # file line 5: no data
    path = tmp_path / "bad.ndjson"
    path.write_text("\n".join(lines) + "\n")
    r = run(server, "ingest", str(path), "--batch-size", "2")
    assert r.exit_code == 1
    assert "line 5: data: missing" in r.stderr
    assert "4 events of earlier batches were accepted" in r.stderr
    assert client.stats().retained == 4


def test_ingest_invalid_json_line_stops_before_sending(server: Server, client: Client,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "broken.ndjson"
    path.write_text('{"type": "A", "data": {}}\n{"type": oops}\n')
    r = run(server, "ingest", str(path))
    assert r.exit_code == 1 and "line 2 is not valid JSON" in r.stderr
    assert client.stats().retained == 0
    empty = tmp_path / "empty.json"
    empty.write_text("\n  \n")
    assert "the input is empty" in run(server, "ingest", str(empty)).stderr


# --- poll ---------------------------------------------------------------------------------


def test_poll_one_page_as_ndjson_with_a_hint_for_more(server: Server, client: Client) -> None:
    client.ingest(samples())
    r = run(server, "poll", "--limit", "5")
    assert r.exit_code == 0, r.output
    assert indexes(ndjson_lines(r.stdout)) == [1, 2, 3, 4, 5]
    assert "--after 5" in r.stderr
    sms = ndjson_lines(run(server, "poll", "--channel", "Sms", "--type", "SMS_OPT_OUT").stdout)
    assert [(e["type"], e["channel"]) for e in sms] == [("SMS_OPT_OUT", "Sms")]
    rest = run(server, "poll", "--after", "25")
    assert indexes(ndjson_lines(rest.stdout)) == [26, 27, 28] and rest.stderr == ""
    assert ndjson_lines(run(server, "poll", "--campaign", "SMS_Fail").stdout)[0]["index"] == 16


def test_poll_json_and_table_formats(server: Server, client: Client) -> None:
    client.ingest(samples())
    page = json.loads(run(server, "poll", "--format", "json", "--limit", "2").stdout)
    assert indexes(page["events"]) == [1, 2]
    assert (page["next_index"], page["has_more"], page["oldest_index"]) == (3, True, 1)
    table = run(server, "poll", "--format", "table", "--type", "EMAIL_CLICKED").stdout
    header, row = table.splitlines()
    assert header.split() == ["INDEX", "RECEIVED", "TYPE", "CHANNEL", "CAMPAIGN", "DETAIL"]
    assert row.split()[0] == "3" and "EMAIL_CLICKED" in row and "Summer_Campaign" in row


def test_poll_all_pages_and_time_bounds(server: Server, client: Client) -> None:
    client.ingest(samples() * 2)
    every = ndjson_lines(run(server, "poll", "--all", "--limit", "5").stdout)
    assert indexes(every) == list(range(1, 57))
    capped = ndjson_lines(run(server, "poll", "--all", "--limit", "5", "--max-events",
                              "12").stdout)
    assert indexes(capped) == list(range(1, 13))
    future = run(server, "poll", "--since", "2999-01-01T00:00:00Z")
    assert future.exit_code == 0 and future.stdout == ""
    bad = run(server, "poll", "--since", "yesterday")
    assert bad.exit_code == 1 and "since" in bad.stderr


def test_poll_follow_tails_until_interrupted(server: Server, client: Client,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    client.ingest(samples()[:3])
    polls: list[float] = []

    def ctrl_c_on_second_idle_poll(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 1:
            client.ingest(samples()[3:5])  # arrives while the tail is waiting
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(client_module, "_sleep", ctrl_c_on_second_idle_poll)
    r = run(server, "poll", "--follow", "--after", "0", "--interval", "0.5")
    assert r.exit_code == 0, r.output
    assert indexes(ndjson_lines(r.stdout)) == [1, 2, 3, 4, 5]
    assert polls == [0.5, 0.5]


def test_poll_follow_from_now_with_max_events(server: Server, client: Client,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    client.ingest(samples()[:3])
    monkeypatch.setattr(client_module, "_sleep", lambda s: client.ingest(samples()[3:4]))
    r = run(server, "poll", "-f", "--max-events", "2", "--format", "table")
    assert r.exit_code == 0, r.output
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == ["4", "5"]


def test_poll_past_retention_exits_3_with_the_oldest_index(server: Server,
                                                           client: Client) -> None:
    client.ingest(samples())
    server.clock.advance(31 * 86400)
    client.purge()
    client.ingest([{"type": "CONVERSION", "data": {}}])
    for args in (["--after", "3"], ["--after", "3", "--all"], ["--after", "0", "--follow"]):
        r = run(server, "poll", *args)
        assert r.exit_code == 3, (args, r.output)
        assert "oldest retained index is 29" in r.stderr and "--after 28" in r.stderr
    assert indexes(ndjson_lines(run(server, "poll", "--after", "28").stdout)) == [29]


def test_poll_usage_errors(server: Server) -> None:
    assert run(server, "poll", "--format", "json", "--follow").exit_code == 2
    assert run(server, "poll", "--follow", "--until", "1").exit_code == 2
    assert run(server, "poll", "--limit", "0").exit_code == 2


# --- stats, auth, connection --------------------------------------------------------------


def test_stats_table_and_json(server: Server, client: Client) -> None:
    client.ingest(samples())
    table = run(server, "stats")
    assert table.exit_code == 0, table.output
    assert "retained events   28" in table.stdout and "indexes           1..28" in table.stdout
    assert "retention         30 days" in table.stdout
    row = next(line for line in table.stdout.splitlines() if line.startswith("SMS_RECEIPT"))
    assert row.split() == ["SMS_RECEIPT", "Sms", "1", "1"]
    assert any(line.split()[:2] == ["Email", "8"] for line in table.stdout.splitlines())
    body = json.loads(run(server, "stats", "--json").stdout)
    assert body["retained"] == 28 and body["oldest_index"] == 1 and "retention_horizon" in body


def test_consumers_table_and_json(server: Server, client: Client) -> None:
    empty = run(server, "consumers")
    assert empty.exit_code == 0, empty.output
    assert "(no server-managed cursors" in empty.stdout and "(no subscriptions)" in empty.stdout
    client.ingest(samples())
    api = server.client()
    polled = api.get("/api/rest/v19/async/pollByType", params={"type": "linkClick", "limit": 1},
                     headers={"accept": "application/json"})
    assert polled.status_code == 200 and len(polled.json()) == 1
    # A public address literal: nothing is sent, delivery does not run in this server.
    made = api.post("/v1/callbacks", json={"name": "crm", "url": "http://93.184.216.34/hook"})
    assert made.status_code == 201, made.text
    sub = api.post("/v1/subscriptions", json={"name": "bounces", "callback": "crm",
                                              "event_types": ["EMAIL_BOUNCED"]})
    assert sub.status_code == 201, sub.text

    table = run(server, "consumers")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == "domain default, newest index 28"
    cursor = next(line.split() for line in lines if line.startswith("type:linkClick"))
    position = int(cursor[2])
    assert cursor[1] == server.admin.key.id and cursor[3] == str(28 - position)
    assert cursor[4:6] == ["1", "0"]
    subscription = next(line.split() for line in lines if line.startswith("bounces"))
    assert subscription[:5] == ["bounces", "crm", "ACTIVE", "28", "0"]  # starts at "now"
    body = json.loads(run(server, "consumers", "--json").stdout)
    assert body["newest_index"] == 28
    assert [(c["cursor"], c["polled"]) for c in body["cursors"]] == [("type:linkClick", 1)]
    assert client.consumers().subscriptions[0].pending is None


def test_bad_token_and_unreachable_server(server: Server) -> None:
    runner = CliRunner()
    denied = runner.invoke(cli, ["stats", "--url", server.url, "--token", "rk_x.nope"])
    assert denied.exit_code == 1
    assert "HTTP 403" in denied.stderr and "RQS_TOKEN" in denied.stderr
    missing = runner.invoke(cli, ["stats", "--url", server.url], env={"RQS_TOKEN": None})
    assert missing.exit_code == 1 and "HTTP 401" in missing.stderr
    gone = runner.invoke(cli, ["stats", "--url", free_port_url()], env={"RQS_TOKEN": "a.b"})
    assert gone.exit_code == 1 and "is `rqs serve` running" in gone.stderr


# --- demo ---------------------------------------------------------------------------------


def test_demo_sends_every_catalog_type(server: Server, client: Client) -> None:
    r = run(server, "demo", "--events", "300", "--seed", "7")
    assert r.exit_code == 0, r.output
    assert "sent 300 events of 42 types" in r.stdout
    assert "pollByType?type=linkClick&limit=10" in r.stdout and "rqs poll --follow" in r.stdout
    stats = client.stats()
    assert stats.retained == 300
    assert {t.type for t in stats.by_type} == {t.name for t in catalog.CATALOG}
    assert all(t.catalogued for t in stats.by_type)
    inbound = list(client.iter_events(type="SMS_INBOUND"))
    assert all(e.payload["message"] and e.payload["recipient"].startswith("US - ")
               for e in inbound)
    riids = {e.payload.get("riid") for e in client.iter_events()}
    assert len(riids) > 50  # many people, not one sample repeated


def test_demo_with_rate_and_reproducible_traffic(server: Server, client: Client) -> None:
    r = run(server, "demo", "--events", "60", "--rate", "1000000", "--seed", "1")
    assert r.exit_code == 0, r.output
    assert client.stats().retained == 60
    first = list(demo_events(50, seed=3))
    second = list(demo_events(50, seed=3))
    strip = [{k: v for k, v in e.items() if k != "occurred_at"} for e in first]
    assert strip == [{k: v for k, v in e.items() if k != "occurred_at"} for e in second]
    stop = next(e for e in demo_events(5000, seed=5)
                if e.get("type") == "SMS_INBOUND" and e["data"]["message"] == "STOP")
    assert stop["data"]["recipient"].startswith("US - ")
