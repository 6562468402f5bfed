"""Delivery inside ``rqs serve``: the background loop, woken by ingest rather than polling."""

from __future__ import annotations

import time
from pathlib import Path

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
