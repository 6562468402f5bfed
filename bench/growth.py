"""Growth benchmark: rqs ingest and poll latency as the store grows, and the purge rate.

    python -m bench.growth --target 10000000            # both backends, writes the doc + plot
    python -m bench.growth --target 200000 --step 50000 --backends sqlite --no-docs

For each backend (SQLite in a fresh directory, PostgreSQL in a fresh database dropped
afterwards) one ``rqs serve`` takes the workload (bench/workload.py; a pool of 200,000
distinct events sent round and round, no ids, so nothing is deduplicated) in batches of 1,000
from 4 clients, ``--step`` events at a time. At each checkpoint it records the step's ingest
rate and per-batch p50/p99, then times ``GET /v1/events?after=X&limit=10000`` (five tries,
median) at the head (after=1,000), the middle and the tail (after=newest-10,000), the store's
size on disk and the server's memory. At the end the server is stopped and
``rqs purge --retention-days R`` removes the first step's events (R is computed so that the
cut falls at the end of the first step: standing in for the oldest day) and is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench import workload
from bench.common import (
    DOCS,
    RQS,
    machine,
    percentile,
    psql,
    rss_kb,
    start_server,
    tree_kb,
    write_section,
)
from bench.pg_raw import scratch_database

POOL = 200_000
PLOT = DOCS.parent / "growth.png"


@dataclass
class Checkpoint:
    size: int
    rate: float
    p50: float
    p99: float
    head: float
    middle: float
    tail: float
    disk_mb: float
    rss_mb: float
    load: float


@dataclass
class Run:
    backend: str
    points: list[Checkpoint] = field(default_factory=list)
    purge_removed: int = 0
    purge_seconds: float = 0.0
    purge_overhead: float = 0.0
    peak_mb: float = 0.0
    error: str = ""
    settings: str = ""


async def ingest(url: str, auth: dict[str, str], bodies: list[bytes], start: int, count: int,
                 clients: int) -> tuple[float, list[float], int]:
    """Send ``count`` bodies from the pool (cyclically from ``start``); the last index seen."""
    todo = list(range(start + count - 1, start - 1, -1))
    lat: list[float] = []
    last = 0
    headers = {**auth, "content-type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as s:

        async def worker() -> None:
            nonlocal last
            while todo:
                body = bodies[todo.pop() % len(bodies)]
                t = time.perf_counter()
                async with s.post(url + "/v1/events", data=body, headers=headers) as r:
                    if r.status != 200:
                        raise RuntimeError(f"ingest answered {r.status}: {await r.text()}")
                    last = max(last, (await r.json())["last_index"])
                lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - t0, lat, last


async def poll(url: str, auth: dict[str, str], after: int, page: int, tries: int = 5) -> float:
    times = []
    async with aiohttp.ClientSession() as s:
        for _ in range(tries):
            t = time.perf_counter()
            async with s.get(f"{url}/v1/events?after={after}&limit={page}", headers=auth) as r:
                body = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"GET answered {r.status}: {body[:200]!r}")
            times.append(time.perf_counter() - t)
            if body.count(b'{"index":') != page:
                raise RuntimeError(f"after={after}: expected {page} events")
    return statistics.median(times)


def disk_mb(data: Path, db: str | None) -> float:
    if db:
        return int(psql(f"SELECT pg_database_size('{db}')")) / 1e6
    return sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) / 1e6


def purge(store: list[str], cut: float) -> tuple[int, float, float]:
    """Run ``rqs purge`` so that events received before ``cut`` go; (removed, s, startup s)."""

    def once(days: float) -> tuple[str, float]:
        t = time.perf_counter()
        out = subprocess.run([*RQS, "purge", "--retention-days", repr(days), *store],
                             check=True, capture_output=True, text=True)
        return out.stdout, time.perf_counter() - t

    _, overhead = once(3650)  # nothing to remove: the command's own start-up and checks
    days = (time.time() - cut) / 86400
    out, seconds = once(days)
    m = re.search(r"removed (\d+) events", out)
    return (int(m.group(1)) if m else -1), seconds, overhead


def run_backend(backend: str, args: argparse.Namespace, bodies: list[bytes]) -> Run:
    res = Run(backend)
    db: str | None = None
    with tempfile.TemporaryDirectory(prefix="rqs-growth-") as tmp, ExitStack() as stack:
        data = Path(tmp) / "data"
        store = ["--data-dir", str(data)]
        if backend == "postgres":
            url = stack.enter_context(scratch_database("growth"))
            db = url.rsplit("/", 1)[1]
            store = [*store, f"--database-url={url}"]
            res.settings = "PostgreSQL " + ", ".join(
                f"{n}={psql(f'SHOW {n}')}" for n in ("server_version", "synchronous_commit",
                                                     "fsync", "shared_buffers", "autovacuum"))
        else:
            res.settings = "SQLite WAL, synchronous=FULL, page_size 16384"
        try:
            server = start_server(data, *store[2:])
            auth = {"authorization": f"Bearer {server.token}"}
            cut = 0.0
            try:
                size = 0
                per_step = args.step // args.batch
                while size < args.target:
                    elapsed, lat, last = asyncio.run(ingest(
                        server.url, auth, bodies, size // args.batch, per_step, args.clients))
                    size += per_step * args.batch
                    if last != size:
                        raise RuntimeError(f"newest index {last}, expected {size}")
                    if not cut:
                        cut = time.time()
                    mid = size // 2
                    point = Checkpoint(
                        size=size, rate=per_step * args.batch / elapsed,
                        p50=percentile(lat, 50), p99=percentile(lat, 99),
                        head=asyncio.run(poll(server.url, auth, 1000, args.page)),
                        middle=asyncio.run(poll(server.url, auth, mid, args.page)),
                        tail=asyncio.run(poll(server.url, auth, size - args.page, args.page)),
                        disk_mb=disk_mb(data, db), rss_mb=rss_kb(server.pid) / 1024,
                        load=os.getloadavg()[0])
                    res.points.append(point)
                    print(f"{backend:>8} {size:>11,}: ingest {point.rate:>8,.0f}/s "
                          f"(p50 {point.p50 * 1e3:.0f} / p99 {point.p99 * 1e3:.0f} ms)  poll "
                          f"head {point.head * 1e3:.0f} mid {point.middle * 1e3:.0f} tail "
                          f"{point.tail * 1e3:.0f} ms  disk {point.disk_mb:,.0f} MB  load "
                          f"{point.load:.1f}", flush=True)
                res.peak_mb = tree_kb(server.pid) / 1024
            finally:
                server.stop()
            res.purge_removed, res.purge_seconds, res.purge_overhead = purge(store, cut)
            print(f"{backend:>8} purge: {res.purge_removed:,} events in "
                  f"{res.purge_seconds:.1f} s (command start-up {res.purge_overhead:.1f} s)",
                  flush=True)
        except Exception as exc:
            res.error = f"{type(exc).__name__}: {exc}"[:400]
            print(f"{backend}: FAILED {res.error}", flush=True)
    return res


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"sqlite": "tab:blue", "postgres": "tab:orange"}
    for r in runs:
        xs = [p.size / 1e6 for p in r.points]
        color = colors.get(r.backend)
        ax1.plot(xs, [p.rate for p in r.points], marker="o", color=color,
                 label=f"rqs {r.backend}")
        for attr, style in (("head", ":"), ("middle", "--"), ("tail", "-")):
            ax2.plot(xs, [getattr(p, attr) * 1e3 for p in r.points], linestyle=style,
                     marker=".", color=color, label=f"{r.backend} {attr}")
    ax1.set(xlabel="events in the store (millions)", ylabel="ingest events/s",
            title="Ingest rate per 1M step (batches of 1,000, 4 clients)")
    ax1.set_ylim(bottom=0)
    ax2.set(xlabel="events in the store (millions)", ylabel="ms (median of 5)",
            title="GET /v1/events, 10,000 events")
    ax2.set_ylim(bottom=0)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _span(values: list[float], scale: float = 1.0) -> str:
    return f"{min(values) * scale:,.0f}-{max(values) * scale:,.0f}"


def report(runs: list[Run], args: argparse.Namespace) -> str:
    size = "the full" if args.target >= 10_000_000 else "only"
    parts = [f"## Growth: ingest and polls as the store grows, and purge\n\n"
             f"Run `python -m bench.growth --target {args.target} --step {args.step}` on "
             f"{machine()}, (the load average at each "
             f"checkpoint is in the tables). The issue asks for 10,000,000 events; this run "
             f"went to {size} **{args.target:,}** on each backend. Both backends durable "
             f"(every 2xx is committed). Ingest: batches of {args.batch:,} from "
             f"{args.clients} clients, over HTTP, from a pool of 200,000 distinct "
             f"Responsys-shaped events sent round and round (no ids, so none deduplicated). "
             f"Polls: `GET /v1/events?after=X&limit={args.page}`, median of 5, at the head "
             f"(after=1,000), the middle and the tail (after=newest-{args.page:,}).\n\n"
             f"![ingest rate and poll latency against store size](growth.png)\n"]
    summary = []
    for r in runs:
        if not r.points:
            continue
        polls = [x for p in r.points for x in (p.head, p.middle, p.tail)]
        first, last = r.points[0], r.points[-1]
        summary.append(
            f"- rqs on {r.backend}: ingest {_span([p.rate for p in r.points])} events/s per "
            f"step ({first.rate:,.0f} for the first 1M, {last.rate:,.0f} for the last); a "
            f"10,000-event poll {_span(polls, 1e3)} ms wherever it starts, at every size; "
            f"{last.disk_mb / last.size * 1e6:,.0f} bytes per event on disk.")
    if summary:
        parts.append("\n" + "\n".join(summary) + "\n")
    for r in runs:
        parts.append(f"\n**rqs {r.backend}**" + (f" ({r.settings})" if r.settings else "") + "\n")
        if r.error:
            parts.append(f"\nFailed: {r.error}\n")
        parts.append("\n| events stored | ingest events/s (step) | p50 / p99 per batch ms | "
                     "poll head / middle / tail ms | on disk MB | server RSS MiB | load |\n"
                     "|---:|---:|---:|---:|---:|---:|---:|")
        for p in r.points:
            parts.append(f"| {p.size:,} | {p.rate:,.0f} | {p.p50 * 1e3:.0f} / {p.p99 * 1e3:.0f} "
                         f"| {p.head * 1e3:.0f} / {p.middle * 1e3:.0f} / {p.tail * 1e3:.0f} | "
                         f"{p.disk_mb:,.0f} | {p.rss_mb:,.0f} | {p.load:.1f} |")
        if r.purge_seconds:
            net = max(r.purge_seconds - r.purge_overhead, 1e-9)
            parts.append(f"\nPurge (`rqs purge` on the stopped store) removed "
                         f"{r.purge_removed:,} events, the oldest step, in "
                         f"{r.purge_seconds:.1f} s: **{r.purge_removed / net:,.0f} events/s** "
                         f"after subtracting the command's {r.purge_overhead:.1f} s start-up "
                         f"(timed on a no-op purge). Peak server memory (process tree) "
                         f"{r.peak_mb:,.0f} MiB.")
    parts.append(
        "\n**Notes**\n\n"
        "- Purge stands in for \"a day of data\": after the last checkpoint the server is "
        "stopped and `rqs purge --retention-days R` runs on the store, with R computed so that "
        "the cut falls at the end of the first step (the oldest 1,000,000 events; at 10M "
        "events a day of a 30-day store is ~333,000). The count removed is what the command "
        "reported.\n"
        "- Server RSS is the HTTP process at each checkpoint; for SQLite the writer process "
        "comes on top (the peak over the tree is given under each table). PostgreSQL's own "
        "processes are not counted.\n"
        "- SQLite's WAL checkpoints run beside the writer's commits (docs/architecture.md). "
        "Before that change, the commit that crossed the checkpoint threshold copied the WAL "
        "into the database file itself (100-170 ms per such commit from ~3M events, timed "
        "once with temporary instrumentation), and the ingest p99 rose from ~75 to ~180 ms "
        "as the store grew.\n")
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", type=int, default=10_000_000)
    ap.add_argument("--step", type=int, default=1_000_000)
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--page", type=int, default=10_000)
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--save", default=str(Path(tempfile.gettempdir()) / "rqs-bench-growth.json"),
                    help="where the raw results are kept (default: %(default)s)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other backends' results from --save (a run per backend)")
    ap.add_argument("--report-only", action="store_true",
                    help="redo the doc and the plot from --save without running anything")
    args = ap.parse_args()
    saved: dict[str, Run] = {}
    if (args.merge or args.report_only) and Path(args.save).exists():
        raw = json.loads(Path(args.save).read_text())
        for d in raw["runs"]:
            d["points"] = [Checkpoint(**p) for p in d["points"]]
            saved[d["backend"]] = Run(**d)
        if args.report_only:
            args.target, args.step = raw["target"], raw["step"]
    if not args.report_only:
        bodies = workload.batches(min(POOL, args.step), args.batch, seed=23)
        for b in args.backends.split(","):
            if b:
                saved[b] = run_backend(b, args, bodies)
                Path(args.save).write_text(json.dumps({
                    "target": args.target, "step": args.step,
                    "runs": [dataclasses.asdict(r) for r in saved.values()]}))
    order = ["sqlite", "postgres"]
    runs = sorted(saved.values(), key=lambda r: order.index(r.backend)
                  if r.backend in order else len(order))
    text = report(runs, args)
    print(text)
    if not args.no_docs:
        plot(runs, PLOT)
        write_section("growth", text)


if __name__ == "__main__":
    main()
