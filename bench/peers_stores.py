"""The stores `bench.peers` plays the workload against: rqs over HTTP, NATS JetStream, Redis.

Every store gets the same four operations, driven from one asyncio process (uvloop):

* ``ingest``: the workload in batches of ``plan.batch`` from ``plan.clients`` concurrent
  clients, each with its own connection; a batch counts when the store acknowledged all of it.
* ``type``: ``plan.type_read`` events of one type (EMAIL_CLICKED), from the start of the
  store's order (rqs index, JetStream stream sequence, Redis stream ID), in batches of
  ``plan.page``.
* ``range``: every event received inside a time window (the middle of the ingest; see
  ``Plan.window``), in batches of ``plan.page``.
* ``tail``: every event after the middle of the store, in batches of ``plan.page``.

No reader parses the events: each batch is received whole as bytes (rqs: the HTTP body,
whose trailer gives ``next_index``; NATS: the message objects nats-py builds; Redis: the
reply redis-py/hiredis builds), so the client's JSON decoding is not part of any figure.
A batch's time runs from its request until all of it is received; what the reader does
with it then (rqs: counting the events in the body and finding ``next_index``; Redis:
taking the last entry's ID) is outside it, as no store does that work.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

PAGE_TAIL = re.compile(rb'"next_index":(\d+),"has_more":(true|false)')
TYPE = "EMAIL_CLICKED"
MAPP_TYPE = "linkClick"  # Mapp's name for EMAIL_CLICKED in pollByType


@dataclass
class Plan:
    n: int
    batch: int
    clients: int
    page: int
    type_read: int
    bodies: list[bytes]  # JSON array bodies, for rqs
    msgs: list[list[tuple[str, bytes]]]  # (type, one event's JSON) per batch, for the peers
    window: tuple[float, float] = (0.425, 0.575)  # fractions of the ingest's wall-clock span


@dataclass
class Op:
    events: int = 0
    seconds: float = 0.0
    lat: list[float] = field(default_factory=list)
    note: str = ""
    client_cpu: float = 0.0  # CPU seconds of the load generator (this process)
    server_cpu: float = 0.0  # CPU seconds of the store's server processes

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class Ingested:
    op: Op
    t0: float  # wall clock (time.time()) when the first batch was sent
    t1: float  # ... and when the last acknowledgement arrived

    def at(self, fraction: float) -> float:
        return self.t0 + fraction * (self.t1 - self.t0)


async def drive(plan: Plan, workers: list[Callable[[int], Awaitable[None]]]) -> Ingested:
    """Run the batches through ``workers`` (one per client), timing each batch."""
    todo = list(range(len(plan.msgs) - 1, -1, -1))
    lat: list[float] = []

    async def loop(send: Callable[[int], Awaitable[None]]) -> None:
        while todo:
            i = todo.pop()
            t = time.perf_counter()
            await send(i)
            lat.append(time.perf_counter() - t)

    wall0, t0 = time.time(), time.perf_counter()
    await asyncio.gather(*(loop(w) for w in workers))
    elapsed = time.perf_counter() - t0
    return Ingested(Op(plan.n, elapsed, lat), wall0, wall0 + elapsed)


async def timed_get(session: aiohttp.ClientSession, op: Op, url: str, headers: dict[str, str],
                    params: dict[str, str] | None = None) -> bytes:
    """The whole body of a 200 to GET ``url``; the time until it is all in goes to ``op``."""
    t = time.perf_counter()
    async with session.get(url, params=params, headers=headers) as r:
        body = await r.read()
    op.lat.append(time.perf_counter() - t)
    op.seconds += op.lat[-1]
    if r.status != 200:
        raise RuntimeError(f"GET {url} answered {r.status}: {body[:300]!r}")
    return body


# --- rqs over HTTP -------------------------------------------------------------------------


class Rqs:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"authorization": f"Bearer {token}"}

    async def ingest(self, plan: Plan) -> Ingested:
        headers = {**self.headers, "content-type": "application/json"}
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=plan.clients)
        ) as session:

            async def send(i: int) -> None:
                async with session.post(self.url + "/v1/events", data=plan.bodies[i],
                                        headers=headers) as r:
                    body = await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"rqs ingest answered {r.status}: {body[:300]!r}")

            return await drive(plan, [send] * plan.clients)

    async def pages(self, params: dict[str, str], after: int, want: int | None,
                     page: int) -> Op:
        """GET /v1/events page by page from ``after`` until ``want`` events or the end."""
        op = Op()
        async with aiohttp.ClientSession() as session:
            while want is None or op.events < want:
                limit = page if want is None else min(page, want - op.events)
                q = {**params, "after": str(after), "limit": str(limit)}
                body = await timed_get(session, op, self.url + "/v1/events", self.headers, q)
                # Counted once the batch is in, as the Redis reader takes its next ID.
                op.events += body.count(b'{"index":')
                m = PAGE_TAIL.search(body, max(0, len(body) - 200))
                if m is None:
                    raise RuntimeError(f"no next_index in {body[-200:]!r}")
                after = int(m.group(1)) - 1
                if m.group(2) == b"false":
                    break
        return op

    async def read_type(self, plan: Plan) -> Op:
        return await self.pages({"type": TYPE}, 0, plan.type_read, plan.page)

    async def read_range(self, plan: Plan, since: float, until: float) -> Op:
        return await self.pages({"since": f"{since:.6f}", "until": f"{until:.6f}"}, 0, None,
                                 plan.page)

    async def read_tail(self, plan: Plan) -> Op:
        return await self.pages({}, plan.n // 2, None, plan.page)

    # The Mapp-compatible calls, for the record (not part of the peer comparison).

    async def _reader(self, session: aiohttp.ClientSession) -> str:
        async with session.post(self.url + "/v1/keys", json={"name": "peers", "scope": "read"},
                                headers=self.headers) as r:
            key = await r.json()
        return "Basic " + base64.b64encode(f"{key['id']}:{key['secret']}".encode()).decode()

    async def mapp_by_type(self, plan: Plan) -> Op:
        op = Op()
        async with aiohttp.ClientSession() as session:
            auth = {"authorization": await self._reader(session)}
            url = (f"{self.url}/api/rest/v19/async/pollByType?type={MAPP_TYPE}"
                   f"&limit={plan.page}")
            while op.events < plan.type_read:
                got = (await timed_get(session, op, url, auth)).count(b'{"queueId":')
                op.events += got
                if got == 0:
                    break
        return op

    async def mapp_by_range(self, plan: Plan, since: float, until: float) -> Op:
        """pollByRange takes whole seconds and has no paging: one call, limit 100,000."""
        op = Op(note=f"from={int(since)} to={int(until) + 1} (whole seconds)")
        url = (f"{self.url}/api/rest/v19/async/pollByRange?type=allMessages"
               f"&from={int(since)}&to={int(until) + 1}&limit=100000")
        async with aiohttp.ClientSession() as session:
            body = await timed_get(session, op, url, self.headers)
            op.events += body.count(b'{"queueId":')
        return op


# --- NATS JetStream ------------------------------------------------------------------------

STREAM = "RQS_BENCH_PEERS"
SUBJECT = "rqsbench"


def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Nats:
    def __init__(self, url: str) -> None:
        self.url = url
        self.last_seq = 0

    async def _connect(self):  # type: ignore[no-untyped-def]
        import nats

        return await nats.connect(self.url, max_reconnect_attempts=0)

    async def reset(self) -> None:
        from nats.js.api import StorageType
        from nats.js.errors import NotFoundError

        nc = await self._connect()
        js = nc.jetstream()
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(STREAM)
        await js.add_stream(name=STREAM, subjects=[f"{SUBJECT}.>"], storage=StorageType.FILE,
                            max_age=30 * 86400)
        await nc.close()

    async def drop(self) -> None:
        nc = await self._connect()
        try:
            await nc.jetstream().delete_stream(STREAM)
        finally:
            await nc.close()

    async def ingest(self, plan: Plan) -> Ingested:
        conns = [await self._connect() for _ in range(plan.clients)]
        try:
            def worker(nc) -> Callable[[int], Awaitable[None]]:  # type: ignore[no-untyped-def]
                js = nc.jetstream(publish_async_max_pending=plan.batch * 2)

                async def send(i: int) -> None:
                    futs = [await js.publish_async(f"{SUBJECT}.{t}", payload)
                            for t, payload in plan.msgs[i]]
                    acks = await asyncio.gather(*futs)
                    self.last_seq = max(self.last_seq, acks[-1].seq)

                return send

            return await drive(plan, [worker(nc) for nc in conns])
        finally:
            for nc in conns:
                await nc.close()

    async def _read(self, subject: str, start: dict[str, object], want: int, page: int) -> Op:
        """An ordered push consumer (nats-py's fastest reader: its pull ``fetch`` delivered
        about a quarter of the rate here); a "batch" is each run of ``page`` messages, timed
        from the previous one (the first from the subscribe call)."""
        from nats.js.api import ConsumerConfig

        op = Op()
        nc = await self._connect()
        try:
            js = nc.jetstream()
            done = asyncio.Event()
            got = 0
            mark = time.perf_counter()

            async def cb(msg) -> None:  # type: ignore[no-untyped-def]
                nonlocal got, mark
                got += 1
                if got % page == 0 or got == want:
                    now = time.perf_counter()
                    op.lat.append(now - mark)
                    mark = now
                    if got >= want:
                        done.set()

            t0 = mark
            sub = await js.subscribe(subject, cb=cb, ordered_consumer=True,
                                     config=ConsumerConfig(**start))  # type: ignore[arg-type]
            if want > 0:
                await asyncio.wait_for(done.wait(), timeout=900)
            op.seconds = time.perf_counter() - t0
            op.events = min(got, want)
            await sub.unsubscribe()
        finally:
            await nc.close()
        return op

    async def read_type(self, plan: Plan) -> Op:
        from nats.js.api import DeliverPolicy

        return await self._read(f"{SUBJECT}.{TYPE}", {"deliver_policy": DeliverPolicy.ALL},
                                plan.type_read, plan.page)

    async def _seq_at(self, t: float) -> int:
        """The first stream sequence stored at or after ``t`` (a start-time consumer)."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        nc = await self._connect()
        try:
            sub = await nc.jetstream().pull_subscribe(
                f"{SUBJECT}.>", stream=STREAM, config=ConsumerConfig(
                    ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_TIME,
                    opt_start_time=rfc3339(t), inactive_threshold=60))
            msgs = await sub.fetch(1, timeout=5)
            await sub.unsubscribe()
            return int(msgs[0].metadata.sequence.stream)
        finally:
            await nc.close()

    async def read_range(self, plan: Plan, since: float, until: float) -> Op:
        from nats.js.api import DeliverPolicy

        # The window's end as a sequence, found by a start-time consumer; that probe's time
        # counts too, as a client has to do it.
        t = time.perf_counter()
        first, end = await self._seq_at(since), await self._seq_at(until)
        probe = time.perf_counter() - t
        op = await self._read(f"{SUBJECT}.>", {"deliver_policy": DeliverPolicy.BY_START_TIME,
                                               "opt_start_time": rfc3339(since)},
                              end - first, plan.page)
        op.seconds += probe
        return op

    async def read_tail(self, plan: Plan) -> Op:
        from nats.js.api import DeliverPolicy

        mid = plan.n // 2
        return await self._read(f"{SUBJECT}.>", {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE,
                                                 "opt_start_seq": mid + 1},
                                self.last_seq - mid, plan.page)


# --- Redis Streams -------------------------------------------------------------------------

PREFIX = "rqsbench:"


class Redis:
    def __init__(self, url: str, types: list[str]) -> None:
        self.url = url
        self.keys = [PREFIX + t for t in types]
        self.mid_id = "0"

    def client(self):  # type: ignore[no-untyped-def]
        import redis.asyncio as redis

        return redis.Redis.from_url(self.url)

    async def drop(self) -> None:
        r = self.client()
        await r.delete(*self.keys)
        await r.aclose()

    async def ingest(self, plan: Plan) -> Ingested:
        clients = [self.client() for _ in range(plan.clients)]
        middle = len(plan.msgs) // 2
        try:
            def worker(r) -> Callable[[int], Awaitable[None]]:  # type: ignore[no-untyped-def]
                async def send(i: int) -> None:
                    pipe = r.pipeline(transaction=False)
                    for t, payload in plan.msgs[i]:
                        pipe.xadd(PREFIX + t, {"d": payload})
                    ids = await pipe.execute()
                    if i == middle:
                        self.mid_id = ids[0].decode()

                return send

            return await drive(plan, [worker(r) for r in clients])
        finally:
            for r in clients:
                await r.aclose()

    async def _ranges(self, keys: list[str], start: str, end: str, want: int | None,
                      page: int) -> Op:
        """XRANGE each stream from ``start`` to ``end`` in calls of up to ``page`` entries."""
        op = Op()
        r = self.client()
        try:
            for key in keys:
                lo = start
                while want is None or op.events < want:
                    count = page if want is None else min(page, want - op.events)
                    t = time.perf_counter()
                    got = await r.xrange(key, lo, end, count=count)
                    op.lat.append(time.perf_counter() - t)
                    op.seconds += op.lat[-1]
                    op.events += len(got)
                    if len(got) < count:
                        break
                    lo = "(" + got[-1][0].decode()
        finally:
            await r.aclose()
        return op

    async def read_type(self, plan: Plan) -> Op:
        return await self._ranges([PREFIX + TYPE], "-", "+", plan.type_read, plan.page)

    async def read_range(self, plan: Plan, since: float, until: float) -> Op:
        op = await self._ranges(self.keys, str(int(since * 1000)), str(int(until * 1000) - 1),
                                None, plan.page)
        op.note = "26 streams, one XRANGE series each"
        return op

    async def read_tail(self, plan: Plan) -> Op:
        op = await self._ranges(self.keys, "(" + self.mid_id, "+", None, plan.page)
        op.note = "26 streams, one XRANGE series each"
        return op
