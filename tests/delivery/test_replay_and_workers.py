"""Replays, several workers at once, lease takeover, auto-disable, secret rotation, retention."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from rqs.adapters.webhook_sender import SendResult
from rqs.service.delivery import DeliveryWorker
from rqs.service.delivery_options import options_from
from rqs.storage.delivery_base import DeliveryStore, LaneKey, delivery_store_for
from tests.delivery.conftest import BACKENDS, Env, NoJitter, delivery_settings
from tests.delivery.receiver import Reply


@pytest.mark.parametrize("settings", BACKENDS, indirect=True)
async def test_replay_by_index_resends_the_range_as_new_messages(env: Env) -> None:
    env.callback("cb", batch_size=2)
    env.subscribe("sub", "cb", start="oldest")
    env.ingest(8)
    await env.deliver()
    first_ids = {h.msg_id for h in env.receiver.ok("cb")}
    r = env.api.post("/v1/subscriptions/sub/replays", json={"from_index": 3,
                                                             "through_index": 7})
    assert r.status_code == 202, r.text
    replay = r.json()
    assert (replay["from_index"], replay["through_index"], replay["state"]) == (3, 7, "running")
    await env.deliver()
    assert env.receiver.riids("cb")[8:] == ["3", "4", "5", "6", "7"]
    assert not first_ids & {h.msg_id for h in env.receiver.ok("cb")[4:]}
    done = env.get(f"/v1/replays/{replay['id']}")
    assert (done["state"], done["delivered"]) == ("done", 5)
    assert [x["state"] for x in env.get("/v1/subscriptions/sub/replays")["replays"]] == ["done"]


@pytest.mark.parametrize("settings", BACKENDS, indirect=True)
async def test_replay_by_time_range_covers_the_whole_range(env: Env) -> None:
    env.callback("cb", batch_size=20)
    env.subscribe("sub", "cb", start="oldest")
    env.ingest(2)
    middle = env.ingest(600)  # more than one scan (512): the replay is a job, not a page
    env.ingest(2)
    received = [env.get(f"/v1/events/{i}")["received_at"] for i in (2, 3, 602, 603)]
    assert received[0] < received[1] and received[2] < received[3], received
    await env.deliver()
    r = env.api.post("/v1/subscriptions/sub/replays",
                     json={"since": received[1], "until": received[3]})
    assert r.status_code == 202, r.text
    await env.deliver()
    assert env.receiver.riids("cb")[604:] == middle


async def test_a_replay_needs_a_start(env: Env) -> None:
    env.subscribe("sub", env.callback("cb")["name"])
    r = env.api.post("/v1/subscriptions/sub/replays", json={})
    assert r.status_code == 400


@pytest.mark.parametrize("settings", BACKENDS, indirect=True)
async def test_two_workers_at_once_never_send_a_batch_twice(env: Env) -> None:
    for i in range(6):
        env.callback(f"cb{i}", batch_size=3)
        env.subscribe(f"sub{i}", f"cb{i}")
        env.receiver.set_default(f"cb{i}", Reply(delay=0.002))
    sent = env.ingest(40)
    a, b = env.worker(), env.worker()
    sa, sb = await asyncio.gather(a.run_once(env.clock.now), b.run_once(env.clock.now))
    assert sa.lanes + sb.lanes == 6  # every lane went to exactly one worker
    for i in range(6):
        assert env.receiver.riids(f"cb{i}") == sent
        assert env.receiver.max_in_flight[f"cb{i}"] == 1
        hits = env.receiver.tried(f"cb{i}")
        assert len({h.msg_id for h in hits}) == len(hits) == 14


class Hanging:
    """A sender whose requests never answer: the worker holding the lane 'crashes'."""

    def __init__(self) -> None:
        self.msg_ids: list[str] = []
        self.started = asyncio.Event()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        self.msg_ids.append(headers["webhook-id"])
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def close(self) -> None:
        pass


class Dies:
    """The store as a worker that dies sees it: nothing it would write on the way out lands."""

    def __init__(self, store: DeliveryStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def release(self, lane: LaneKey, owner: str) -> None:
        pass


@pytest.mark.parametrize("settings", BACKENDS, indirect=True)
async def test_a_crashed_workers_lane_is_taken_over_after_its_lease(env: Env) -> None:
    env.callback("cb", batch_size=1)
    env.subscribe("sub", "cb")
    env.ingest(3)
    hanging = Hanging()
    crashed = env.worker(sender=hanging, store=Dies(delivery_store_for(env.storage)))
    task = asyncio.create_task(crashed.run_once(env.clock.now))
    await asyncio.wait_for(hanging.started.wait(), 10)
    task.cancel()
    other = env.worker()
    assert (await other.run_once(env.clock.now)).requests == 0  # still leased
    env.clock.advance(crashed.options.lease_seconds + 1)
    assert (await other.run_once(env.clock.now)).succeeded == 3
    assert env.receiver.riids("cb") == ["1", "2", "3"]
    assert env.receiver.ok("cb")[0].msg_id == hanging.msg_ids[0]  # recorded before sending
    opened = env.get("/v1/subscriptions/sub/deliveries")["deliveries"]
    assert [x["state"] for x in opened] == ["succeeded"] * 3
    assert [x["first_index"] for x in opened] == [3, 2, 1]


async def test_a_worker_shutting_down_hands_its_lanes_back_at_once(env: Env) -> None:
    env.callback("cb", batch_size=1)
    env.subscribe("sub", "cb")
    env.ingest(2)
    hanging = Hanging()
    stopping = env.worker(sender=hanging)
    task = asyncio.create_task(stopping.run_once(env.clock.now))
    await asyncio.wait_for(hanging.started.wait(), 10)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert (await env.worker().run_once(env.clock.now)).succeeded == 2  # no lease to wait out
    assert env.receiver.ok("cb")[0].msg_id == hanging.msg_ids[0]


@pytest.mark.parametrize("settings", [{"retry_schedule": (1, 2, 5, 10),
                                       "callback_disable_after": 10.0}],
                         indirect=True)
async def test_callback_failing_for_too_long_is_disabled(env: Env) -> None:
    env.callback("cb")
    env.subscribe("sub", "cb")
    env.receiver.set_default("cb", Reply(503))
    env.ingest(1)
    for delay in (0, 1, 2, 5):  # failing since t0; the last is 8 s later
        env.clock.advance(delay)
        assert (await env.deliver()).requests == 1
    assert env.get("/v1/callbacks/cb")["status"] == "ACTIVE"
    env.clock.advance(10)
    await env.deliver()  # 18 s of failures: disabled
    cb = env.get("/v1/callbacks/cb")
    assert cb["status"] == "DISABLED"
    assert "every attempt failed since" in cb["status_reason"]
    assert "HTTP 503" in cb["status_reason"]
    env.receiver.set_default("cb", None)
    env.api.put("/v1/callbacks/cb", json={"status": "ACTIVE"})
    assert (await env.deliver()).succeeded == 1
    assert env.get("/v1/callbacks/cb")["failing_since"] is None


async def test_rotated_secrets_both_sign_during_the_grace_period(env: Env) -> None:
    old = env.callback("cb")["signing_secret"]
    env.subscribe("sub", "cb")
    r = env.api.post("/v1/callbacks/cb/secrets", json={})
    assert r.status_code == 200
    new = r.json()["signing_secret"]
    assert new != old and new.startswith("whsec_")
    env.receiver.accept("cb", [old, new], "hook", "s3cret")  # each must verify on its own
    env.ingest(1)
    await env.deliver()
    assert len(env.receiver.ok("cb")) == 1
    secrets = env.get("/v1/callbacks/cb/secrets")["signing_secrets"]
    assert [s["secret"] for s in secrets] == [new, old] and secrets[1]["expires_at"]
    env.clock.advance(86_401)  # the old one expired: only the new one signs
    env.receiver.accept("cb", [new], "hook", "s3cret")
    env.ingest(1)
    await env.deliver()
    sig = env.receiver.ok("cb")[-1]
    assert sig.events[0]["riid"] == "2"


async def test_attempts_and_finished_batches_are_purged_with_retention(env: Env) -> None:
    env.callback("cb")
    env.subscribe("sub", "cb")
    env.ingest(1)
    await env.deliver()
    worker = env.default_worker
    assert await worker.purge() == 0
    env.clock.advance(31 * 86_400)
    assert await worker.purge() == 2  # one attempt, one delivery
    assert env.get("/v1/subscriptions/sub/deliveries")["deliveries"] == []


async def test_worker_options_come_from_settings(tmp_path: Path) -> None:
    s = delivery_settings(tmp_path, retry_schedule=(1, 2, 5),
                          callback_disable_after=60.0, delivery_timeout=3.0)
    o = options_from(s)
    assert (o.schedule, o.disable_after, o.request_timeout) == ((1, 2, 5), 60, 3)
    w = DeliveryWorker(None, o, rng=NoJitter())  # type: ignore[arg-type]
    await w.close()
