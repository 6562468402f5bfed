"""Push-delivery benchmark: callback requests/s, events/s in batches of 200, and the
ingest-to-callback latency under a steady ingest rate.

    python -m bench.delivery                      # all three, writes docs/benchmarks.md
    python -m bench.delivery --only rps --subs 100 --events 500

The receiver is a separate aiohttp process on 127.0.0.1 that only counts (and, for the
latency run, reads each event's send time). Throughput runs drive ``DeliveryWorker`` in
this process against a pre-filled SQLite store (synchronous=FULL, the default); the
latency run starts ``rqs serve`` and ingests over HTTP at a fixed rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import msgspec
from aiohttp import web

from bench import workload
from bench.common import free_port, machine, percentile, start_server, write_section
from rqs.domain import delivery as d
from rqs.domain.events import parse_batch
from rqs.service.delivery import DeliveryWorker
from rqs.service.delivery_options import DeliveryOptions
from rqs.settings import Settings
from rqs.storage.delivery_base import delivery_store_for
from rqs.storage.sqlite import SqliteStorage

SYNC = os.environ.get("BENCH_SYNC", "FULL")


# --- the receiver process ----------------------------------------------------------------


class _Sent(msgspec.Struct):
    sentAt: float = 0.0


def receiver_main(port: int) -> None:
    import uvloop

    requests = events = 0
    latencies: list[float] = []
    count = msgspec.json.Decoder(list[msgspec.Raw])
    sent = msgspec.json.Decoder(list[_Sent])

    async def hook(request: web.Request) -> web.Response:
        nonlocal requests, events
        body = await request.read()
        requests += 1
        if b'"sentAt"' in body:
            now = time.time()
            items = sent.decode(body)
            latencies.extend(now - i.sentAt for i in items)
            events += len(items)
        else:
            events += len(count.decode(body))
        return web.Response(status=200)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"requests": requests, "events": events,
                                  "latencies": latencies if "lat" in request.query else []})

    async def reset(request: web.Request) -> web.Response:
        nonlocal requests, events
        requests = events = 0
        latencies.clear()
        return web.Response()

    app = web.Application()
    app.router.add_post("/reset", reset)
    app.router.add_post("/{path:.*}", hook)
    app.router.add_get("/stats", stats)
    uvloop.run(web._run_app(app, host="127.0.0.1", port=port, print=None, access_log=None))


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.delivery", "--receiver",
                                      str(self.port)])
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def stats(self, latencies: bool = False) -> dict[str, object]:
        q = "?lat=1" if latencies else ""
        with urllib.request.urlopen(f"{self.url('stats')}{q}", timeout=30) as r:
            found: dict[str, object] = json.loads(r.read())
            return found

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url("reset"), method="POST")).read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# --- throughput: a worker against a pre-filled store ----------------------------------------


async def throughput(rx: Receiver, subs: int, n_events: int, batch: int, data: Path) -> dict[
        str, float]:
    storage = SqliteStorage(Settings(data_dir=data, sqlite_synchronous=SYNC))
    await storage.open()
    store = delivery_store_for(storage)
    try:
        for i in range(subs):
            await store.create_callback(d.Callback(
                "bench", f"cb{i}", rx.url(f"cb{i}"), batch, "user", "pw",
                secrets=(d.Secret(d.generate_secret()),)))
            await store.create_subscription(d.Subscription("bench", f"s{i}", f"cb{i}",
                                                           tuple(workload.TYPES)))
        for body in workload.batches(n_events, 5_000):
            await storage.append("bench", parse_batch(body, "application/json", "bench",
                                                      100_000))
        rx.reset()
        worker = DeliveryWorker(storage, DeliveryOptions(allow_private=True, max_lanes=subs))
        t0, c0 = time.perf_counter(), time.process_time()
        stats = await worker.run_once()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        await worker.close()
        got = rx.stats()
        assert got["requests"] == stats.requests == stats.succeeded, (got, stats)
        assert got["events"] == subs * n_events, got
        print(f"  worker process CPU: {cpu / stats.requests * 1e6:.0f} µs per request, "
              f"{cpu / elapsed:.0%} of one core")
        return {"requests": stats.requests, "events": stats.events, "seconds": elapsed,
                "rps": stats.requests / elapsed, "eps": stats.events / elapsed}
    finally:
        await storage.close()


async def raw_baseline(rx: Receiver, concurrency: int, requests: int) -> float:
    """Plain aiohttp POSTs to the same receiver at the same concurrency: the ceiling."""
    body = json.dumps(workload.events(1)).encode()
    headers = {"content-type": "application/json"}
    left = requests
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def one() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                async with http.post(rx.url("raw"), data=body, headers=headers) as r:
                    await r.read()

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return requests / (time.perf_counter() - t0)


# --- latency: rqs serve, steady ingest over HTTP ---------------------------------------------


async def latency(rx: Receiver, rate: int, per_request: int, seconds: float,
                  data: Path) -> dict[str, float]:
    server = start_server(data, env={"RQS_ALLOW_PRIVATE_CALLBACKS": "1"})
    try:
        auth = {"authorization": f"Bearer {server.token}"}
        async with aiohttp.ClientSession(headers=auth) as http:
            r = await http.post(server.url + "/v1/callbacks", json={
                "name": "cb", "url": rx.url("lat"), "batch_size": 200,
                "basic_auth": {"user_name": "u", "password": "p"}})
            assert r.status == 201, await r.text()
            r = await http.post(server.url + "/v1/subscriptions", json={
                "name": "s", "callback": "cb", "event_types": list(workload.TYPES)})
            assert r.status == 201, await r.text()
            rx.reset()
            total = int(rate * seconds) // per_request * per_request
            rng_events = workload.events(total)
            interval = per_request / rate
            headers = {"content-type": "application/json"}

            async def post(items: list[dict[str, object]]) -> None:
                now = time.time()
                body = json.dumps([{**e, "sentAt": now} for e in items]).encode()
                async with http.post(server.url + "/v1/events", data=body,
                                     headers=headers) as resp:
                    assert resp.status == 200, await resp.text()

            # A steady rate: each request starts on its own schedule, whatever the others do.
            posts = []
            t0 = time.perf_counter()
            sent = 0
            while sent < total:
                due = t0 + (sent // per_request) * interval
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                posts.append(asyncio.create_task(post(rng_events[sent:sent + per_request])))
                sent += per_request
            await asyncio.gather(*posts)
            deadline = time.monotonic() + 10
            while rx.stats()["events"] != sent and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        found = rx.stats(latencies=True)["latencies"]
        assert isinstance(found, list)
        lat = [float(x) * 1000 for x in found]
        assert len(lat) == sent, (len(lat), sent)
        return {"events": sent, "p50": percentile(lat, 50), "p99": percentile(lat, 99),
                "max": max(lat), "rate": sent / seconds}
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    p.add_argument("--only", choices=["rps", "eps", "latency"])
    p.add_argument("--subs", type=int, default=100, help="subscriptions in the rps run")
    p.add_argument("--events", type=int, default=500, help="events per subscription, rps run")
    p.add_argument("--eps-subs", type=int, default=10)
    p.add_argument("--eps-events", type=int, default=100_000)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--per-request", type=int, default=10)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--no-write", action="store_true")
    a = p.parse_args()
    if a.receiver:
        receiver_main(a.receiver)
        return
    import uvloop

    if os.environ.get("BENCH_SWITCH"):
        sys.setswitchinterval(float(os.environ["BENCH_SWITCH"]))
    rx = Receiver()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if a.only in (None, "rps"):
                raw = uvloop.run(raw_baseline(rx, a.subs, 20_000))
                lines.append(f"| baseline: bare aiohttp POSTs, {a.subs} concurrent, same "
                             f"receiver | {raw:,.0f} req/s | 20,000 requests | (ceiling) |")
                print(lines[-1])
                r = uvloop.run(throughput(rx, a.subs, a.events, 1, Path(tmp, "rps")))
                lines.append(f"| callback requests/s, batchSize 1, {a.subs} subscriptions | "
                             f"{r['rps']:,.0f} req/s | {r['requests']:,} requests in "
                             f"{r['seconds']:.1f} s | >= 5,000 |")
                print(lines[-1])
            if a.only in (None, "eps"):
                r = uvloop.run(throughput(rx, a.eps_subs, a.eps_events, 200, Path(tmp, "eps")))
                lines.append(f"| events/s, batchSize 200, {a.eps_subs} subscriptions | "
                             f"{r['eps']:,.0f} events/s ({r['rps']:,.0f} req/s) | "
                             f"{r['events']:,} events in {r['seconds']:.1f} s | >= 200,000 |")
                print(lines[-1])
            if a.only in (None, "latency"):
                r = uvloop.run(latency(rx, a.rate, a.per_request, a.seconds, Path(tmp, "lat")))
                lines.append(f"| ingest to callback, {r['rate']:,.0f} events/s "
                             f"({a.per_request} per request) | p50 {r['p50']:.1f} ms, "
                             f"p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms | "
                             f"{r['events']:,} events | p99 <= 100 ms |")
                print(lines[-1])
    finally:
        rx.stop()
    if not a.no_write and a.only is None:
        write_section("delivery", "\n".join([
            "## Push delivery (bench/delivery.py)", "",
            f"Machine: {machine()}, load average {load} when the run began (the machine is "
            "shared; compare with the bare-aiohttp baseline of the same run). "
            "Receiver: a separate aiohttp process on 127.0.0.1 that "
            "answers 200 at once. Store: SQLite, synchronous=FULL. Every request is signed "
            "(Standard Webhooks) and carries Basic auth; every batch is recorded before it is "
            "sent and every attempt is logged.", "",
            "| measure | result | volume | target |", "|---|---|---|---|", *lines]))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
