"""Delivery inside ``rqs serve``: the background loop, woken by ingest rather than polling."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from rqs.service.delivery import DeliveryWorker, RunStats
from rqs.service.delivery_options import DeliveryOptions
from rqs.storage.sqlite import SqliteStorage
from tests.delivery.conftest import Env, delivery_settings, live_server
from tests.delivery.receiver import Receiver


def test_ingest_wakes_the_loop_in_serve(tmp_path: Path, receiver: Receiver) -> None:
    # A 30 s poll interval: only the ingest wake-up can deliver within the test's bounds.
    settings = delivery_settings(tmp_path, delivery_poll_interval=30.0)
    with live_server(settings) as server:
        env = Env(server, receiver, server.client())
        env.callback("cb", batch_size=50)
        env.subscribe("sub", "cb")
        latencies = []
        for n in range(1, 6):
            started = time.monotonic()
            env.ingest(10)
            assert receiver.wait_for(lambda n=n: len(receiver.riids("cb")) == 10 * n, 5)
            latencies.append(time.monotonic() - started)
        assert receiver.riids("cb") == [str(i) for i in range(1, 51)]
        assert max(latencies) < 1.0, latencies


def test_pausing_stops_a_lingering_lane_at_once(tmp_path: Path, receiver: Receiver) -> None:
    settings = delivery_settings(tmp_path, delivery_poll_interval=30.0)
    with live_server(settings) as server:
        env = Env(server, receiver, server.client())
        env.callback("cb")
        env.subscribe("sub", "cb")
        env.ingest(1)
        assert receiver.wait_for(lambda: len(receiver.riids("cb")) == 1, 5)
        # The lane now lingers, held, waiting for events; pausing must still hold it back.
        assert env.api.put("/v1/subscriptions/sub", json={"status": "PAUSED"}).status_code == 200
        env.ingest(2)
        assert not receiver.wait_for(lambda: len(receiver.riids("cb")) > 1, 0.5)
        assert env.api.put("/v1/subscriptions/sub", json={"status": "ACTIVE"}).status_code == 200
        assert receiver.wait_for(lambda: len(receiver.riids("cb")) == 3, 5)
        assert receiver.riids("cb") == ["1", "2", "3"]


async def test_ingest_does_not_wake_the_loop_while_nothing_is_subscribed(
        tmp_path: Path) -> None:
    # Each wake-up is a pass with two store reads; with no active subscription, ingest
    # skips them until the next poll, and API changes still wake the loop at once.
    storage = SqliteStorage(delivery_settings(tmp_path))
    await storage.open()
    worker = DeliveryWorker(storage, DeliveryOptions(poll_interval=30.0, allow_private=True))
    try:
        # The loop's state as run_forever sets it up, driven here one step at a time.
        worker._loop, worker._wake = asyncio.get_running_loop(), asyncio.Event()
        worker.wake("default")
        assert worker.generation == 1, "before any look, ingest wakes the loop"
        assert await worker.run_once() == RunStats(), "a pass that finds nothing subscribed"
        worker.wake("default")
        assert worker.generation == 1, "ingest no longer wakes it"
        worker.changed("default")
        assert worker.generation == 2, "an API change does"
        worker.wake("default")
        assert worker.generation == 3, "and ingest does again until the next look"
    finally:
        await worker.close()
        await storage.close()
